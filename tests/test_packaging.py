"""The distribution's configuration covers the whole package, checked without building.

The wheel and sdist are built from `tslic/` (relative symlinks to the top-level folders;
docs/DEVELOPING.md "Layout") by setuptools' package finder, with namespaces off, and the
package-data globs of pyproject.toml. A file ships only if its folder is a package the finder
finds and, when it is not Python, a glob names it. These tests fail as soon as a change adds
something the build would silently drop: a code folder without `__init__.py` (the finder
skips it and everything below it), a data file no glob matches, or a new top-level package
not linked from `tslic/`. `.ci/run` then builds the wheel and sdist and lists them
(tools/check_dist.py).
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tslic"
# Top-level packages that are part of the repository but not of the distribution.
NOT_SHIPPED = {"tests", "tools", "bench"}


def _config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        setuptools: dict[str, object] = tomllib.load(handle)["tool"]["setuptools"]
    return setuptools


def _walk() -> list[tuple[Path, list[str]]]:
    """(folder, file names) of every folder under tslic/, following its symlinks."""
    found = []
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found.append((Path(folder), sorted(files)))
    return found


def _package_of(folder: Path) -> Path:
    """The nearest folder at or above `folder` that is a package (package data is relative
    to it)."""
    while not (folder / "__init__.py").is_file():
        folder = folder.parent
    return folder


def test_the_finder_is_configured_to_discover_every_package() -> None:
    find = _config()["packages"]
    assert isinstance(find, dict)
    assert find["find"] == {"where": ["."], "include": ["tslic", "tslic.*"], "namespaces": False}


def test_every_folder_with_python_code_is_a_package() -> None:
    missing = [
        str(folder.relative_to(PACKAGE))
        for folder, files in _walk()
        if any(name.endswith(".py") for name in files) and "__init__.py" not in files
    ]
    assert not missing, f"add an __init__.py or the wheel drops these folders: {missing}"


def test_every_data_file_matches_a_package_data_glob() -> None:
    data = _config()["package-data"]
    assert isinstance(data, dict)
    unmatched = []
    for folder, files in _walk():
        for name in files:
            if name.endswith(".py"):
                continue
            package = _package_of(folder)
            dotted = ".".join(package.relative_to(ROOT).parts)
            relative = (folder / name).relative_to(package).as_posix()
            globs = [*data.get("*", []), *data.get(dotted, [])]
            if not any(fnmatch.fnmatch(relative, glob) for glob in globs):
                unmatched.append(f"{dotted}: {relative}")
    assert not unmatched, f"no package-data glob in pyproject.toml ships: {unmatched}"


def test_every_top_level_package_is_linked_from_tslic() -> None:
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and not path.is_symlink() and path != PACKAGE
    }
    linked = {path.name for path in PACKAGE.iterdir() if path.is_symlink() and path.is_dir()}
    assert linked == packages - NOT_SHIPPED
    for name in linked:
        assert os.readlink(PACKAGE / name) == f"../{name}", "links stay relative"


def test_the_package_imports_from_the_linked_folders() -> None:
    import tslic.protocol

    assert Path(tslic.protocol.__file__).resolve() == ROOT / "protocol" / "__init__.py"
