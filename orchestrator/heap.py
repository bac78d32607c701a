"""The garbage collector, told what lasts: what startup builds stays for the life of the process.

CPython's cyclic collector rescans every tracked object in its oldest generation each time that
generation is collected. A started service holds hundreds of thousands of such objects (modules,
SQLAlchemy's metadata and compiled statements, pydantic's validators, the playbooks) that will
never be garbage, while each batch of alerts or timers allocates and drops many small ones. Left
alone, the collector spent about a fifth of a timer catch-up rescanning the former
(docs/adr/0006)."""

from __future__ import annotations

import gc


def settle_after_startup() -> None:
    """Collects startup's garbage once, then moves everything still alive out of the
    collector's sight: later collections scan only what the running service allocates."""
    gc.collect()
    gc.freeze()
