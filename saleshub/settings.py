"""The hub's settings: one pydantic-settings model, read from ``SALESHUB_*`` environment variables.

Sources, first wins: constructor arguments, environment variables (``SALESHUB_MAPPINGS_DIR`` …), an
optional ``.env`` file in the working directory, then the defaults below.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Where the hub finds its steward-owned files and contracts."""

    model_config = SettingsConfigDict(env_prefix="SALESHUB_", env_file=".env", extra="ignore")

    mappings_dir: Path = Field(default=Path("mappings"), description="mapping files and crosswalks")
    samples_dir: Path = Field(
        default=Path("contracts/samples"), description="golden sample payloads with expected output"
    )
