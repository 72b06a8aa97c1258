"""The public Python API is exactly what `orchestrator.client.__all__` says, typed and documented."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import client
from orchestrator.core.errors import ConfigurationError


def test_all_names_what_the_module_offers_and_nothing_else() -> None:
    assert client.__all__ == sorted(client.__all__)
    assert all(hasattr(client, name) for name in client.__all__)
    star: dict[str, object] = {}
    exec("from orchestrator.client import *", star)
    assert sorted(name for name in star if name != "__builtins__") == client.__all__
    defined_here = {
        name
        for name, value in vars(client).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == client.__name__
    }
    assert defined_here <= set(client.__all__)
    assert {"submit", "status", "results", "wait", "cancel"} <= defined_here


@pytest.mark.parametrize("name", ["submit", "status", "results", "wait", "cancel"])
def test_every_function_is_typed_and_documented(name: str) -> None:
    function = getattr(client, name)
    signature = inspect.signature(function)
    assert function.__doc__ and signature.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())
    assert "settings" in signature.parameters  # the environment by default, or given explicitly


def test_submit_without_a_broker_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="submit needs a broker: set CODERM_BROKER_URL"):
        client.submit([{"task_id": "a", "question": "q"}], settings=client.Settings(home=tmp_path))


def test_the_package_re_exports_the_client_without_loading_it_early() -> None:
    import orchestrator

    assert all(getattr(orchestrator, name) is getattr(client, name) for name in client.__all__)
    with pytest.raises(AttributeError):
        orchestrator.no_such_name  # noqa: B018
    # A light import stays light: the client (and prometheus_client with it) loads on first use.
    probe = "import sys, orchestrator.core.config; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
