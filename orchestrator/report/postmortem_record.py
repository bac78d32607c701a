"""The stored postmortem and its review states: what the store keeps, apart from the drafting
in postmortem.py (which needs the templates and the escalation policy, and the store does not)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class PostmortemStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class Postmortem:
    """The stored postmortem: the Markdown people wrote, and where it is in review."""

    incident_number: int
    markdown: str
    status: PostmortemStatus
    updated_at: dt.datetime
    updated_by: str
    approved_by: str = ""
    approved_at: dt.datetime | None = None
