"""runtime/files.py: atomic writes are durable, including the rename (directory fsync)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tslic.runtime import files

if TYPE_CHECKING:
    from _typeshed import StrPath  # what os.open and os.replace take


class Recorder:
    """Wraps os.open/os.fsync/os.replace to log what was synced, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, refuse_dir_fsync: bool = False):
        self.calls: list[tuple[str, str]] = []
        self.paths: dict[int, str] = {}
        self.opened: list[str] = []
        real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

        def fake_open(path: StrPath, flags: int, *args: int) -> int:
            fd = real_open(path, flags, *args)
            self.paths[fd] = str(path)
            self.opened.append(str(path))
            return fd

        def fake_fsync(fd: int) -> None:
            name = self.paths.get(fd, "?")
            self.calls.append(("fsync", name))
            if refuse_dir_fsync and os.path.isdir(name):
                raise OSError(22, "Invalid argument")
            real_fsync(fd)

        def fake_replace(src: StrPath, dst: StrPath) -> None:
            self.calls.append(("replace", str(dst)))
            real_replace(src, dst)

        monkeypatch.setattr("tslic.runtime.files.os.open", fake_open)
        monkeypatch.setattr("tslic.runtime.files.os.fsync", fake_fsync)
        monkeypatch.setattr("tslic.runtime.files.os.replace", fake_replace)


def test_the_directory_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    rec = Recorder(monkeypatch)
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert rec.calls == [
        ("fsync", str(tmp_path / ".state.json.tmp")),
        ("replace", str(target)),
        ("fsync", str(tmp_path)),
    ]
    assert not (tmp_path / ".state.json.tmp").exists()


def test_a_platform_refusing_directory_fsync_still_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "key.pem"
    rec = Recorder(monkeypatch, refuse_dir_fsync=True)
    files.write_atomic(target, b"data", mode=0o600)
    assert target.read_bytes() == b"data"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert rec.calls[-1] == ("fsync", str(tmp_path))
    assert rec.opened == [str(tmp_path / ".key.pem.tmp"), str(tmp_path)]
