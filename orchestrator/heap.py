"""The garbage collector, told what lasts: what startup builds stays for the life of the process.

CPython's cyclic collector rescans every tracked object in its oldest generation each time that
generation is collected. A started service holds hundreds of thousands of such objects (modules,
SQLAlchemy's metadata and compiled statements, pydantic's validators, the playbooks) that will
never be garbage, while each batch of alerts or timers allocates and drops many small ones. Left
alone, the collector spent about a fifth of a timer catch-up rescanning the former
(docs/adr/0006)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def settle_after_startup() -> None:
    """Collects startup's garbage once, then moves everything still alive out of the
    collector's sight: later collections scan only what the running service allocates."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collections while a report builds its many small, acyclic objects (a year of
    incidents' metrics): reference counting frees them as before, and the collector's passes
    over the growing result were a fifth of `orchestrator metrics`. It runs once at the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
