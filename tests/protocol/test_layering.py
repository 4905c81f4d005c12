"""The dependency rules of docs/DEVELOPING.md, checked on the code itself.

- Sans-IO: importing every module under protocol/ in a fresh
  interpreter imports neither trio nor asyncio, and socket only where a third-party
  dependency pulls it in (cryptography.x509 imports email.utils, which imports socket);
  no protocol module ever imports it itself.
- An AST scan: no module in protocol/ imports trio, socket, time, random or asyncio (the Trio
  adapter is runtime/stream.py).
- Package layering: server/ never imports tslic.client and client/ never tslic.server;
  protocol/ imports neither (nor runtime, nor cli); runtime/ imports only tslic.protocol.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tslic.protocol

ROOT = Path(tslic.protocol.__file__).resolve().parents[1]
PACKAGES = ("protocol", "runtime", "server", "client", "cli")


def _modules(folder: str) -> Iterator[tuple[str, Path]]:
    """(dotted module name, path) of every module under ROOT/folder."""
    base = ROOT / folder
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(["tslic", folder, *parts]), path


def _imports(module: str, path: Path) -> Iterator[str]:
    """Absolute names imported by one module (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            for alias in node.names:  # `from tslic import client` names a package too
                yield f"{target}.{alias.name}"


def _roots_of(name: str) -> tuple[str, str]:
    parts = name.split(".")
    return parts[0], ".".join(parts[:2])


def test_the_scan_sees_the_tree() -> None:
    names = {m for m, _ in _modules("protocol")}
    assert "tslic.protocol.connection" in names
    assert "tslic.protocol.messages.base" in names
    found = set(
        _imports(*next((m, p) for m, p in _modules("protocol") if m.endswith(".connection")))
    )
    assert "tslic.protocol.framing" in found  # relative import resolved
    assert "cryptography.hazmat.primitives.asymmetric.ed25519" in found


def test_protocol_modules_do_no_io_or_time() -> None:
    forbidden = {"trio", "socket", "time", "random", "asyncio"}
    offenders = []
    for module, path in _modules("protocol"):
        for name in _imports(module, path):
            if name.split(".")[0] in forbidden:
                offenders.append(f"{module} imports {name}")
    assert offenders == []


RULES = {
    # folder: tslic packages it must not import
    "protocol": {"tslic.runtime", "tslic.server", "tslic.client", "tslic.cli"},
    "runtime": {"tslic.server", "tslic.client", "tslic.cli"},
    "server": {"tslic.client", "tslic.cli"},
    "client": {"tslic.server", "tslic.cli"},
}


@pytest.mark.parametrize("folder", sorted(RULES))
def test_package_layering(folder: str) -> None:
    offenders = []
    for module, path in _modules(folder):
        for name in _imports(module, path):
            top, package = _roots_of(name)
            if top == "tslic" and package in RULES[folder]:
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_runtime_imports_only_protocol_from_tslic() -> None:
    seen = set()
    for module, path in _modules("runtime"):
        for name in _imports(module, path):
            top, package = _roots_of(name)
            if top == "tslic" and name != "tslic":
                seen.add(package)
    assert seen <= {"tslic.protocol", "tslic.runtime"}


_PROBE = r"""
import importlib, json, sys

watched = {"trio", "socket", "asyncio"}
importers = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in watched and name not in importers:
            chain = []
            frame = sys._getframe(1)
            while frame is not None:
                if frame.f_code.co_name == "<module>":
                    chain.append(frame.f_globals.get("__name__", "?"))
                frame = frame.f_back
            importers[name] = chain
        return None

sys.meta_path.insert(0, Watch())
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps({"importers": importers, "loaded": sorted(watched & set(sys.modules))}))
"""


def test_importing_the_core_pulls_in_no_io_framework() -> None:
    core = [m for m, _ in _modules("protocol")]
    assert len(core) > 15
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(core)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(done.stdout)
    assert "trio" not in report["loaded"]
    assert "asyncio" not in report["loaded"]
    # If socket is loaded at all, the module that imported it is not ours.
    for name, chain in report["importers"].items():
        assert name == "socket", f"{name} imported via {chain}"
        direct = chain[0] if chain else "?"
        assert not direct.startswith("tslic."), f"socket imported directly by {direct}"


def test_plain_import_of_the_package_is_minimal() -> None:
    code = (
        "import sys, tslic.protocol, tslic.protocol.messages, tslic.protocol.connection;"
        "print(sorted({'trio','socket','asyncio','tslic.runtime'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
