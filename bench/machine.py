"""What a benchmark ran on: the CPU model and how many cores the process may use."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_line() -> str:
    """E.g. "2 CPUs (2 usable) AMD EPYC 7B13"."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    return f"{cpus} CPUs ({usable} usable) {model}".rstrip()
