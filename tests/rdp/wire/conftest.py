"""Makes peer.py (a sans-IO RDP *client* built from the same codecs) importable as
`rdp_wire_peer`, and loads the published spec vectors of tests/rdp/vectors/.

Why a registered name: with --import-mode=importlib test modules are not on sys.path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "rdp_wire_peer" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "rdp_wire_peer", Path(__file__).with_name("peer.py")
    )
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["rdp_wire_peer"] = _module
    _spec.loader.exec_module(_module)
