"""One end-to-end run with the real ECAPA-TDNN model and Silero VAD on real speech (LibriSpeech
excerpts): enroll from three segments of one reader, verify a held-out segment of the same reader
(accept) and of another reader (reject). Skips when the model is not pulled or the data is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceprint.config import ModelThresholds

LIBRI = "speech/librispeech-train-clean-100-excerpts"
#: Fallback only used when no calibration is stored with the model (the registry wins).
ECAPA_FALLBACK_COSINE = 0.35


@pytest.fixture(scope="module")
def ecapa():  # type: ignore[no-untyped-def]
    from core.settings import Settings
    from voiceprint.embedders import load_embedder
    from voiceprint.errors import ModelUnavailable

    settings = Settings()
    model_dir = Path(__file__).resolve().parents[2] / "var" / "models"
    try:
        return load_embedder("ecapa", model_dir=model_dir, settings=settings.voiceprint)
    except ModelUnavailable as exc:
        pytest.skip(f"ECAPA model not installed ({exc.detail}); run `songgate models pull`")


def _segments(path: Path, seconds: float, count: int) -> list[np.ndarray]:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    n = int(seconds * sr)
    return [y[i * n : (i + 1) * n] for i in range(count) if (i + 1) * n <= y.size]


@pytest.mark.model
def test_ecapa_enroll_and_verify_real_speech(ecapa, shared_data, tmp_path, tmp_settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from signals import encode
    from vp_support import VoiceApi, make_app

    from db import keys as dbkeys

    files = sorted((shared_data / LIBRI).glob("*.flac"))
    longest = sorted(files, key=lambda p: p.stat().st_size)[-2:]  # two long readings, two speakers
    target, other = longest
    assert target.name.split("-")[0] != other.name.split("-")[0]
    enroll_segs = _segments(target, 3.5, 4)
    assert len(enroll_segs) == 4, "need 14 s of the target reader"
    impostor = _segments(other, 3.5, 1)[0]

    vp = tmp_settings.voiceprint.model_copy(
        update={
            "thresholds": {ecapa.model_id: ModelThresholds(cosine=ECAPA_FALLBACK_COSINE)},
            "enroll_min_speech_s": 2.0,
            "enroll_min_snr_db": 10.0,
            "cohort_source": "none",
        }
    )
    settings = tmp_settings.model_copy(update={"voiceprint": vp})
    with TestClient(make_app(settings, ecapa)) as c:
        with c.app.state.session_factory() as s, s.begin():
            key = dbkeys.create_key(s, name="t", scopes=["admin"])[1]
        api = VoiceApi(c, lambda *sc: {"Authorization": f"Bearer {key}"})
        for i, seg in enumerate(enroll_segs[:3]):
            r = api.enroll("reader", encode(seg[None, :], sr=16000, path=tmp_path / f"e{i}.flac"))
            assert r.status_code == 201, r.text
        assert r.json()["status"] == "active" and r.json()["model_id"] == ecapa.model_id
        good = api.verify(
            "reader", encode(enroll_segs[3][None, :], sr=16000, path=tmp_path / "t.flac")
        ).json()
        bad = api.verify("reader", encode(impostor[None, :], sr=16000, path=tmp_path / "i.flac")).json()
    print("ECAPA scores", good["score"], bad["score"])
    assert good["score"] > bad["score"] + 0.2, (good, bad)
    assert good["decision"] == "accept" and bad["decision"] == "reject", (good, bad)
