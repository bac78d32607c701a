"""The store's postmortem and action item queries; each change also goes on the incident's
timeline in the same transaction, so the timeline stays the record of who changed what."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from orchestrator.incident.model import Actor
from orchestrator.report.action_items import (
    ActionItem,
    ActionItemStatus,
    ActionItemType,
    TableRow,
)
from orchestrator.report.postmortem_record import Postmortem, PostmortemStatus
from orchestrator.store.schema import action_items, incidents, postmortems
from orchestrator.store.transaction import SqlTransaction
from orchestrator.timeline import EntryDraft, Kind

T = TypeVar("T")

__all__ = ["FollowUpError", "NewActionItem", "PostmortemQueries"]


class FollowUpError(ValueError):
    """A postmortem or action item change that cannot be made (no such incident or item...)."""


@dataclass(frozen=True)
class NewActionItem:
    title: str
    owner: str
    due: dt.date | None
    type: ActionItemType
    status: ActionItemStatus = ActionItemStatus.OPEN
    link: str = ""

    @classmethod
    def from_row(cls, row: TableRow) -> NewActionItem:
        return cls(row.title, row.owner, row.due, row.type, row.status, row.link)


def digest(markdown: str) -> str:
    """What an approval covers: the exact text approved."""
    return hashlib.sha256(markdown.encode()).hexdigest()


def _who(actor: Actor) -> str:
    return actor.name or actor.id


class PostmortemQueries:
    """Mixed into SqlStore; `_run` and `_read` are its one-hop helpers."""

    async def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        raise NotImplementedError

    async def _read(self, query: sa.Select[Any]) -> Sequence[RowMapping]:
        raise NotImplementedError

    async def get_postmortem(self, incident_number: int) -> Postmortem | None:
        query = sa.select(postmortems).where(postmortems.c.incident_number == incident_number)
        found = await self._read(query)
        return _postmortem(found[0]) if found else None

    async def list_postmortems(
        self, between: tuple[int, int] | None = None
    ) -> dict[int, Postmortem]:
        """Postmortems by incident; only of incidents first..last (inclusive) when `between`
        is given, which is how an export reads them a page at a time."""
        query = sa.select(postmortems)
        if between is not None:
            query = query.where(postmortems.c.incident_number.between(*between))
        return {row["incident_number"]: _postmortem(row) for row in await self._read(query)}

    async def save_postmortem(
        self,
        incident_number: int,
        markdown: str,
        actor: Actor,
        now: dt.datetime,
        *,
        status: PostmortemStatus | None = None,
        items: Sequence[NewActionItem] = (),
        changes: Sequence[tuple[int, dict[str, Any]]] = (),
    ) -> Postmortem:
        """Stores the postmortem's text with the action items it adds and changes, at once.

        Changed text takes an approved postmortem back to draft: the approval covered the text
        as it was. Without a change of text or status nothing is written for the postmortem."""

        if status is PostmortemStatus.APPROVED:
            raise FollowUpError("approving is its own step: `orchestrator postmortem approve`")

        def work(tx: SqlTransaction, conn: Connection) -> Postmortem:
            old = _locked_postmortem(tx, conn, incident_number)
            text_changed = old is None or old.markdown != markdown
            new_status: PostmortemStatus
            if status is not None:
                new_status = status
            elif old is None or (old.status is PostmortemStatus.APPROVED and text_changed):
                new_status = PostmortemStatus.DRAFT
            else:
                new_status = old.status
            still_approved = new_status is PostmortemStatus.APPROVED and old is not None
            saved = Postmortem(
                incident_number,
                markdown,
                new_status,
                now,
                _who(actor),
                old.approved_by if still_approved and old else "",
                old.approved_at if still_approved and old else None,
            )
            drafts: list[EntryDraft] = []
            if old is None or text_changed or old.status is not new_status:
                values = _postmortem_values(saved)
                if old is None:
                    conn.execute(sa.insert(postmortems).values(values))
                else:
                    conn.execute(_update_postmortem(incident_number).values(values))
                data = {
                    "detail": f"{new_status.label}, {len(markdown)} characters",
                    "status": new_status.value,
                    "sha256": digest(markdown),
                    "previous_sha256": digest(old.markdown) if old else None,
                    "chars": len(markdown),
                }
                drafts.append(EntryDraft(Kind.POSTMORTEM_UPDATED, actor, now, data))
            else:
                saved = old
            for item in items:
                drafts.append(_insert_item(conn, incident_number, item, actor, now))
            for item_id, fields in changes:
                drafts.extend(_change_item(conn, incident_number, item_id, fields, actor, now))
            tx.append_timeline(incident_number, drafts, now)
            return saved

        return await self._in_transaction(work)

    async def approve_postmortem(
        self, incident_number: int, actor: Actor, now: dt.datetime
    ) -> Postmortem:
        def work(tx: SqlTransaction, conn: Connection) -> Postmortem:
            old = _locked_postmortem(tx, conn, incident_number)
            if old is None:
                raise FollowUpError(
                    f"incident #{incident_number} has no stored postmortem to approve: "
                    "import one first"
                )
            if old.status is PostmortemStatus.APPROVED:
                raise FollowUpError(
                    f"the postmortem of #{incident_number} is already approved by {old.approved_by}"
                )
            approved = Postmortem(
                incident_number,
                old.markdown,
                PostmortemStatus.APPROVED,
                now,
                _who(actor),
                _who(actor),
                now,
            )
            conn.execute(_update_postmortem(incident_number).values(_postmortem_values(approved)))
            data = {
                "detail": f"approved by {_who(actor)}",
                "sha256": digest(old.markdown),
                "previous_status": old.status.value,
            }
            entry = EntryDraft(Kind.POSTMORTEM_APPROVED, actor, now, data)
            tx.append_timeline(incident_number, [entry], now)
            return approved

        return await self._in_transaction(work)

    async def list_action_items(
        self,
        incident_number: int | None = None,
        owner: str | None = None,
        *,
        open_only: bool = False,
        between: tuple[int, int] | None = None,
    ) -> list[ActionItem]:
        """In id order; `between` keeps those of incidents first..last (inclusive)."""
        query = sa.select(action_items).order_by(action_items.c.id)
        if incident_number is not None:
            query = query.where(action_items.c.incident_number == incident_number)
        if between is not None:
            query = query.where(action_items.c.incident_number.between(*between))
        if owner is not None:
            query = query.where(action_items.c.owner == owner)
        if open_only:
            closed = [s.value for s in ActionItemStatus if s.is_closed]
            query = query.where(action_items.c.status.not_in(closed))
        return [item_from_row(row) for row in await self._read(query)]

    async def add_action_item(
        self, incident_number: int, item: NewActionItem, actor: Actor, now: dt.datetime
    ) -> ActionItem:
        def work(tx: SqlTransaction, conn: Connection) -> ActionItem:
            _require_incident(conn, incident_number)
            tx.lock_incident(incident_number)
            entry = _insert_item(conn, incident_number, item, actor, now)
            tx.append_timeline(incident_number, [entry], now)
            return _item_by_id(conn, int(entry.data["id"]))

        return await self._in_transaction(work)

    async def close_action_item(
        self,
        item_id: int,
        actor: Actor,
        now: dt.datetime,
        *,
        evidence: str,
        status: ActionItemStatus = ActionItemStatus.DONE,
    ) -> ActionItem:
        if not status.is_closed:
            raise FollowUpError(f"{status.value} does not close an action item")

        def work(tx: SqlTransaction, conn: Connection) -> ActionItem:
            item = _item_by_id(conn, item_id)
            if item.status.is_closed:
                raise FollowUpError(f"action item {item_id} is already {item.status.value}")
            tx.lock_incident(item.incident_number)
            fields = {"status": status, "evidence": evidence}
            drafts = _change_item(conn, item.incident_number, item_id, fields, actor, now)
            tx.append_timeline(item.incident_number, drafts, now)
            return _item_by_id(conn, item_id)

        return await self._in_transaction(work)

    async def _in_transaction(self, work: Callable[[SqlTransaction, Connection], T]) -> T:
        def run(conn: Connection) -> T:
            tx = SqlTransaction(conn)
            result = work(tx, conn)
            tx.flush()
            return result

        return await self._run(run, write=True)


def _update_postmortem(incident_number: int) -> sa.Update:
    return sa.update(postmortems).where(postmortems.c.incident_number == incident_number)


def _require_incident(conn: Connection, incident_number: int) -> None:
    found = conn.execute(
        sa.select(incidents.c.number).where(incidents.c.number == incident_number)
    ).first()
    if found is None:
        raise FollowUpError(f"no incident #{incident_number}")


def _locked_postmortem(
    tx: SqlTransaction, conn: Connection, incident_number: int
) -> Postmortem | None:
    """The stored postmortem, read after locking its incident so two edits take turns."""
    _require_incident(conn, incident_number)
    tx.lock_incident(incident_number)
    query = sa.select(postmortems).where(postmortems.c.incident_number == incident_number)
    row = conn.execute(query).mappings().first()
    return _postmortem(row) if row is not None else None


def _postmortem_values(postmortem: Postmortem) -> dict[str, Any]:
    return {
        "incident_number": postmortem.incident_number,
        "markdown": postmortem.markdown,
        "status": postmortem.status.value,
        "updated_at": postmortem.updated_at,
        "updated_by": postmortem.updated_by,
        "approved_by": postmortem.approved_by,
        "approved_at": postmortem.approved_at,
    }


def _postmortem(row: RowMapping) -> Postmortem:
    return Postmortem(
        incident_number=row["incident_number"],
        markdown=row["markdown"],
        status=PostmortemStatus(row["status"]),
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
        approved_by=row["approved_by"],
        approved_at=row["approved_at"],
    )


def item_from_row(row: RowMapping) -> ActionItem:
    return ActionItem(
        id=row["id"],
        incident_number=row["incident_number"],
        title=row["title"],
        owner=row["owner"],
        due=row["due"],
        type=ActionItemType(row["type"]),
        status=ActionItemStatus(row["status"]),
        created_at=row["created_at"],
        link=row["link"],
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        evidence=row["evidence"],
    )


def _item_by_id(conn: Connection, item_id: int) -> ActionItem:
    row = conn.execute(sa.select(action_items).where(action_items.c.id == item_id)).mappings()
    found = row.first()
    if found is None:
        raise FollowUpError(f"no action item {item_id}")
    return item_from_row(found)


def _shown(value: Any) -> Any:
    """A field's value as the timeline's JSON holds it."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return getattr(value, "value", value)


def _insert_item(
    conn: Connection, incident_number: int, item: NewActionItem, actor: Actor, now: dt.datetime
) -> EntryDraft:
    closed = item.status.is_closed
    values = {
        "incident_number": incident_number,
        "title": item.title,
        "owner": item.owner,
        "due": item.due,
        "type": item.type.value,
        "status": item.status.value,
        "link": item.link,
        "created_at": now,
        "closed_at": now if closed else None,
        "closed_by": _who(actor) if closed else "",
        "evidence": item.link if closed else "",
    }
    key = conn.execute(sa.insert(action_items).values(values)).inserted_primary_key
    if key is None:
        raise RuntimeError("the database did not return the new action item's id")
    item_id = int(key[0])
    data = {"id": item_id, **{k: _shown(v) for k, v in vars(item).items()}}
    return EntryDraft(Kind.ACTION_ITEM_ADDED, actor, now, data)


def _change_item(
    conn: Connection,
    incident_number: int,
    item_id: int,
    fields: dict[str, Any],
    actor: Actor,
    now: dt.datetime,
) -> list[EntryDraft]:
    """Applies changed fields; moving to done or wontfix closes the item and records its
    evidence (the given evidence, else its link), moving back out of them reopens it."""
    item = _item_by_id(conn, item_id)
    if item.incident_number != incident_number:
        raise FollowUpError(f"action item {item_id} belongs to incident #{item.incident_number}")
    values = {k: _shown(v) for k, v in fields.items() if k != "evidence"}
    status = ActionItemStatus(values.get("status", item.status.value))
    closing = status.is_closed and not item.status.is_closed
    if closing:
        evidence = str(fields.get("evidence") or fields.get("link") or item.link)
        values.update(closed_at=now, closed_by=_who(actor), evidence=evidence)
    elif item.status.is_closed and not status.is_closed:
        values.update(closed_at=None, closed_by="", evidence="")
    if "due" in values:
        values["due"] = fields["due"]
    conn.execute(sa.update(action_items).where(action_items.c.id == item_id).values(values))
    changed = {
        k: [_shown(getattr(item, k)), _shown(v)] for k, v in fields.items() if k != "evidence"
    }
    if closing:
        data = {"id": item_id, "title": item.title, "status": status.value, "evidence": evidence}
        others = {k: v for k, v in changed.items() if k != "status"}
        return [EntryDraft(Kind.ACTION_ITEM_CLOSED, actor, now, data | _changes(others))]
    return [
        EntryDraft(
            Kind.ACTION_ITEM_UPDATED,
            actor,
            now,
            {"id": item_id, "title": item.title, **_changes(changed)},
        )
    ]


def _changes(changed: dict[str, list[Any]]) -> dict[str, Any]:
    return {"changes": changed} if changed else {}
