"""Broker and result-backend TLS come from CODERM_* settings and reach Celery's configuration."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigurationError
from orchestrator.runtime.celery_app import create_app


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    # Only their existence is checked before a connection is made.
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    return files


def test_only_json_is_accepted_on_the_wire(tmp_path: Path) -> None:
    conf = create_app(Settings(home=tmp_path)).conf
    assert conf.accept_content == ["json"] and conf.result_accept_content == ["json"]
    assert conf.task_serializer == "json" and conf.result_serializer == "json"


def test_given_tls_settings_in_the_environment_expect_them_in_celerys_config(
    monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]
) -> None:
    for name, value in {
        "CODERM_BROKER_URL": "amqp://coderm:secret@mq.example:5671/coderm",
        "CODERM_BROKER_USE_SSL": "true",
        "CODERM_BROKER_SSL_CA_CERTS": str(pem_files["ca"]),
        "CODERM_BROKER_SSL_CERTFILE": str(pem_files["cert"]),
        "CODERM_BROKER_SSL_KEYFILE": str(pem_files["key"]),
        "CODERM_RESULT_BACKEND": "rediss://cache.example:6380/0",
        "CODERM_RESULT_BACKEND_SSL_CA_CERTS": str(pem_files["ca"]),
    }.items():
        monkeypatch.setenv(name, value)
    conf = create_app(Settings()).conf
    assert conf.broker_url == "amqp://coderm:secret@mq.example:5671/coderm"
    assert conf.broker_use_ssl == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,  # kombu puts in the broker's host name, so it is verified
        "ca_certs": str(pem_files["ca"]),
        "certfile": str(pem_files["cert"]),
        "keyfile": str(pem_files["key"]),
    }
    assert conf.redis_backend_use_ssl == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(pem_files["ca"]),
    }


def test_a_redis_broker_gets_redis_py_option_names(pem_files: dict[str, Path]) -> None:
    settings = Settings(
        broker_url="rediss://mq.example:6380/1",
        broker_ssl_certfile=pem_files["cert"],
        broker_ssl_keyfile=pem_files["key"],
        result_backend="redis://cache.example:6379/0",
    )
    conf = create_app(settings).conf
    assert conf.broker_use_ssl == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_certfile": str(pem_files["cert"]),
        "ssl_keyfile": str(pem_files["key"]),
    }
    assert not conf.redis_backend_use_ssl


def test_without_tls_settings_celery_gets_none() -> None:
    conf = create_app(
        Settings(broker_url="amqp://mq.example//", result_backend="redis://cache.example/0")
    ).conf
    assert not conf.broker_use_ssl and not conf.redis_backend_use_ssl


def test_given_certificate_files_but_tls_off_expect_a_clear_error(pem_files: dict[str, Path]) -> None:
    settings = Settings(
        broker_url="amqp://mq.example//", result_backend="redis://c/0", broker_ssl_ca_certs=pem_files["ca"]
    )
    with pytest.raises(ConfigurationError, match="CODERM_BROKER_SSL_CA_CERTS set but TLS is off"):
        create_app(settings)


def test_given_a_missing_certificate_file_expect_its_setting_named(tmp_path: Path) -> None:
    settings = Settings(
        broker_url="amqp://mq.example//",
        result_backend="rediss://c/0",
        result_backend_ssl_ca_certs=tmp_path / "nowhere.pem",
    )
    with pytest.raises(ConfigurationError, match="CODERM_RESULT_BACKEND_SSL_CA_CERTS: no such file"):
        create_app(settings)
