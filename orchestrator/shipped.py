"""Where the shipped playbooks are: beside the package in a source checkout, or where an
installed wheel put them (<prefix>/share/incident-orchestrator/playbooks)."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

SHARE = Path("share") / "incident-orchestrator" / "playbooks"


def shipped_playbooks() -> Path | None:
    checkout = Path(__file__).resolve().parents[1] / "playbooks"
    candidates = [
        checkout,
        Path(sysconfig.get_path("data")) / SHARE,
        Path(sys.prefix) / SHARE,
    ]
    return next((path for path in candidates if (path / "templates").is_dir()), None)
