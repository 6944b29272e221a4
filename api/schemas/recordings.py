"""Request/response schemas for recordings."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from core.errors import InvalidRequest

ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"


class RecordingForm(BaseModel):
    """The non-file fields of ``POST /v1/recordings``."""

    user_id: str = Field(pattern=ID_PATTERN)
    song_id: str = Field(pattern=ID_PATTERN)
    kind: Literal["mix", "vocal"]

    @classmethod
    def parse(cls, fields: dict[str, str]) -> RecordingForm:
        from pydantic import ValidationError

        try:
            return cls.model_validate({k: fields.get(k) for k in ("user_id", "song_id", "kind")})
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            raise InvalidRequest("invalid form fields", errors=errors) from None


class RecordingOut(BaseModel):
    id: str
    user_id: str
    song_id: str
    kind: str
    sha256: str
    size_bytes: int
    filename: str | None
    media_type: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float
    created_at: dt.datetime
    report: dict[str, Any]
    links: dict[str, str]

    @field_validator("duration_s")
    @classmethod
    def _round(cls, v: float) -> float:
        return round(v, 4)


class RecordingList(BaseModel):
    items: list[RecordingOut]
