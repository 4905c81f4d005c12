"""The scenario catalogue in playing order: importing a part registers its scenarios.

scenarios_admin comes last because its final scenario moves the shared clock to 2007.
"""

from __future__ import annotations

from . import scenarios, scenarios_time
from . import scenarios_admin as _last
from .model import CATALOGUE

PARTS = (scenarios, scenarios_time, _last)

__all__ = ["CATALOGUE", "PARTS"]
