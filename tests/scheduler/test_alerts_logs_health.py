"""Alerts to a real local webhook server, log formatting and redaction, /healthz when stopped."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from traits.config.env import redact
from traits.config.models import SlackAlerts
from traits.logs import setup_logging
from traits.scheduler.alerts import alert_kind, send_alert
from traits.state.records import RunRecord

from .conftest import Hook, free_port


def record(status: str, error: str | None = None) -> RunRecord:
    return RunRecord(run_id="r1", trait="ltv", started_at="2026-01-01T00:00:00Z", status=status, error=error)  # type: ignore[arg-type]


def test_alert_kinds() -> None:
    assert alert_kind("failed", "ok") == "failed"
    assert alert_kind("guarded", None) == "guarded"
    assert alert_kind("ok", "partial") == "recovered"
    assert alert_kind("ok", "ok") is None
    assert alert_kind("ok", None) is None


def test_alerts_are_posted_filtered_and_scrubbed(hook: Hook) -> None:
    redact.add("s3cr3t-password-value")
    alerts = SlackAlerts(url=SecretStr(hook.url), on=["failed", "recovered"])
    assert send_alert(alerts, record("failed", "cannot connect: password s3cr3t-password-value rejected"), "ok")
    assert not send_alert(alerts, record("guarded", "too many exits"), "ok")  # not in ``on``
    assert not send_alert(alerts, record("ok"), "ok")
    assert send_alert(alerts, record("ok"), "failed")
    assert len(hook.bodies) == 2
    failed, recovered = (b["text"] for b in hook.bodies)
    assert "ltv" in failed
    assert "failed" in failed
    assert "s3cr3t-password-value" not in failed
    assert "***" in failed
    assert "recovered" in recovered


def test_alert_failures_are_logged_never_raised(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    hook.status = 500
    alerts = SlackAlerts(url=SecretStr(hook.url))
    with caplog.at_level(logging.WARNING, logger="traits.alerts"):
        assert not send_alert(alerts, record("failed", "boom"), None)
        dead = SlackAlerts(url=SecretStr(f"http://127.0.0.1:{free_port()}/SECRET-PATH"))
        assert not send_alert(dead, record("failed", "boom"), None)
    assert "answered 500" in caplog.text
    assert "ConnectError" in caplog.text
    assert "SECRET-PATH" not in caplog.text


@pytest.fixture
def own_handler() -> Iterator[None]:
    """``setup_logging`` writes to the ``sys.stderr`` of its call (the test's, captured)."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_Handler"]:
        root.removeHandler(handler)


def test_json_logs_are_redacted(own_handler: None, capsys: pytest.CaptureFixture[str]) -> None:
    redact.add("hunter2-hunter2")
    setup_logging(json_lines=True)
    log = logging.getLogger("traits.run")
    log.info("connecting with %s", "hunter2-hunter2", extra={"trait": "ltv", "run_id": "r1", "phase": "query"})
    try:
        raise ValueError("dsn postgresql://u:hunter2-hunter2@h/db")
    except ValueError:
        log.exception("failed")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines[0]["message"] == "connecting with ***"
    assert (lines[0]["level"], lines[0]["logger"], lines[0]["trait"], lines[0]["run_id"], lines[0]["phase"]) == ("INFO", "traits.run", "ltv", "r1", "query")
    assert "hunter2-hunter2" not in err
    assert "ValueError" in lines[1]["exc_info"]


def test_text_logs_on_a_terminal(own_handler: None, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json_lines=False)
    logging.getLogger("traits.run").warning("run ended", extra={"trait": "ltv", "status": "failed"})
    text = capsys.readouterr().err
    assert "WARNING" in text
    assert "run ended [trait=ltv status=failed]" in text


def test_healthz_is_503_when_the_scheduler_is_not_running(tmp_path: Path) -> None:
    from traits.config.loader import load_config
    from traits.scheduler.daemon import Daemon
    from traits.scheduler.server import StatusServer

    (tmp_path / "traits.yml").write_text("settings: {state: .traits}\n")
    daemon = Daemon(tmp_path, load_config(tmp_path))
    server = StatusServer("127.0.0.1", 0, daemon.health, daemon.metrics.render)
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://{server.address}/healthz", timeout=5)
        assert caught.value.code == 503
        assert json.loads(caught.value.read())["scheduler_alive"] is False
        daemon.scheduler.start()
        with urllib.request.urlopen(f"http://{server.address}/healthz", timeout=5) as response:
            assert response.status == 200
        daemon.scheduler.shutdown(wait=False)
    finally:
        server.stop()
        daemon.state.close()
