"""Fixtures for the voiceprint service: an app whose embedder is the deterministic fake, settings
with thresholds for the fake model, and helpers to enroll and verify through the HTTP API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vp_fakes import MODEL_ID, SR, FakeEmbedder, Voice, speak

from voiceprint.config import ModelThresholds

ALICE = Voice(f0=120.0, formants=(420.0, 1250.0, 2800.0))
BOB = Voice(f0=210.0, formants=(820.0, 2050.0, 3350.0))
CAROL = Voice(f0=165.0, formants=(600.0, 1000.0, 2550.0))

FAKE_THRESHOLDS = ModelThresholds(cosine=0.8, asnorm=2.0, search=0.9)


@pytest.fixture
def vp_settings(tmp_settings):  # type: ignore[no-untyped-def]
    """tmp_settings with the service tuned for the fake embedder (energy VAD, fake thresholds)."""
    vp = tmp_settings.voiceprint.model_copy(
        update={
            "service_vad": "energy",
            "thresholds": {MODEL_ID: FAKE_THRESHOLDS},
            "enroll_min_speech_s": 2.0,
            "cohort_source": "none",
            "verify_rate_limit": 100,
            "challenge_rate_limit": 100,
        }
    )
    return tmp_settings.model_copy(update={"voiceprint": vp})


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


def make_app(settings: Any, embedder: Any) -> Any:
    from api.app import create_app
    from api.deps import get_embedder

    app = create_app(settings)
    app.dependency_overrides[get_embedder] = lambda: embedder
    return app


@pytest.fixture
def vp_client(vp_settings, fake_embedder) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(make_app(vp_settings, fake_embedder)) as c:
        yield c


@pytest.fixture
def keys(vp_client) -> Callable[..., dict[str, str]]:  # type: ignore[no-untyped-def]
    from db import keys as dbkeys

    def make(*scopes: str) -> dict[str, str]:
        with vp_client.app.state.session_factory() as s, s.begin():
            _, plaintext = dbkeys.create_key(s, name="test", scopes=list(scopes))
        return {"Authorization": f"Bearer {plaintext}"}

    return make


@pytest.fixture
def utterance(tmp_path: Path) -> Callable[..., Path]:
    """``utterance(voice, rng, **speak_kwargs)`` -> a FLAC file of that voice."""
    counter = iter(range(10_000))

    def make(
        voice: Voice,
        rng: np.random.Generator,
        *,
        fmt: str = "flac",
        y: np.ndarray | None = None,
        **kwargs: Any,
    ) -> Path:
        from signals import encode

        samples = speak(voice, rng, **kwargs) if y is None else y
        return encode(samples[None, :], sr=SR, path=tmp_path / f"utt{next(counter)}.{fmt}")

    return make


class VoiceApi:
    """Thin helpers over the HTTP API."""

    def __init__(self, client: Any, keys: Callable[..., dict[str, str]]) -> None:
        self.c = client
        self.upload = keys("upload")
        self.claim = keys("claim")
        self.admin = keys("admin")

    def enroll(self, user: str, path: Path, headers: dict[str, str] | None = None) -> Any:
        return self.c.post(
            f"/v1/voiceprints/{user}/enrollments",
            headers=headers or self.upload,
            files={"file": (path.name, path.read_bytes())},
        )

    def challenge(self, user: str) -> Any:
        return self.c.post(f"/v1/voiceprints/{user}/challenges", headers=self.claim)

    def verify(
        self, user: str, path: Path, challenge_id: str | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        if challenge_id is None:
            r = self.challenge(user)
            assert r.status_code == 201, r.text
            challenge_id = r.json()["challenge_id"]
        return self.c.post(
            f"/v1/voiceprints/{user}/verifications",
            headers=headers or self.claim,
            data={"challenge_id": challenge_id},
            files={"file": (path.name, path.read_bytes())},
        )

    def enroll_n(
        self, user: str, voice: Voice, rng: np.random.Generator, utterance: Callable[..., Path], n: int = 3
    ) -> list[Any]:
        out = []
        for _ in range(n):
            r = self.enroll(user, utterance(voice, rng))
            assert r.status_code == 201, r.text
            out.append(r.json())
        return out


@pytest.fixture
def api(vp_client, keys) -> VoiceApi:  # type: ignore[no-untyped-def]
    return VoiceApi(vp_client, keys)
