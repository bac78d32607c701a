"""The incident summary in Block Kit, and the texts built from an incident snapshot, escaped.

Every value here comes from the snapshot, and alert labels and annotations are chosen by whoever
can send an alert: `&`, `<` and `>` are escaped so `<!channel>` or `<https://evil|click>` in a
title shows as text instead of pinging everyone or hiding a link."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

BANNER = ":rotating_light: EXERCISE — this is a drill, not a real incident"
SUMMARY_BLOCK = "incident-summary"  # block_id marking our summary message in a channel
ACTIONS_BLOCK = "incident-actions"
BUTTONS = (
    ("incident.ack", "Acknowledge", "primary"),
    ("incident.escalate", "Escalate", None),
    ("incident.resolve", "Resolve", "danger"),
)
# No button changes an incident in these states, so the summary stops offering them.
FINAL_STATES = frozenset({"closed", "declined", "merged", "canceled"})
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
MAX_HEADER, MAX_TEXT, MAX_FIELD, MAX_PURPOSE = 150, 3000, 2000, 250

Block = dict[str, Any]


def escape(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(value: object, limit: int) -> str:
    """`value` escaped and cut to `limit` characters, never in the middle of an entity."""
    escaped = escape(value)
    if len(escaped) <= limit:
        return escaped
    kept: list[str] = []
    used = 0
    for char in str(value):
        piece = escape(char)
        if used + len(piece) > limit - 1:  # room for the ellipsis
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + "…"


def clip(text: str, limit: int) -> str:
    """Already escaped text cut to `limit` characters without leaving half an entity."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&")
    return cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut


def is_drill(incident: Mapping[str, Any], flagged: bool = False) -> bool:
    return flagged or bool(incident.get("is_drill"))


def with_banner(text: str, drill: bool) -> str:
    """Drill messages open with the banner, once, so nobody mistakes one for the real thing."""
    if not drill or text.startswith(BANNER):
        return text
    return f"{BANNER}\n{text}"


def headline(incident: Mapping[str, Any]) -> str:
    """`SEV1 · #42 orders-db: database unavailable`, unescaped."""
    severity, number = incident.get("severity", ""), incident.get("number", "?")
    return f"{severity} · #{number} {incident.get('title', '')}".strip(" ·")


def summary_text(incident: Mapping[str, Any], drill: bool) -> str:
    """The notification text under the blocks (what push notifications and search show)."""
    status = incident.get("status", "")
    return with_banner(fit(f"{headline(incident)} ({status})", MAX_TEXT), drill)


def commander(incident: Mapping[str, Any]) -> str:
    who = str(incident.get("commander") or "")
    if not who:
        return "_nobody yet_"
    # Only a bare user id becomes a mention; anything else is shown as text.
    return f"<@{who}>" if SLACK_USER.fullmatch(who) else fit(who, 200)


def declared(incident: Mapping[str, Any], field: str = "declared_at") -> str:
    """A Slack date, shown in each reader's own time zone, with the ISO time as fallback."""
    raw = str(incident.get(field) or "")
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        return fit(raw, 100) or "unknown"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    iso = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{iso}>"


def _field(label: str, value: str) -> Block:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"[:MAX_FIELD]}


def summary_blocks(incident: Mapping[str, Any], drill: bool) -> list[Block]:
    """Header, facts, summary, playbook context and the Acknowledge / Escalate / Resolve
    buttons (value: the incident number, which is what the Slack responder reads)."""
    blocks: list[Block] = []
    if drill:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": BANNER}})
    blocks.append(
        {
            "type": "header",
            "block_id": SUMMARY_BLOCK,
            "text": {"type": "plain_text", "text": fit(headline(incident), MAX_HEADER)},
        }
    )
    fields = [
        _field("Status", fit(incident.get("status") or "unknown", 100)),
        _field("Severity", fit(incident.get("severity") or "unknown", 100)),
        _field("Commander", commander(incident)),
        _field("Service", fit(incident.get("service") or "unknown", 200)),
        _field("Declared", declared(incident)),
    ]
    if "next_escalation" in incident:  # the snapshot knows the escalation timers
        due = incident.get("next_escalation")
        fields.append(
            _field(
                "Next escalation", declared(incident, "next_escalation") if due else "none pending"
            )
        )
    blocks.append({"type": "section", "fields": fields})
    if summary := str(incident.get("summary") or "").strip():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": fit(summary, 2900)}})
    playbook = fit(incident.get("playbook") or "none", 200)
    version = incident.get("playbook_version")
    context = f"Playbook *{playbook}*" + (f" v{escape(version)}" if version else "")
    if team := incident.get("team"):
        context += f" · Team {fit(team, 200)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    if str(incident.get("status", "")) not in FINAL_STATES:
        blocks.append(actions_block(incident))
    return blocks


def actions_block(incident: Mapping[str, Any]) -> Block:
    number = str(incident.get("number", ""))
    buttons = []
    for action_id, label, style in BUTTONS:
        button: Block = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
            "value": number,
        }
        if style:
            button["style"] = style
        buttons.append(button)
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": buttons}


def is_summary(message: Mapping[str, Any]) -> bool:
    """Whether a message read back from a channel is a summary this app posted."""
    blocks = message.get("blocks") or []
    return bool(message.get("bot_id")) and any(
        isinstance(b, Mapping) and b.get("block_id") == SUMMARY_BLOCK for b in blocks
    )


def default_topic(incident: Mapping[str, Any]) -> str:
    return fit(headline(incident), MAX_PURPOSE)


def purpose(incident: Mapping[str, Any], marker: str) -> str:
    """The incident's summary, then the marker that tells a later attempt this channel is ours;
    the summary gives way so the marker always fits."""
    summary = str(incident.get("summary") or incident.get("title") or "")
    room = MAX_PURPOSE - len(marker) - 1
    text = fit(summary, room) if room > 0 else ""
    return f"{text} {marker}".strip()
