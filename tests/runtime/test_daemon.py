"""runtime/daemon.py's `settle`: a started daemon's start-up objects leave the collector's sight."""

from __future__ import annotations

import gc

from tslic.runtime.daemon import settle


def test_settle_freezes_what_start_up_built_and_leaves_later_objects_collectable() -> None:
    before = [object() for _ in range(100)]  # start-up's objects, as far as settle knows
    gc.unfreeze()
    try:
        settle()
        frozen = gc.get_freeze_count()
        assert frozen > len(before)  # everything alive, modules and these lists included
        # What the daemon makes afterwards is tracked again, and a cycle is still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        assert gc.is_tracked(cycle)
        tracked = {id(o) for o in gc.get_objects()}
        assert id(cycle) in tracked
        assert id(before) not in tracked  # frozen: a full collection no longer walks it
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
