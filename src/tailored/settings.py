"""Runtime settings: environment (``TAILORED_*``) over ``tailored.toml`` over defaults.

Nothing is read at import time; call :func:`load_settings` (or build ``Settings``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
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
    spark_driver_memory: str = Field(
        "2g", pattern=r"^[1-9][0-9]*[kmgt]$", description="The Spark driver's heap for "
        "`tailored train --engine spark` (`8g`); in local mode the work runs in it too.")
    # API keys and request limits (tailored.serving.auth, tailored.serving.security).
    allow_open_access: bool = Field(
        False, description="Serve without API keys on a host other than 127.0.0.1 (only "
        "behind a proxy that authenticates); without keys, loopback is the default.")
    key_cache_seconds: float = Field(
        5.0, ge=0, le=300, description="How long a verified API key is trusted before it is "
        "checked in the store again: a revocation applies within this time everywhere.")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024,
                                description="Largest request body accepted (413 beyond).")
    user_token_secret: SecretStr | None = Field(
        None, min_length=32, description="Signs user tokens (tailored.serving.user_tokens): "
        "a page's credential bound to one user. Unset: user tokens are off. Changing it "
        "revokes every token.")
    cors_allowed_origins: list[str] = Field(
        default_factory=list, max_length=100, description="Origins whose pages may call the "
        "API from a browser (CORS), exactly as a browser sends them: `https://shop.example`, "
        "`http://localhost:3000` (scheme, host, a port other than the default; no path, no "
        "wildcard). They may send GET and POST with `Authorization` and `Content-Type`, "
        "and are trusted while the service is open as this machine's pages are. Empty: no "
        "CORS headers at all.")
    rate_limit_per_second: float = Field(
        2000.0, ge=0, description="Requests per second each API key may make on average "
        "(429 beyond), so no one backend takes a host whole; also each address while the "
        "service is open. 0 turns rate limits off.")
    rate_limit_per_user_per_second: float = Field(
        20.0, ge=0, description="Requests per second each user token, and each address "
        "without a valid credential, may make on average (a page, or someone guessing "
        "keys). 0 turns this limit off.")
    rate_limit_burst_seconds: float = Field(
        2.0, gt=0, le=3600, description="How many seconds of its rate a caller may spend at "
        "once (the bucket's size) before the rate applies.")
    # Serving speed and the served log (tailored.serving.cache, tailored.serving.served_log).
    workers: int = Field(1, ge=1, le=64, description="API worker processes (`tailored serve`).")
    access_log: bool = Field(True, description="Log a line per request (uvicorn's access "
                             "log); off saves a little time per request.")
    cache_entries: int = Field(
        20_000, ge=0, description="Users whose scored top list each worker keeps (0: no "
        "cache); each entry is validated against the store on every request.")
    cache_top_n: int = Field(
        200, ge=10, le=10_000, description="How many of a model's best items a cache entry "
        "holds; requests for more, or filters that leave too few, score afresh.")
    loaded_models: int = Field(
        4, ge=1, le=64, description="Model versions kept loaded besides the active one "
        "(`model=` requests, experiment variants).")
    served_log_flush_seconds: float = Field(
        1.0, gt=0, le=60, description="How often answers are written to the served log; a "
        "crash may lose up to this much of it (answers are not acknowledged events).")
    # Exploration (tailored.serving.exploration): a LinUCB bandit per served version.
    exploration_share: float = Field(
        0.0, ge=0, le=1, description="Default share of recommendation slots the bandit fills "
        "(`explore=` per request overrides it); 0 is off.")
    new_arrivals_share: float = Field(
        0.0, ge=0, le=1, description="Default share of recommendation slots given to items "
        "added after the serving model was trained, chosen by content (`new_arrivals=` per "
        "request or placement overrides it); 0 is off.")
    demo_storefront: bool = Field(
        False, description="Serve the demo storefront at /demo/shop (`tailored demo` turns "
        "it on) and store its placements at start.")
    placements_file: Path | None = Field(
        None, description="A placements TOML file that `tailored serve` stores at start "
        "(each placement that changed gets a new version).")
    exploration_alpha: float = Field(
        1.0, ge=0, le=10, description="Width of the bandit's confidence bounds: more "
        "explores harder, 0 only exploits its click estimates.")
    exploration_poll_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often each worker reads new feedback (served "
        "answers and their impressions and clicks) from the store into its bandits.")
    exploration_feedback_seconds: float = Field(
        30.0, ge=0, le=86_400, description="How long after an answer its clicks still teach "
        "the bandit: an answer is learnt from once it is this old (clicks later are lost).")

    # Retention (tailored.jobs.retention; `tailored retain`, and each retraining worker round).
    retention_days: int | None = Field(
        None, ge=1, description="Events (of every type) older than this many days are "
        "deleted, by their timestamp; unset keeps them forever.")
    served_retention_days: int | None = Field(
        None, ge=1, description="Served answers (the served log) and impression events "
        "older than this many days are deleted, even while retention_days keeps other "
        "events; unset keeps them forever.")
    keep_versions: int | None = Field(
        None, ge=1, description="Newest model versions kept in the registry; older ones are "
        "forgotten and their artifacts under model_dir deleted. The active version, the one "
        "a rollback returns to and those of draft or running experiments are always kept. "
        "Unset keeps every version.")

    # Data rights (tailored.jobs.erase, tailored.store.pseudonymous).
    privacy_secret: SecretStr | None = Field(
        None, min_length=32, description="Keys the hashes that name erased users in the "
        "audit and, with pseudonymize_user_ids, the pseudonyms stored instead of user ids. "
        "Unset: audit hashes use a key the store makes for itself. Set it from the "
        "environment (TAILORED_PRIVACY_SECRET), never in a file under version control.")
    pseudonymize_user_ids: bool = Field(
        False, description="Store a keyed HMAC of each user id (privacy_secret is the key) "
        "instead of the id itself: the store, the models and the logs never hold the raw "
        "id; requests, imports and the CLI still use it.")
    events_without_consent: Literal["keep", "discard"] = Field(
        "keep", description="What happens to the events of a user who withholds "
        "personalization: `keep` stores them unused (consent may be given again); "
        "`discard` refuses new ones over REST and deletes stored ones at each retention "
        "run (`tailored retain`, the retraining worker).")
    erasure_retrain_hours: float = Field(
        24.0, gt=0, le=24 * 30, description="Within how many hours of an erasure a "
        "retraining replaces the models whose item-level state the erased users shaped "
        "(the retraining worker honours it; `tailored retrain` does it at once).")

    # Webhooks (tailored.jobs.webhooks): signed POSTs to subscribed URLs, retried.
    webhook_delivery: bool = Field(
        True, description="Send due webhooks from a background thread of each API worker; "
        "turn off where `tailored webhooks send --follow` runs instead.")
    webhook_poll_seconds: float = Field(
        1.0, gt=0, le=3600, description="How often a dispatcher looks for due webhook "
        "deliveries: the delay before a new event is sent, at most.")
    webhook_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="How long a webhook receiver has to connect and to "
        "answer; slower is a failed attempt.")
    webhook_max_attempts: int = Field(
        15, ge=1, le=100, description="Attempts per webhook delivery before it is marked "
        "failed (with the default backoff, 15 attempts span about three hours).")
    webhook_backoff_seconds: float = Field(
        1.0, gt=0, le=3600, description="Wait after a webhook's first failed attempt; it "
        "doubles after each further one, up to webhook_max_backoff_seconds.")
    webhook_max_backoff_seconds: float = Field(
        3600.0, gt=0, le=86_400, description="Longest wait between two attempts of a "
        "webhook delivery.")

    @field_validator("cors_allowed_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        """Each origin as a browser serializes it, since CORS compares them as text."""
        for origin in origins:
            try:
                parts = urlsplit(origin)
                port = parts.port
            except ValueError:
                parts, port = None, None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
                    or "*" in origin or "@" in parts.netloc:
                raise ValueError(
                    f"cors_allowed_origins: {origin!r} is not an origin; list each page's "
                    "scheme, host and port, e.g. https://shop.example or "
                    "http://localhost:3000 (no wildcards)")
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            default = 443 if parts.scheme == "https" else 80
            exact = f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")
            if origin != exact:
                raise ValueError(
                    f"cors_allowed_origins: write {origin!r} as {exact!r}, the way a browser "
                    "sends it (lower case, no path or trailing slash, no default port)")
        return origins

    @model_validator(mode="after")
    def _pseudonyms_need_a_secret(self) -> Settings:
        if self.pseudonymize_user_ids and self.privacy_secret is None:
            raise ValueError("pseudonymize_user_ids needs privacy_secret (at least 32 "
                             "characters, from the environment: TAILORED_PRIVACY_SECRET)")
        return self

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
