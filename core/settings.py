"""Service settings: pydantic-settings, env prefix ``SONGGATE_``, nested with ``__``.

``get_settings()`` is cached; tests call ``get_settings.cache_clear()`` after changing the env.
Outside development mode, secrets must be given explicitly (fail fast at start-up).
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from audio.checks.config import CheckSettings
from audio.limits import AudioLimits
from claims.config import ClaimSettings
from effects.config import EffectSettings
from jobs.config import JobSettings
from voiceprint.config import VoiceprintSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SONGGATE_", env_nested_delimiter="__", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    model_dir: Path | None = Field(None, description="Model cache; defaults to DATA_DIR/models")
    blob_dir: Path | None = Field(None, description="Blob store root; defaults to DATA_DIR/blobs")
    database_url: str | None = Field(None, description="SQLAlchemy URL; defaults to SQLite in DATA_DIR")
    secret_key: SecretStr | None = Field(None, description="HMAC key for tokens; required in production")
    bootstrap_admin_key: SecretStr | None = Field(
        None, description="If set, an admin API key with this value is ensured at start-up"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(2, ge=1, le=64, description="CPU worker pool size for decoding/analysis")
    worker_mode: Literal["process", "thread"] = "process"
    load_models: bool = Field(True, description="Load voiceprint models in the API lifespan")

    limits: AudioLimits = Field(default_factory=AudioLimits)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    effects: EffectSettings = Field(default_factory=EffectSettings)
    voiceprint: VoiceprintSettings = Field(default_factory=VoiceprintSettings)
    claims: ClaimSettings = Field(default_factory=ClaimSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)

    @model_validator(mode="after")
    def _secrets_fail_fast(self) -> Settings:
        if self.env == "production":
            if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("SONGGATE_SECRET_KEY (at least 32 characters) is required in production")
            if self.database_url is None:
                raise ValueError("SONGGATE_DATABASE_URL is required in production")
        return self

    @property
    def resolved_model_dir(self) -> Path:
        return (self.model_dir or self.data_dir / "models").resolve()

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'songgate.db').resolve()}"

    def secret(self) -> bytes:
        """HMAC key; in development a per-data-dir random key is created once and kept."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.replace(path)
        return path.read_text().strip().encode()


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
