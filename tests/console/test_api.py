"""The console's JSON twins over real HTTP: shapes, paging, 404s, GET only, no secrets, and the CLI twins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.console.conftest import REJECTED_USER, REJECTION, SECRETS, DemoConsole
from traits.state.records import DestinationCounts, RunRecord

TRAITS = ["zendesk_open_tickets", "product_engagement", "account_health"]


def run_ids(demo: DemoConsole, trait: str) -> list[str]:
    return [r["run_id"] for r in demo.cli_json("history", trait)["runs"]]


def test_traits_list_has_every_trait_with_its_last_run(demo: DemoConsole) -> None:
    data = demo.api("/traits")
    assert [t["name"] for t in data["traits"]] == TRAITS
    by_name = {t["name"]: t for t in data["traits"]}
    for name in TRAITS:
        row = by_name[name]
        assert set(row) >= {"kind", "source", "destinations", "schedule", "health", "last_run", "next_run", "held_by", "runs"}
        assert row["runs"] == 2
        assert row["last_run"]["run_id"] == run_ids(demo, name)[0]
    # the given-up call makes product_engagement partial: it needs attention, the others are healthy
    assert by_name["product_engagement"]["last_run"]["status"] == "partial"
    assert by_name["product_engagement"]["health"] == "degraded"
    assert data["needs_attention"] == ["product_engagement"]
    assert {by_name[n]["health"] for n in ("zendesk_open_tickets", "account_health")} == {"healthy"}
    page = demo.get("/").text
    assert re.search(r'class="trait-row stands-out" data-trait="product_engagement"', page)
    assert demo.get("/?format=json").json() == data


def test_trait_detail_matches_history(demo: DemoConsole) -> None:
    data = demo.api("/traits/product_engagement")
    history = demo.cli_json("history", "product_engagement")["runs"]
    assert [r["run_id"] for r in data["runs"]] == [r["run_id"] for r in history]
    assert data["paging"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}
    assert "from segment.users u" in data["sql"]
    assert [d["name"] for d in data["trait"]["destinations"]] == ["calls_file", "crm_hook", "segment_dest"]
    points = data["chart"]["points"]
    assert [p["run_id"] for p in points] == [r["run_id"] for r in reversed(history)]
    for point, run in zip(points, reversed(history), strict=True):
        assert {k: point[k] for k in ("rows", "added", "changed", "exited", "sent", "failed")} == {
            k: run[k] for k in ("rows", "added", "changed", "exited", "sent", "failed")
        }
    # the first sync is exempt from the guard; then the limit is half of each destination's
    # snapshot, summed (crm_hook's lacks the id it gave up)
    assert points[0]["exit_limit"] is None
    assert points[1]["exit_limit"] == round(0.5 * (1000 + 999 + 1000))


def test_run_detail_shows_the_given_up_call_with_the_answer(demo: DemoConsole) -> None:
    run_id = run_ids(demo, "product_engagement")[0]
    data = demo.api(f"/runs/{run_id}")
    assert data["run"]["status"] == "partial"
    assert data["run"]["failed"] == 1
    hook = next(d for d in data["destinations"] if d["name"] == "crm_hook")
    assert (hook["failed"], hook["status"]) == (1, "partial")
    assert [(c["destination"], c["id"]) for c in data["given_up"]] == [("crm_hook", REJECTED_USER)]
    assert "profile locked" in data["given_up"][0]["reason"]
    assert [p["phase"] for p in data["phases"]] == ["query", "validate", "diff", "deliver", "commit"]
    assert all(p["seconds"] is not None and p["seconds"] >= 0 for p in data["phases"])
    assert data["next_step"]
    page = demo.get(f"/runs/{run_id}").text
    assert REJECTED_USER in page
    assert "profile locked" in page


def test_profile_matches_what_the_destinations_received(demo: DemoConsole) -> None:
    data = demo.api("/profiles/user_00001")
    entries = {(e["trait"], e["destination"]): e for e in data["entries"]}
    assert ("product_engagement", "crm_hook") in entries
    received = demo.receiver.profiles()
    for destination in ("crm_hook", "segment_dest"):
        entry = entries[("product_engagement", destination)]
        assert entry["values"] == received["user_00001"]
        assert entry["exited"] is False
        assert entry["run_id"] == run_ids(demo, "product_engagement")[0]  # plan changed in the second run
        assert entry["status_in_last_run"] == "sent"
    # the file destination holds the same: the merge of every call it was sent
    merged: dict[str, object] = {}
    for call in demo.file_calls():
        if call.get("userId") == "user_00001" and call["context"]["traits_engine"]["trait"] == "product_engagement":
            merged.update(call["traits"])
    assert entries[("product_engagement", "calls_file")]["values"] == merged
    # the rejected id: nothing acknowledged on the webhook, but held by the others
    rejected = demo.api(f"/profiles/{REJECTED_USER}")
    assert ("product_engagement", "crm_hook") not in {(e["trait"], e["destination"]) for e in rejected["entries"]}
    # explain --json is the same data
    explained = demo.cli_json("explain", "user_00001")
    assert explained["entries"] == data["entries"]
    only = demo.cli_json("explain", "user_00001", "--trait", "product_engagement")
    assert {e["trait"] for e in only["entries"]} == {"product_engagement"}


def test_profile_of_an_account_names_its_run(demo: DemoConsole) -> None:
    data = demo.api("/profiles/acct_0003")
    (entry,) = data["entries"]
    assert entry["trait"] == "account_health"
    assert entry["values"]["industry"] == "aerospace"  # what --mutate set
    assert entry["run_id"] == run_ids(demo, "account_health")[0]


@pytest.mark.parametrize(
    "path",
    ["/api/traits/no_such_trait", "/api/runs/20990101T000000-00000000", "/api/profiles/nobody-at-all", "/api/nothing", "/traits/no_such_trait",
     "/runs/nope", "/profiles/nobody-at-all", "/no/such/page", "/api/profiles/user_00001?trait=no_such_trait"],
)
def test_unknown_things_are_404(demo: DemoConsole, path: str) -> None:
    response = demo.get(path)
    assert response.status_code == 404
    if path.startswith("/api/"):
        assert "error" in response.json()
    else:
        assert "Not found" in response.text


def test_get_only(demo: DemoConsole) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = httpx.request(method, demo.base + "/api/traits", timeout=10)
        assert response.status_code == 405, method


def test_paging_of_a_long_history(demo: DemoConsole) -> None:
    """120 more records of one trait: pages of 50, newest first, none twice, a page past the end clamps."""
    from traits.config import load_config
    from traits.state import open_state

    config = load_config(demo.root)
    state = open_state(config)
    try:
        for i in range(120):
            state.save_run(RunRecord(
                run_id=f"20200101T000000-p{i:07d}", trait="zendesk_open_tickets",
                started_at=f"2020-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z", status="ok", finished_at=f"2020-01-01T00:{i // 60:02d}:{i % 60:02d}.500Z",
                rows=421, unchanged=421, duration=0.5, destinations={"calls_file": DestinationCounts(unchanged=421, status="ok")},
            ))
        pages = [demo.api(f"/traits/zendesk_open_tickets?page={n}") for n in (1, 2, 3)]
        assert [p["paging"]["page"] for p in pages] == [1, 2, 3]
        assert pages[0]["paging"]["total"] == 122
        assert pages[0]["paging"]["pages"] == 3
        assert [len(p["runs"]) for p in pages] == [50, 50, 22]
        ids = [r["run_id"] for p in pages for r in p["runs"]]
        assert len(set(ids)) == 122
        starts = [r["started_at"] for p in pages for r in p["runs"]]
        assert starts == sorted(starts, reverse=True)
        assert demo.api("/traits/zendesk_open_tickets?page=99")["paging"]["page"] == 3
        html = demo.get("/traits/zendesk_open_tickets?page=2").text
        assert 'rel="prev"' in html
        assert 'rel="next"' in html
    finally:
        state.close()


def test_no_secret_in_any_response(demo: DemoConsole) -> None:
    run_id = run_ids(demo, "product_engagement")[0]
    paths = ["/", "/traits/product_engagement", f"/runs/{run_id}", "/profiles/user_00001", f"/search?q={REJECTED_USER}", "/healthz",
             "/api/traits", "/api/traits/product_engagement", f"/api/runs/{run_id}", "/api/profiles/user_00001", "/api/search?q=user",
             "/traits/product_engagement?format=json"]
    bodies = []
    for path in paths:
        response = demo.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        bodies.append(response.text)
    assert all(secret not in body for body in bodies for secret in SECRETS)
    # the run really used them: the receiver saw the write key (Basic auth) and signed webhooks
    seen = demo.receiver.snapshot()
    assert any("webhook-signature" in r.headers for r in seen)
    assert any(r.path == "/v1/batch" for r in seen)


def test_search_box_goes_to_the_thing_named(demo: DemoConsole) -> None:
    run_id = run_ids(demo, "account_health")[0]
    assert demo.get("/search?q=account_health").headers["location"] == "/traits/account_health"
    assert demo.get(f"/search?q={run_id}").headers["location"] == f"/runs/{run_id}"
    assert demo.get("/search?q=user_00001").headers["location"] == "/profiles/user_00001"
    partial = demo.get("/search?q=engage")
    assert partial.status_code == 200
    assert "/traits/product_engagement" in partial.text
    assert demo.api("/search?q=engage")["traits"] == ["product_engagement"]


def test_rejection_answer_is_the_receivers(demo: DemoConsole) -> None:
    run_id = run_ids(demo, "product_engagement")[0]
    reason = demo.api(f"/runs/{run_id}")["given_up"][0]["reason"]
    assert "400" in reason
    assert json.loads(REJECTION)["error"] in reason


def test_history_chart_in_the_terminal(demo: DemoConsole) -> None:
    result = demo.cli("history", "product_engagement", "--chart")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for series in ("rows", "added", "changed", "exited", "sent", "failed"):
        assert any(line.strip().startswith(series) for line in lines), series
    sent_line = next(line for line in lines if line.strip().startswith("sent"))
    assert "█" in sent_line  # the first sync sent every row: a full block


def test_explain_unknown_id_says_so(demo: DemoConsole, tmp_path: Path) -> None:
    result = demo.cli("explain", "nobody-at-all")
    assert result.exit_code == 1
    assert "no destination holds anything for id 'nobody-at-all'" in result.output
