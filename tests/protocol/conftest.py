"""Makes tests/protocol/samples.py, helpers.py and pki_world.py importable as
`protocol_samples`, `protocol_helpers` and `protocol_pki_world`.

Why: with `--import-mode=importlib` test modules are not on sys.path, so they cannot import a
sibling module by name. Registering them under distinctive names (not plain `helpers`) keeps
them from colliding with another test folder's helpers when the whole suite runs in one
process. Other folders may import them the same way once this conftest has loaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load(name: str, filename: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load("protocol_samples", "samples.py")  # first: helpers imports it
_load("protocol_helpers", "helpers.py")
_load("protocol_pki_world", "pki_world.py")
