"""Test doubles and fixtures-as-functions for the jobs tests.

``FakeEmbedder`` implements the SpeakerEmbedder protocol deterministically: the embedding is the
signal's power spectrum summed into log-spaced bands (unit L2 norm). Model "a" has 6 coarse bands,
model "b" 48 fine ones, so two voices (tones) 7 % apart are the same voice to model a and two
voices to model b -- a model change that flips decisions and search links in a known way.
Loaded in job workers as ``jobfakes:model_a`` / ``jobfakes:model_b`` (this folder is on sys.path,
which spawned workers and local Ray actors inherit).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000


class FakeEmbedder:
    sample_rate = SR
    min_duration_s = 0.5

    def __init__(self, model_id: str, bands: int) -> None:
        self.model_id = model_id
        self.dimension = bands
        self.edges = np.geomspace(100.0, 4000.0, bands + 1)
        self.calls = 0

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        from voiceprint.embedders.base import check_speech, l2_normalize

        y = check_speech(y, sr=sr, sample_rate=self.sample_rate, min_duration_s=self.min_duration_s)
        self.calls += 1
        power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
        freqs = np.fft.rfftfreq(y.size, 1.0 / sr)
        idx = np.searchsorted(self.edges, freqs, side="right") - 1
        ok = (idx >= 0) & (idx < self.dimension)
        bands = np.bincount(idx[ok], weights=power[ok], minlength=self.dimension)
        return l2_normalize(np.sqrt(bands) + 1e-9)

    def embed_batch(self, ys: Any, *, sr: int) -> np.ndarray:
        return np.stack([self.embed(y, sr=sr) for y in ys])


def model_a() -> FakeEmbedder:
    return FakeEmbedder("fake-a@1", 6)


def model_b() -> FakeEmbedder:
    return FakeEmbedder("fake-b@1", 48)


def voice(freq: float, *, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A "voice": a tone at ``freq`` in 250 ms syllables with 100 ms pauses (so a VAD finds speech
    and pauses), a little seeded noise throughout; mono float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    phase = (t % 0.35) / 0.25
    # Smooth (sin^2) syllable envelopes: little spectral spread, so the tone stays in its band.
    envelope = np.where(phase < 1.0, np.sin(np.pi * np.minimum(phase, 1.0)) ** 2, 0.0)
    y = 0.4 * np.sin(2 * np.pi * freq * t) * envelope + 0.002 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int = SR) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.atleast_2d(y).T, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def add_recording(
    session: Any,
    blobs: Any,
    path: Path,
    *,
    user_id: str = "u1",
    kind: str = "mix",
    report: dict[str, Any] | None = None,
    report_version: str = "old",
) -> str:
    """Store ``path`` as a recording (blob + row) the way an upload would leave it."""
    import datetime as dt

    from db.base import new_id
    from db.tables import Recording

    data = Path(path).read_bytes()
    sha, size = blobs.put_bytes(data)
    rec = Recording(
        id=new_id("rec"),
        user_id=user_id,
        song_id="song1",
        kind=kind,
        sha256=sha,
        size_bytes=size,
        filename=Path(path).name,
        media_type="audio/wav",
        container="wav",
        codec="pcm_s16le",
        sample_rate=44100,
        channels=1,
        duration_s=1.0,
        report=report
        if report is not None
        else {"verdict": "pass", "settings_version": report_version, "checks": []},
        report_version=report_version,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(rec)
    session.flush()
    return rec.id


def add_voiceprint(session: Any, blobs: Any, embedder: FakeEmbedder, user_id: str, freqs: list[float]) -> str:
    """An active voiceprint of ``embedder``'s model with one enrollment utterance per frequency."""
    import datetime as dt

    from db.base import new_id
    from voiceprint.scoring import mean_voiceprint
    from voiceprint.tables import Embedding, EnrollmentUtterance, Voiceprint, vector_to_bytes

    now = dt.datetime.now(dt.UTC)
    vp = Voiceprint(
        id=new_id("vp"),
        user_id=user_id,
        model_id=embedder.model_id,
        version=1,
        status="active",
        active=True,
        n_utterances=len(freqs),
        stats={},
        created_at=now,
        activated_at=now,
    )
    session.add(vp)
    session.flush()
    vectors = []
    for i, f in enumerate(freqs):
        y = voice(f, seed=i)
        sha, size = blobs.put_bytes(wav_bytes(y))
        utt = EnrollmentUtterance(
            id=new_id("utt"),
            voiceprint_id=vp.id,
            user_id=user_id,
            sha256=sha,
            size_bytes=size,
            duration_s=y.size / SR,
            speech_s=y.size / SR,
            quality={"snr_db": 40.0},
            created_at=now,
        )
        session.add(utt)
        session.flush()
        v = embedder.embed(y, sr=SR)
        vectors.append(v)
        session.add(
            Embedding(
                id=new_id("emb"),
                voiceprint_id=vp.id,
                utterance_id=utt.id,
                kind="utterance",
                model_id=embedder.model_id,
                dimension=embedder.dimension,
                vector=vector_to_bytes(v),
                created_at=now,
            )
        )
    session.add(
        Embedding(
            id=new_id("emb"),
            voiceprint_id=vp.id,
            utterance_id=None,
            kind="voiceprint",
            model_id=embedder.model_id,
            dimension=embedder.dimension,
            vector=vector_to_bytes(mean_voiceprint(np.stack(vectors))),
            created_at=now,
        )
    )
    session.flush()
    return vp.id


def add_attempt(
    session: Any,
    blobs: Any,
    embedder: FakeEmbedder,
    user_id: str,
    voiceprint_id: str,
    freq: float | None,
    *,
    threshold: float,
    store_audio: bool = True,
) -> tuple[str, str]:
    """A past verification attempt scored by ``embedder`` (raw cosine) against the voiceprint."""
    import datetime as dt

    from db.base import new_id
    from voiceprint.tables import Embedding, VerificationAttempt, vector_from_bytes

    y = voice(freq or 500.0, seed=99)
    data = wav_bytes(y)
    sha = hashlib.sha256(data).hexdigest()
    if store_audio:
        sha, _ = blobs.put_bytes(data)
    row = session.query(Embedding).filter_by(voiceprint_id=voiceprint_id, kind="voiceprint").one()
    score = float(np.dot(embedder.embed(y, sr=SR), vector_from_bytes(row.vector, row.dimension)))
    decision = "accept" if score >= threshold else "reject"
    att = VerificationAttempt(
        id=new_id("att"),
        user_id=user_id,
        challenge_id=new_id("ch"),
        prompt="12345678",
        voiceprint_id=voiceprint_id,
        model_id=embedder.model_id,
        score=score,
        normalized_score=None,
        threshold=threshold,
        method="cosine",
        cohort_size=0,
        decision=decision,
        audio_sha256=sha,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(att)
    session.flush()
    return att.id, decision


class CrashingEmbedder(FakeEmbedder):
    """Model b, except that a voice at 666 Hz kills the worker process (a segfault stand-in)."""

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(y))
        if abs(float(np.fft.rfftfreq(y.size, 1.0 / sr)[int(np.argmax(spectrum))]) - 666.0) < 5.0:
            import os

            os._exit(70)
        return super().embed(y, sr=sr)


def crashing_b() -> FakeEmbedder:
    return CrashingEmbedder("fake-b@1", 48)
