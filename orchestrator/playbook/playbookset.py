"""The loaded playbooks in match order, and which of them an alert's labels select."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from orchestrator.playbook.matchers import matches
from orchestrator.playbook.model import Playbook


class PlaybookSet:
    def __init__(self, playbooks: list[Playbook]) -> None:
        self._playbooks = list(playbooks)
        self._by_name = {p.name: p for p in self._playbooks}

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self._playbooks)

    def __len__(self) -> int:
        return len(self._playbooks)

    def get(self, name: str) -> Playbook | None:
        return self._by_name.get(name)

    def get_or_bare(self, name: str) -> Playbook:
        """The playbook of an incident; if it was removed since, a bare one with no actions,
        so responders can still acknowledge, resolve and annotate the incident."""
        return self._by_name.get(name) or bare_playbook(name)

    def match(self, labels: Mapping[str, str]) -> list[Playbook]:
        """The first matching playbook, plus later ones while each match says `continue: true`."""
        selected: list[Playbook] = []
        for playbook in self._playbooks:
            if matches(playbook.matchers, labels):
                selected.append(playbook)
                if not playbook.continue_:
                    break
        return selected


def bare_playbook(name: str) -> Playbook:
    return Playbook.model_validate(
        {"name": name, "match": ['alertname=""'], "resolve": "manual", "title": ""}
    )
