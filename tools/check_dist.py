"""Check that a built wheel and sdist carry exactly the package of the checkout.

Contract: `python tools/check_dist.py DIST_DIR` reads the one `tslic-*.whl` and the one
`tslic-*.tar.gz` in DIST_DIR and compares the files each holds under `tslic/` with
`package_files()`: every file below the checkout's `tslic/` folder, following its symlinks
to the top-level folders, less `__pycache__`. It prints one line per artefact and exits 1
(naming what is missing, extra or stored as a link) if either differs, else 0. `.ci/run`
runs it on what `python -m build` made; tests/test_packaging.py checks the configuration
the same files come from without building anything.
"""

from __future__ import annotations

import os
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_files(root: Path = ROOT) -> set[str]:
    """Every file of the package as the checkout has it, e.g. `tslic/protocol/codec.py`."""
    found: set[str] = set()
    for folder, dirs, files in os.walk(root / "tslic", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found.update((Path(folder) / f).relative_to(root).as_posix() for f in files)
    return found


def wheel_files(wheel: Path) -> tuple[set[str], set[str]]:
    """(files under tslic/, those among them stored as symlinks) of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        infos = [i for i in archive.infolist() if i.filename.startswith("tslic/")]
    links = {i.filename for i in infos if (i.external_attr >> 16) & 0o170000 == 0o120000}
    return {i.filename for i in infos if not i.is_dir()}, links


def sdist_files(sdist: Path) -> tuple[set[str], set[str]]:
    """(files under <name>-<version>/tslic/, with that prefix removed; the symlinks) of an sdist."""
    files: set[str] = set()
    links: set[str] = set()
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            name = member.name.split("/", 1)[-1]
            if not name.startswith("tslic/") or member.isdir():
                continue
            files.add(name)
            if member.issym() or member.islnk():
                links.add(name)
    return files, links


def compare(label: str, shipped: set[str], links: set[str], expected: set[str]) -> list[str]:
    """Problems of one artefact, one line each (none when it matches the checkout)."""
    problems = [f"{label}: missing {name}" for name in sorted(expected - shipped)]
    problems += [f"{label}: not in the checkout {name}" for name in sorted(shipped - expected)]
    problems += [f"{label}: stored as a link {name}" for name in sorted(links)]
    return problems


def main(argv: list[str]) -> int:
    """Check the wheel and the sdist in argv[1] against the checkout."""
    if len(argv) != 2:
        print("usage: check_dist.py DIST_DIR", file=sys.stderr)
        return 2
    dist = Path(argv[1])
    expected = package_files()
    wheels = sorted(dist.glob("tslic-*.whl"))
    sdists = sorted(dist.glob("tslic-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}", file=sys.stderr)
        return 1
    problems: list[str] = []
    for label, (shipped, links) in (
        (wheels[0].name, wheel_files(wheels[0])),
        (sdists[0].name, sdist_files(sdists[0])),
    ):
        found = compare(label, shipped, links, expected)
        problems += found
        if not found:
            modules = sum(name.endswith(".py") for name in shipped)
            print(f"{label}: {len(shipped)} files ({modules} modules), as in the checkout")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
