"""Snapshot files on local disk: a manifest naming Parquet files, changed atomically.

Used by the local store for snapshots themselves and by the Postgres store as its local
cache. The manifest (``manifest.json``) is the only thing ever replaced; data files are
written under a temporary name, fsynced, and renamed before the manifest names them, so a
crash at any instant leaves either the old snapshot or the new one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from traits.state import sql

#: compact when a snapshot has more files than this, or its later files hold this share of rows
MAX_FILES = 8
MAX_DELTA_SHARE = 0.25
#: files replaced by compaction are deleted this much later: a reader without the trait's
#: lock (preview, a dry run) may have listed them just before the manifest changed
RETIRE_SECONDS = 600.0


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def finish_file(tmp: Path, final: Path) -> None:
    """Make a fully written temporary file durable under its final name."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


class SnapshotDir:
    """One snapshot: ``manifest.json`` plus the Parquet files it lists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return {"files": [], "rows": []}
        return data

    def files(self) -> list[Path]:
        return [self.path / name for name in self.manifest()["files"]]

    def add(self, name: str, tmp: Path, rows: int) -> None:
        """Add the finished file ``tmp`` as ``name`` (idempotent: re-adding replaces it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        finish_file(tmp, self.path / name)
        manifest = self.manifest()
        files: list[str] = manifest["files"]
        counts: list[int] = manifest.get("rows", [0] * len(files))
        if name in files:
            counts[files.index(name)] = rows
        else:
            files.append(name)
            counts.append(rows)
        self._write(files, counts)
        if self._needs_compaction(counts):
            self.compact()

    def _needs_compaction(self, counts: list[int]) -> bool:
        if len(counts) > MAX_FILES:
            return True
        return len(counts) > 1 and sum(counts[1:]) > MAX_DELTA_SHARE * max(counts[0], 1)

    def compact(self) -> None:
        files = self.files()
        if len(files) < 2:
            return
        generation = int(self.manifest().get("generation", 0)) + 1
        name = f"base-{generation:06d}.parquet"
        tmp = self.path / (name + ".tmp")
        rows = sql.compact(files, tmp)
        finish_file(tmp, self.path / name)
        now = time.time()
        retired = [*self.manifest().get("retired", []), *([old.name, now] for old in files if old.name != name)]
        kept = []
        for old_name, since in retired:
            if now - since > RETIRE_SECONDS:
                (self.path / old_name).unlink(missing_ok=True)
            else:
                kept.append([old_name, since])
        self._write([name], [rows], generation=generation, retired=kept)

    def clear(self) -> None:
        files = self.files() + [self.path / name for name, _ in self.manifest().get("retired", [])]
        self.manifest_path.unlink(missing_ok=True)
        for old in files:
            old.unlink(missing_ok=True)

    def _write(self, files: list[str], counts: list[int], generation: int | None = None, retired: list[list[object]] | None = None) -> None:
        manifest = self.manifest()
        manifest.update(files=files, rows=counts)
        if generation is not None:
            manifest["generation"] = generation
        if retired is not None:
            manifest["retired"] = retired
        write_atomic(self.manifest_path, json.dumps(manifest).encode())
