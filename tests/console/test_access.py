"""Who may read the console: credentials from the environment, and the bind address."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from traits.console.auth import HOW_TO_ENABLE, Access, is_loopback

TOKEN = "tok_console_9f8e7d6c5b4a"
PASSWORD = "pw_console_1a2b3c4d"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "10.0.0.5", "example.com"))


def test_access_rules() -> None:
    open_local = Access.from_env("127.0.0.1", {})
    assert open_local.enabled
    assert open_local.allows(None)
    off = Access.from_env("0.0.0.0", {})
    assert not off.enabled
    assert not off.allows(None)
    token = Access.from_env("0.0.0.0", {"TRAITS_CONSOLE_TOKEN": TOKEN})
    assert token.enabled
    assert token.allows(f"Bearer {TOKEN}")
    assert token.allows(f"bearer  {TOKEN}")
    assert not token.allows(None)
    assert not token.allows("Bearer wrong")
    assert not token.allows(basic("x", TOKEN))
    both = Access.from_env("127.0.0.1", {"TRAITS_CONSOLE_USER": "ops", "TRAITS_CONSOLE_PASSWORD": PASSWORD, "TRAITS_CONSOLE_TOKEN": TOKEN})
    assert both.allows(basic("ops", PASSWORD))
    assert both.allows(f"Bearer {TOKEN}")
    assert not both.allows(None), "credentials, once set, are needed on loopback too"
    assert not both.allows(basic("ops", "nope"))
    assert not both.allows(basic("other", PASSWORD))
    assert not both.allows("Basic !!notbase64")
    # a user without a password (or the reverse) is no credential
    assert not Access.from_env("0.0.0.0", {"TRAITS_CONSOLE_USER": "ops"}).enabled


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "traits.yml").write_text(
        "sources:\n  wh: {type: duckdb, path: wh.duckdb}\n"
        "traits:\n  one:\n    kind: user\n    source: wh\n    sql: select 'a' as user_id, 1 as n\n"
    )
    return tmp_path


@pytest.fixture
def serve(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from traits.config import load_config
    from traits.scheduler.server import StatusServer

    for name in ("TRAITS_CONSOLE_TOKEN", "TRAITS_CONSOLE_USER", "TRAITS_CONSOLE_PASSWORD", "TRAITS_STATE"):
        monkeypatch.delenv(name, raising=False)
    servers: list[StatusServer] = []

    def start(host: str, **env: str) -> str:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        config = load_config(config_dir)
        server = StatusServer(host, 0, lambda: (True, {"status": "ok"}), lambda: b"traits_up 1\n", config=lambda: config)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.address.rsplit(':', 1)[1]}"

    yield start
    for server in servers:
        server.stop()


def test_non_loopback_without_credentials_serves_only_health_and_metrics(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="traits.console"):
        base = serve("0.0.0.0")
    assert any(HOW_TO_ENABLE in r.getMessage() for r in caplog.records), "the daemon logs how to turn the console on"
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    assert httpx.get(base + "/metrics").text == "traits_up 1\n"
    for path in ("/", "/api/traits", "/traits/one", "/static/console.css"):
        response = httpx.get(base + path)
        assert response.status_code == 403, path
        assert "TRAITS_CONSOLE_TOKEN" in response.text
        assert "TRAITS_CONSOLE_PASSWORD" in response.text


def test_bearer_token(serve: Any) -> None:
    base = serve("0.0.0.0", TRAITS_CONSOLE_TOKEN=TOKEN)
    assert httpx.get(base + "/api/traits").status_code == 401
    assert httpx.get(base + "/api/traits", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(base + "/api/traits", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert [t["name"] for t in ok.json()["traits"]] == ["one"]
    assert TOKEN not in ok.text
    assert httpx.get(base + "/healthz").status_code == 200  # probes need no token


def test_basic_credentials_on_loopback(serve: Any) -> None:
    base = serve("127.0.0.1", TRAITS_CONSOLE_USER="ops", TRAITS_CONSOLE_PASSWORD=PASSWORD)
    denied = httpx.get(base + "/")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Basic")
    page = httpx.get(base + "/", auth=("ops", PASSWORD))
    assert page.status_code == 200
    assert "one" in page.text
    assert PASSWORD not in page.text
    assert httpx.get(base + "/", auth=("ops", "guess")).status_code == 401


def test_loopback_without_credentials_is_open(serve: Any) -> None:
    base = serve("127.0.0.1")
    assert httpx.get(base + "/api/traits").status_code == 200
    assert httpx.get(base + "/static/console.js").status_code == 200
