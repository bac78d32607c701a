"""Settings from the environment (ORCH_*) or a .env file; secrets are SecretStr and never logged."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.ingest.alert import SourceFormat

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/orchestrator.db"


class PagerDutyServiceSettings(BaseModel):
    """One PagerDuty service a playbook may page, by the name playbooks use."""

    model_config = ConfigDict(extra="forbid")

    routing_key: SecretStr = Field(description="the service's Events API v2 integration key")
    escalation_policy: str | None = Field(
        None, description="its escalation policy id (P...), to look up who is on call"
    )
    schedule: str | None = Field(
        None, description="or a schedule id, when no escalation policy is given"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORCH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://…",
    )
    playbooks_dir: Path = Field(Path("playbooks"), description="folder of playbook YAML files")
    dry_run: bool = Field(
        True,
        description="print actions instead of sending them (the default until Slack and "
        "PagerDuty are configured)",
    )

    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...); unset: no Kafka, embedded mode"
    )
    kafka_topics: str = Field(
        "alerts",
        description="topics to consume, comma separated; `topic=format` forces a format "
        "(alertmanager, grafana, cloudevents, native), otherwise it is detected",
    )
    kafka_group: str = Field("incident-orchestrator", description="consumer group id")
    kafka_dlq_suffix: str = Field(".dlq", description="dead-letter topic = source topic + this")
    kafka_events_topic: str = Field(
        "incidents.events", description="where incident lifecycle events are published"
    )
    http_host: str = Field("127.0.0.1", description="HTTP intake and health address")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP intake port; 0 disables it")
    http_token: SecretStr | None = Field(
        None, description="bearer token the HTTP intake requires (recommended off loopback)"
    )

    slack_bot_token: SecretStr | None = Field(
        None, description="Slack bot token (xoxb-...); set it to send Slack actions"
    )
    slack_signing_secret: SecretStr | None = Field(
        None, description="Slack app signing secret; set it to take /incident and buttons over HTTP"
    )
    slack_app_token: SecretStr | None = Field(
        None, description="Slack app-level token (xapp-...) for Socket Mode instead of HTTP"
    )
    slack_api_url: str | None = Field(None, description="Slack Web API base URL (tests, proxies)")
    slack_broadcast_channel: str = Field("#incidents", description="where announcements go")
    slack_responders: str = Field(
        "",
        description="comma-separated Slack user (U...) or user group (S...) ids allowed to "
        "resolve, change severity and assign the commander; empty: everyone",
    )
    slack_note_reaction: str = Field(
        "pushpin", description="the emoji that adds a message to the incident timeline"
    )
    slack_channel_creations_per_minute: int = Field(
        20, ge=1, description="pace of conversations.create (Slack's Tier 2 is about 20)"
    )

    pagerduty_services: dict[str, PagerDutyServiceSettings] = Field(
        default_factory=dict,
        description='JSON: {"name": {"routing_key": "...", "escalation_policy": "P..."}}',
    )
    pagerduty_api_token: SecretStr | None = Field(
        None, description="REST API token: on-call lookups and escalation"
    )
    pagerduty_from_email: str | None = Field(
        None, description="PagerDuty user email the REST API acts as (escalation)"
    )
    pagerduty_webhook_secret: SecretStr | None = Field(
        None, description="v3 webhook subscription secret; set it to take acks/resolves back"
    )
    pagerduty_events_url: str | None = Field(None, description="Events API base URL (tests)")
    pagerduty_api_url: str | None = Field(None, description="REST API base URL (tests)")
    pagerduty_dedup_prefix: str = Field(
        "orch",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="prefix of our dedup keys; distinct per deployment sharing an account",
    )
    incident_commander_service: str | None = Field(
        None,
        description="PagerDuty service (a name in ORCH_PAGERDUTY_SERVICES) that pages the "
        "incident commander when a major incident (SEV1, SEV2) escalates by default",
    )
    business_hours_timezone: str = Field(
        "UTC", description="time zone of the default business hours (SEV3 escalates in them)"
    )
    timer_overdue_threshold_seconds: float = Field(
        120.0,
        gt=0,
        description="timers overdue longer than this make /readyz report the timers check failed",
    )
    playbooks_watch_seconds: float = Field(
        0.0,
        ge=0,
        description="look at the playbook folder this often and reload it when it changed "
        "(as SIGHUP does); 0: only on SIGHUP",
    )
    dispatch_lease_seconds: float = Field(
        120.0,
        gt=0,
        description="how long a replica holds an action it is delivering; one that died holding "
        "it is delivered by another after this (longer than a vendor call can take)",
    )
    timer_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="how long a replica holds a due timer it is firing; a dead replica's are "
        "fired by another after this",
    )
    outbox_backlog_threshold_seconds: float = Field(
        600.0,
        gt=0,
        description="an action waiting longer than this (a vendor outage, say) makes /readyz "
        "report the outbox check failed",
    )
    fold_interval_seconds: float = Field(
        300.0,
        gt=0,
        description="how often the service folds new timeline entries into each incident's "
        "timestamps and records incidents now over in the TTA/TTR histograms of /metrics",
    )
    evidence_signing_key: SecretStr | None = Field(
        None,
        description="Ed25519 private key (PEM, or the 32-byte seed in hex) that signs the "
        "timeline checkpoints; give auditors its public key (evidence public-key)",
    )
    evidence_checkpoint_minutes: float = Field(
        15.0, gt=0, description="how often the service signs a checkpoint of the chain heads"
    )
    postmortem_due_business_days: int = Field(
        5, ge=0, description="a required postmortem not approved this long after resolution: remind"
    )
    vendor_ca_file: Path | None = Field(
        None, description="PEM bundle to trust for Slack/PagerDuty HTTPS (a proxy's CA)"
    )
    otlp_metrics_url: str | None = Field(
        None,
        description="OTLP/HTTP metrics URL (http://collector:4318/v1/metrics) the service "
        "pushes its metrics to every minute, besides serving /metrics",
    )
    otlp_traces_url: str | None = Field(
        None,
        description="OTLP/HTTP traces URL (http://collector:4318/v1/traces) the service "
        "exports its spans to: each alert's journey, deliveries, timers, commands",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="the service's logs: text, or json (one object a line, trace ids)"
    )

    @field_validator("http_token")
    @classmethod
    def _token_not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("is empty: unset ORCH_HTTP_TOKEN to turn authentication off")
        return token

    def slack_responder_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.slack_responders.split(",") if part.strip())

    def kafka_topic_formats(self) -> dict[str, SourceFormat | None]:
        """`alerts,am=alertmanager` → {"alerts": None, "am": SourceFormat.ALERTMANAGER}."""
        topics: dict[str, SourceFormat | None] = {}
        for item in self.kafka_topics.split(","):
            name, _, fmt = item.strip().partition("=")
            if not name:
                continue
            try:
                topics[name] = SourceFormat(fmt) if fmt else None
            except ValueError:
                known = ", ".join(f.value for f in SourceFormat)
                raise ValueError(
                    f"ORCH_KAFKA_TOPICS: {item.strip()!r}: unknown format (known: {known})"
                ) from None
        if not topics:
            raise ValueError("ORCH_KAFKA_TOPICS: name at least one topic")
        return topics

    def secret_values(self) -> list[str]:
        """Every secret the settings hold, in clear, for the log filter that masks them."""
        found = [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr)
        ]
        found += [s.routing_key.get_secret_value() for s in self.pagerduty_services.values()]
        credentials = self.database_url.partition("://")[2].rpartition("@")[0]
        if ":" in credentials:
            found.append(credentials.split(":", 1)[1])
        return [value for value in found if value]

    def safe_database_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        scheme, sep, rest = self.database_url.partition("://")
        if not sep or "@" not in rest:
            return self.database_url
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else self.database_url


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, what it is) for every setting, from the model itself: the table in
    docs/operations.md is this, so the two cannot drift apart. Secrets say so and show no
    default."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = []
    for name, field in Settings.model_fields.items():
        secret = "SecretStr" in str(field.annotation)
        default = field.get_default(call_default_factory=True)
        shown = "(secret)" if secret else _shown_default(default)
        rows.append((f"{prefix}{name.upper()}", shown, field.description or ""))
    return rows


def _shown_default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if value in ({}, ""):
        return "empty"
    return str(value)
