"""Runtime settings: environment (``TAILORED_*``) over ``tailored.toml`` over defaults.

Nothing is read at import time; call :func:`load_settings` (or build ``Settings``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tailored.schema import EventWeights


class Settings(BaseSettings):
    """Where data lives, how the server listens, and which model serves."""

    model_config = SettingsConfigDict(
        env_prefix="TAILORED_", env_nested_delimiter="__", toml_file="tailored.toml",
        extra="forbid",
    )

    store_url: str = "sqlite:///tailored.db"
    model_dir: Path = Path("tailored_models")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    model: str = Field("als", description="Model family trained and served by default.")
    event_weights: EventWeights = Field(default_factory=EventWeights)
    max_batch_events: int = Field(10_000, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``tailored.toml``, with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
