"""Settings from the environment (ORCH_*) or a .env file; secrets are SecretStr and never logged."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/orchestrator.db"


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

    def safe_database_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        scheme, sep, rest = self.database_url.partition("://")
        if not sep or "@" not in rest:
            return self.database_url
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else self.database_url
