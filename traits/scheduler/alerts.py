"""Slack-compatible alerts when a scheduled run fails, or when a trait recovers.

An alert is one incoming-webhook POST of ``{"text": ...}``. Sending one never raises: a
failure is logged (without the URL, which is a secret) and the daemon carries on.
"""

from __future__ import annotations

import logging

from traits.config.env import redact
from traits.config.models import SlackAlerts
from traits.state.records import RunRecord

log = logging.getLogger("traits.alerts")

PROBLEMS = ("failed", "invalid", "guarded", "partial")
TIMEOUT_SECONDS = 10.0
MAX_ERROR_CHARS = 1_000


def alert_kind(status: str, previous: str | None) -> str | None:
    """What to alert on for a run that ended ``status`` after one that ended ``previous``."""
    if status in PROBLEMS:
        return status
    if status == "ok" and previous is not None and previous != "ok":
        return "recovered"
    return None


def alert_text(record: RunRecord, kind: str) -> str:
    if kind == "recovered":
        return f":large_green_circle: sql-traits: trait `{record.trait}` recovered (run {record.run_id}: {record.sent:,} call(s) sent)"
    counts = f"{record.sent:,} sent, {record.failed:,} failed"
    error = redact(record.error or "")[:MAX_ERROR_CHARS]
    text = f":red_circle: sql-traits: trait `{record.trait}` run {record.run_id} ended *{kind}* ({counts})"
    return f"{text}\n> {error}" if error else text


def send_alert(alerts: SlackAlerts | None, record: RunRecord, previous: str | None) -> bool:
    """POST an alert if ``alerts.on`` asks for this outcome; returns whether one was delivered."""
    if alerts is None:
        return False
    kind = alert_kind(record.status, previous)
    if kind is None or kind not in alerts.on:
        return False
    import httpx

    extra = {"trait": record.trait, "run_id": record.run_id, "status": record.status}
    try:
        response = httpx.post(alerts.url.get_secret_value(), json={"text": alert_text(record, kind)}, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as e:
        # the exception's text may carry the webhook URL: name only its kind
        log.warning("could not send the %s alert: %s", kind, type(e).__name__, extra=extra)
        return False
    if response.status_code >= 300:
        log.warning("the alert webhook answered %s to the %s alert", response.status_code, kind, extra=extra)
        return False
    log.info("sent the %s alert", kind, extra=extra)
    return True
