"""What startup built is moved out of the collector's sight, and garbage is collected first."""

from __future__ import annotations

import gc
import weakref

from orchestrator.heap import collector_paused, settle_after_startup


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settling_collects_garbage_then_freezes_the_rest() -> None:
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = _Node()
    try:
        settle_after_startup()
        assert gone() is None  # collected before the freeze, not frozen forever
        assert gc.get_freeze_count() > 0
        assert kept.me is kept
    finally:
        gc.unfreeze()  # the rest of the test session keeps an ordinary collector


def test_the_collector_pauses_and_comes_back() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
