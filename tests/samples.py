"""Sample inputs several test modules share."""

from __future__ import annotations

import datetime as dt
import json
import socket


def db_alert(service: str = "orders-db", *, starts_at: dt.datetime) -> bytes:
    """A critical PostgresDown in production: what the shipped database playbook takes."""
    return json.dumps(
        {
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": service,
                "cluster": "eu-west-1",
                "severity": "critical",
            },
            "annotations": {"summary": f"{service} is down"},
            "starts_at": starts_at.isoformat(),
        }
    ).encode()


# For the CLI under test: settings read ORCH_* from the environment and a .env file, so the
# tests pin what they depend on (no database or playbooks from outside, dry run, wide output).
CLEAN_ENV: dict[str, str | None] = {
    "ORCH_DATABASE_URL": None,
    "ORCH_PLAYBOOKS_DIR": None,
    "ORCH_DRY_RUN": "true",
    "COLUMNS": "200",
}


def free_port() -> int:
    """A port nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
