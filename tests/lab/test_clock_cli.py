"""`tslic clock show|set|advance|speed` (cli/clock.py), in-process through the dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tslic.cli.main import main


def clock(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["clock", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_set_advance_speed_and_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clock"
    status, out, _ = clock(capsys, "set", "2003-05-01", "--clock-file", str(path), "--speed", "1")
    assert status == 0
    assert "virtual date  2003-05-01 00:00 UTC" in out
    monkeypatch.setenv("TSLIC_CLOCK_FILE", str(path))
    status, out, _ = clock(capsys, "advance", "1d12h", "--json")
    doc = json.loads(out)
    assert status == 0
    assert doc["now"].startswith("2003-05-02 12:0")
    assert doc["before"].startswith("2003-05-01 00:0")
    assert doc["file"] == str(path)
    status, out, _ = clock(capsys, "set", "2003-08-30 12:00")
    assert status == 0
    assert "moved from    2003-05-02 12:0" in out
    status, out, _ = clock(capsys, "speed", "60", "--json")
    assert json.loads(out)["speed"] == 60.0
    status, out, _ = clock(capsys, "show")
    assert "2003-08-30 12:0" in out
    assert "60 virtual second(s)" in out
    assert str(path) in out
    assert path.read_text().strip().endswith("x60.0")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", "2003-01-01"), "never goes backwards"),
        (("advance", "3x"), "90d, 12h, 30m, 1d12h"),
        (("set", "yesterday"), "2003-05-01 09:00"),
    ],
)
def test_refusals_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], says: str
) -> None:
    path = tmp_path / "clock"
    clock(capsys, "set", "2003-05-01", "--clock-file", str(path))
    status, _, err = clock(capsys, *args, "--clock-file", str(path))
    assert status == 2
    assert says in err
    assert "INVALID_FIELD" in err


def test_no_clock_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TSLIC_CLOCK_FILE", raising=False)
    status, _, err = clock(capsys, "show")
    assert status == 2
    assert "TSLIC_CLOCK_FILE" in err
