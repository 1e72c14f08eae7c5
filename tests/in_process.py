"""Runs in this process, and interruptions the run cannot catch, at chosen points."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Project
from traits.config import load_config
from traits.pipeline.run import RunOptions, run_trait
from traits.state import open_state


class Killed(KeyboardInterrupt):
    """Stands for SIGKILL: not an Exception, so no handler in the run records anything."""


def run(project: Project) -> Any:
    """One run of the project's trait ``t``, in this process."""
    config = load_config(project.root)
    state = open_state(config)
    try:
        return run_trait(config, state, "t", RunOptions())
    finally:
        state.close()


def killed_at_write(project: Project, monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Run ``t`` and kill it as it is about to write its batch number ``writes + 1`` to the file
    destination: the batches before it are written, some of them acknowledged."""
    import traits.destinations.file as file_destination

    real_write, done = file_destination._write, {"n": 0}

    def write_or_die(fd: int, data: Any) -> None:
        if done["n"] == writes:
            raise Killed
        real_write(fd, data)
        done["n"] += 1

    monkeypatch.setattr(file_destination, "_write", write_or_die)
    try:
        with pytest.raises(Killed):
            run(project)
    finally:
        monkeypatch.setattr(file_destination, "_write", real_write)
