"""End to end through ``run_trait``: DuckDB source, real receivers that fail on purpose."""

from __future__ import annotations

import random
from pathlib import Path

from delivery_project import FAST, Rows, expected_profiles, make_project, run, write_rows
from receiver import Received, Receiver, Reply, check_redeliveries

from traits.errors import ExitCode


def _random_rows(rng: random.Random, previous: Rows, universe: int) -> Rows:
    """The next state of the table: some users change, some leave, some arrive."""
    rows: Rows = {}
    for i in range(universe):
        key = f"user-{i}"
        if key in previous and rng.random() < 0.1:
            continue  # exits
        if key not in previous and rng.random() < 0.5:
            continue  # not yet arrived
        old = previous.get(key, ("free", 0, True))
        rows[key] = (rng.choice(["free", "pro", "team"]), old[1] + rng.randint(0, 2), rng.random() < 0.7)
    return rows


def test_a_randomly_failing_receiver_ends_with_exactly_the_expected_traits(tmp_path: Path) -> None:
    rng = random.Random(4)

    def chaos(_r: Received) -> Reply:
        roll = rng.random()
        if roll < 0.10:
            return Reply(500)
        if roll < 0.15:
            return Reply(503)
        if roll < 0.20:
            return Reply(429)
        if roll < 0.25:
            return Reply(delay=0.7)  # accepted, but the answer comes after the read timeout
        if roll < 0.28:
            return Reply(drop=True)  # accepted, then the connection drops
        if roll < 0.31:
            return Reply(drop=True, accept=False)  # lost before it was read
        return Reply()

    with Receiver(chaos) as receiver:
        seg = {"type": "segment", "write_key": "k", "endpoint": receiver.url, "max_batch_calls": 9, "max_attempts": 3, **FAST}
        history: list[Rows] = [{}]
        config = make_project(tmp_path, {"seg": seg}, {})
        runs = codes = 0
        for _round in range(4):
            history.append(_random_rows(rng, history[-1], 150))
            write_rows(config, history[-1])
            for _ in range(10):  # a partial run leaves the rest to the next one
                result = run(config)
                runs += 1
                codes |= 1 << int(result.exit_code)
                assert result.exit_code in (ExitCode.OK, ExitCode.DELIVERY), result.record.error
                if result.exit_code == ExitCode.OK:
                    break
            assert result.exit_code == ExitCode.OK
        assert receiver.profiles() == expected_profiles(history[1:])
        duplicates = check_redeliveries(receiver.accepted_calls())
    assert duplicates > 0  # the chaos did make it redeliver
    assert runs > 4 or codes & (1 << int(ExitCode.DELIVERY))


def test_a_400_isolates_one_bad_call_and_the_rest_are_acknowledged(tmp_path: Path) -> None:
    def script(r: Received) -> Reply:
        if any(c["userId"] == "user-bad" for c in r.calls):
            return Reply(400, b'{"message":"bad trait"}')
        return Reply()

    rows: Rows = {f"user-{i}": ("pro", i, True) for i in range(60)}
    rows["user-bad"] = ("pro", -1, False)
    with Receiver(script) as receiver:
        config = make_project(tmp_path, {"seg": {"type": "segment", "write_key": "k", "endpoint": receiver.url, "max_batch_calls": 8, **FAST}}, rows)
        result = run(config)
        counts = result.record.destinations["seg"]
        assert result.exit_code == ExitCode.DELIVERY
        assert (counts.sent, counts.failed, counts.status) == (60, 1, "partial")
        assert [(r["id"], r["reason"]) for r in counts.rejections] == [("user-bad", 'HTTP 400: {"message":"bad trait"}')]
        held = receiver.profiles()
        assert set(held) == set(rows) - {"user-bad"}
        # the next run sends only the call that was refused
        before = len(receiver.snapshot())
        again = run(config)
        assert again.record.destinations["seg"].sent == 0
        assert [c["userId"] for r in receiver.snapshot()[before:] for c in r.calls] == ["user-bad"]


def test_a_401_stops_that_destination_while_another_gets_its_calls(tmp_path: Path) -> None:
    rows: Rows = {f"user-{i}": ("team", i, True) for i in range(40)}
    with Receiver(lambda _r: Reply(401, b"Invalid write key")) as refusing, Receiver() as good:
        config = make_project(
            tmp_path,
            {
                "segment_prod": {"type": "segment", "write_key": "wrong", "endpoint": refusing.url, "max_batch_calls": 5, "concurrency": 1, **FAST},
                "crm_hook": {"type": "webhook", "url": good.url + "/hooks", "batch_size": 10, **FAST},
            },
            rows,
        )
        result = run(config)
        assert result.exit_code == ExitCode.DELIVERY
        bad = result.record.destinations["segment_prod"]
        assert (bad.sent, bad.failed, bad.status) == (0, 40, "failed")
        assert bad.error is not None
        assert "segment_prod" in bad.error
        assert "write_key" in bad.error
        assert "segment_prod" in (result.record.error or "")
        assert len(refusing.snapshot()) == 1
        ok = result.record.destinations["crm_hook"]
        assert (ok.sent, ok.status) == (40, "ok")
        assert good.profiles() == expected_profiles([rows])
