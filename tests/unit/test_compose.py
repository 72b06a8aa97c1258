"""ops/compose: the full stack's compose file, checked without a Docker engine.

`docker compose config` needs the compose plugin, which this machine lacks, so the file is checked
here: interpolated with .env.example as compose would, validated against the Compose Specification's
JSON Schema (as vendored by check-jsonschema), then for what coderm needs of it.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from orchestrator.cli.main import cli
from orchestrator.core.config import Settings
from orchestrator.runtime.celery_app import QUEUES
from sandbox.policy import SandboxPolicy

REPO = Path(__file__).parents[2]
COMPOSE_DIR = REPO / "ops" / "compose"
RAW = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")
WORKERS = {f"worker-{queue}": queue for queue in QUEUES}


def example_env() -> dict[str, str]:
    """.env.example as compose reads a .env file, with every empty secret filled in."""
    env = {}
    for line in (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value or f"example-{name.lower()}"
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: $$, ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name is None:
            return "$"
        value = env.get(name)
        if op in (":-", ":?") and not value or op in ("-", "?") and value is None:
            if op.endswith("?"):
                raise AssertionError(f"{name}: {arg}")
            return arg
        return value or ""

    return VARIABLE.sub(substitute, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(interpolate(RAW, example_env()))


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def parse_coderm(argv: list[str]) -> click.Context:
    """Parse a `coderm ...` command line with our CLI, down to its subcommand's options; runs nothing."""
    assert argv[0] == "coderm", argv
    command: click.Command = cli
    parent, name, rest = None, "coderm", argv[1:]
    while isinstance(command, click.Group):
        parent = click.Context(command, info_name=name, parent=parent)
        name, *rest = rest
        found = command.get_command(parent, name)
        assert found is not None, f"no command {name!r} in {argv}"
        command = found
    context = command.make_context(name, rest, parent=parent)
    assert not context.args, f"{argv}: arguments the CLI does not take: {context.args}"
    return context


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_every_variable_is_documented_in_env_example_and_every_documented_one_is_used() -> None:
    used = {m["name"] for m in VARIABLE.finditer(RAW) if m["name"]}
    documented = set(example_env())
    assert used - documented == set(), "variables missing from .env.example"
    assert documented - used == set(), "variables in .env.example that compose.yaml does not use"
    # Secrets have no default: compose refuses to start without them.
    for secret in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "REDIS_PASSWORD", "SGLANG_API_KEY"):
        assert re.search(rf"\${{{secret}:\?", RAW), secret
    with pytest.raises(AssertionError, match="set POSTGRES_PASSWORD in .env"):
        interpolate(RAW, {**example_env(), "POSTGRES_PASSWORD": ""})


def test_the_stack_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "rabbitmq",
        "redis",
        "sglang-policy",
        "sglang-coderm",
        "migrate",
        "prometheus",
        "grafana",
    } | set(WORKERS) <= set(services)
    for name, service in services.items():
        assert "image" in service, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency} to be healthy"
    for name in ("postgres", "rabbitmq", "redis", "sglang-policy", "sglang-coderm", "prometheus"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in WORKERS:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_each_queue_has_a_worker_whose_command_our_cli_accepts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, queue in WORKERS.items():
        argv = command_of(services[name])
        context = parse_coderm(argv)
        assert context.info_name == "worker" and context.params["queues"] == queue, argv
        assert context.params["concurrency"] >= 1
        # Sampling waits on the model server and the light steps on the database: threads; the
        # sandbox, whose running chunks `cancel --terminate` stops, runs in processes.
        assert context.params["pool"] == ("prefork" if queue == "sandbox" else "threads"), argv
    # The LLM workers check, before they consume, that their server serves the model they were given.
    policy = parse_coderm(command_of(services["worker-policy"]))
    assert policy.params["policy_model"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert parse_coderm(command_of(services["worker-coderm"])).params["coderm_model"] == "KAKA22/CodeRM-8B"
    assert command_of(services["migrate"]) == ["coderm", "db", "upgrade"]
    parse_coderm(command_of(services["migrate"]))
    every_coderm = [s for s in services.values() if s.get("command") and command_of(s)[0] == "coderm"]
    assert len(every_coderm) == len(WORKERS) + 1


def option_variables(command: click.Command) -> set[str]:
    """The environment variables of every option of a command and its subcommands."""
    found = {p.envvar for p in command.params if isinstance(p.envvar, str)}
    for sub in getattr(command, "commands", {}).values():
        found |= option_variables(sub)
    return found


def test_workers_reach_the_services_by_name_with_settings_coderm_reads(compose: dict[str, Any]) -> None:
    known = {f"CODERM_{name.upper()}" for name in Settings.model_fields}
    known |= {f"CODERM_SANDBOX_{name.upper()}" for name in SandboxPolicy.model_fields}
    known |= option_variables(cli)
    for name in [*WORKERS, "migrate"]:
        env = compose["services"][name]["environment"]
        assert env["CODERM_DATABASE_URL"].startswith(
            "postgresql://coderm:example-postgres_password@postgres:5432/"
        )
        assert env["CODERM_BROKER_URL"].startswith("amqp://coderm:example-rabbitmq_password@rabbitmq:5672/")
        assert env["CODERM_RESULT_BACKEND"] == "redis://:example-redis_password@redis:6379/0"
        assert not any("localhost" in str(v) or "127.0.0.1" in str(v) for v in env.values()), name
        unknown = {k for k in env if k.startswith("CODERM_")} - known
        assert not unknown, f"{name}: settings coderm does not read: {unknown}"
    policy, coderm = compose["services"]["worker-policy"], compose["services"]["worker-coderm"]
    assert policy["environment"]["CODERM_POLICY_URL"] == "http://sglang-policy:30000"
    assert coderm["environment"]["CODERM_CODERM_URL"] == "http://sglang-coderm:30000"
    assert policy["depends_on"]["sglang-policy"]["condition"] == "service_healthy"


def test_the_model_servers_get_a_gpu_and_the_flags_the_agents_need(compose: dict[str, Any]) -> None:
    for name, model, gpu in (
        ("sglang-policy", "meta-llama/Meta-Llama-3-8B-Instruct", "0"),
        ("sglang-coderm", "KAKA22/CodeRM-8B", "1"),
    ):
        service = compose["services"][name]
        argv = command_of(service)
        assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
        flags = dict(zip(argv[3::], argv[4::], strict=False))
        assert flags["--model-path"] == model and flags["--host"] == "0.0.0.0" and flags["--port"] == "30000"
        assert flags["--api-key"] == "example-sglang_api_key"
        assert "--enable-metrics" in argv
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["device_ids"] == [gpu]
    # The difficulty probe reads the policy model's hidden states.
    argv = command_of(compose["services"]["sglang-policy"])
    assert argv[argv.index("--return-hidden-states-mode") + 1] == "full"


def test_the_sandbox_worker_may_make_namespaces_and_nothing_more(compose: dict[str, Any]) -> None:
    sandbox = compose["services"]["worker-sandbox"]
    assert sorted(sandbox["security_opt"]) == ["apparmor=unconfined", "seccomp=unconfined"]
    assert not sandbox.get("privileged") and not sandbox.get("cap_add") and "user" not in sandbox
    others = [s for n, s in compose["services"].items() if n != "worker-sandbox"]
    assert not any(s.get("security_opt") or s.get("privileged") or s.get("cap_add") for s in others)
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"apt-get install .*bubblewrap", dockerfile)
    assert re.search(r"^USER coderm$", dockerfile, flags=re.MULTILINE)  # jails enter a user namespace
    for package in ("orchestrator", "agents", "sandbox", "migrations"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_mounted_files_exist_and_monitoring_is_provisioned_from_ops(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounts = {
        service: dict(volume.split(":")[:2] for volume in services[service].get("volumes", []))
        for service in services
    }
    for service, volumes in mounts.items():
        for source in volumes:
            if source.startswith(".") and service != "submit":  # submit's folder is the user's
                assert (COMPOSE_DIR / source).exists(), f"{service} mounts {source}, which does not exist"

    # Prometheus: our scrape config and rules, with this stack's services as targets.
    prometheus = mounts["prometheus"]
    assert prometheus["../prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((REPO / "ops" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    inside = {target: source for source, target in prometheus.items()}
    for rule_file in config["rule_files"]:
        folder, _, name = rule_file.partition("/")
        assert (COMPOSE_DIR / inside[f"/etc/prometheus/{folder}"] / name).is_file(), rule_file
    metrics_port = compose["x-coderm"]["environment"]["CODERM_METRICS_PORT"]
    for job in config["scrape_configs"]:
        (pattern,) = job["file_sd_configs"][0]["files"]
        folder, _, glob = pattern.partition("/")
        (targets,) = (COMPOSE_DIR / inside[f"/etc/prometheus/{folder}"]).glob(glob)
        for group in json.loads(targets.read_text(encoding="utf-8")):
            for target in group["targets"]:
                host, _, port = target.partition(":")
                assert host in services, f"{targets.name}: {host} is no service of the stack"
                assert port == (metrics_port if host.startswith("worker-") else "30000"), target
    scraped = {
        t.partition(":")[0]
        for f in (COMPOSE_DIR / "prometheus" / "targets").glob("*.json")
        for g in json.loads(f.read_text(encoding="utf-8"))
        for t in g["targets"]
    }
    assert set(WORKERS) | {"sglang-policy", "sglang-coderm"} <= scraped
    alerting = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert [a.partition(":")[0] for a in alerting] == ["alertmanager"]

    # Grafana: our data source and dashboards, where the provisioning looks for them.
    grafana = mounts["grafana"]
    assert grafana["../grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (REPO / "ops" / "grafana" / "provisioning" / "dashboards" / "coderm.yml").read_text(encoding="utf-8")
    )
    assert grafana["../grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert list((REPO / "ops" / "grafana" / "dashboards").glob("*.json"))
    datasource = yaml.safe_load(
        (REPO / "ops" / "grafana" / "provisioning" / "datasources" / "coderm.yml").read_text(encoding="utf-8")
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"

    build = services["migrate"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == COMPOSE_DIR / "Dockerfile"
