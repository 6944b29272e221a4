"""The real embedders (ECAPA, Resemblyzer): protocol, input errors, agreement with the upstream
implementations, batch == single, offline loading, and speaker discrimination on real speech."""

from __future__ import annotations

import shutil
import socket
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch

from audio.errors import InvalidSampleRate, InvalidSignal
from models import registry
from voiceprint.config import VoiceprintSettings
from voiceprint.embedders import SpeakerEmbedder, load_embedder
from voiceprint.embedders.ecapa_graph import EcapaGraph
from voiceprint.errors import ModelUnavailable, TooLittleSpeech

pytestmark = pytest.mark.model


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(params=["ecapa", "resemblyzer"])
def embedder(request):
    return request.getfixturevalue(request.param)


def test_protocol_attributes(embedder):
    assert isinstance(embedder, SpeakerEmbedder)
    spec = registry.get(type(embedder).__name__.removesuffix("Embedder").lower())
    assert embedder.model_id == spec.model_id
    assert embedder.sample_rate == 16000
    assert embedder.dimension == {"ecapa": 192, "resemblyzer": 256}[spec.backend]
    assert embedder.min_duration_s == VoiceprintSettings().min_speech_s


def test_embedding_is_unit_float32(embedder, rng):
    y = rng.normal(0, 0.1, 16000 * 2).astype(np.float32)
    e = embedder.embed(y, sr=16000)
    assert e.shape == (embedder.dimension,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("make", "sr", "expect"),
    [
        (lambda r: r.normal(0, 0.1, 16000).astype(np.float32), 16000, nullcontext()),
        (lambda r: r.normal(0, 0.1, 15999).astype(np.float32), 16000, pytest.raises(TooLittleSpeech)),
        (lambda r: np.zeros(0, np.float32), 16000, pytest.raises(TooLittleSpeech)),
        (lambda r: r.normal(0, 0.1, 16000).astype(np.float32), 8000, pytest.raises(InvalidSampleRate)),
        (lambda r: r.normal(0, 0.1, 16000).astype(np.float32), 16000.0, pytest.raises(InvalidSampleRate)),
        (lambda r: r.normal(0, 0.1, (2, 16000)).astype(np.float32), 16000, pytest.raises(InvalidSignal)),
        (lambda r: np.full(16000, np.nan, np.float32), 16000, pytest.raises(InvalidSignal)),
        (lambda r: np.zeros(16000, np.int16), 16000, pytest.raises(InvalidSignal)),
        (lambda r: [0.0] * 16000, 16000, pytest.raises(InvalidSignal)),
    ],
    ids=["ok-1s", "too-short", "empty", "8k", "float-sr", "stereo", "nan", "int16", "list"],
)
def test_input_errors(embedder, rng, make, sr, expect):
    with expect:
        embedder.embed(make(rng), sr=sr)


def test_too_little_speech_is_a_422_with_details(embedder):
    with pytest.raises(TooLittleSpeech) as err:
        embedder.embed(np.zeros(8000, np.float32), sr=16000)
    problem = err.value.to_problem()
    assert problem["code"] == "too_little_speech" and problem["status"] == 422
    assert problem["speech_s"] == 0.5 and problem["min_speech_s"] == embedder.min_duration_s
    with pytest.raises(TooLittleSpeech) as err:
        embedder.embed_batch([np.zeros(16000, np.float32), np.zeros(100, np.float32)], sr=16000)
    assert err.value.extra["index"] == 1


def test_batch_equals_single(embedder, speakers3):
    ys = [speakers3[0][: 16000 * 3], speakers3[1][: int(16000 * 4.3)], speakers3[2][:16000]]
    batch = embedder.embed_batch(ys, sr=16000)
    for row, y in zip(batch, ys, strict=False):
        assert cos(row, embedder.embed(y, sr=16000)) > 0.9999
    assert embedder.embed_batch([], sr=16000).shape == (0, embedder.dimension)


def test_same_speaker_scores_higher_than_different_speakers(embedder, speakers3):
    from voiceprint.speech import speech_only

    halves = []
    for y in speakers3:
        s = speech_only(y, sr=16000)
        halves.append((s[: len(s) // 2], s[len(s) // 2 :]))
    emb = [embedder.embed_batch(list(h), sr=16000) for h in halves]
    same = [cos(a, b) for a, b in emb]
    diff = [cos(emb[i][0], emb[j][1]) for i in range(3) for j in range(3) if i != j]
    assert min(same) > max(diff)


# --- ECAPA specifics ----------------------------------------------------------------------------


def test_ecapa_matches_speechbrain_encode_batch(ecapa, speakers3):
    for y in (speakers3[0][: 16000 * 3], speakers3[1][: 16000 * 7]):
        with torch.no_grad():
            ref = ecapa.classifier.encode_batch(torch.from_numpy(y)[None]).reshape(-1).numpy()
        assert cos(ecapa.embed(y, sr=16000), ref) > 0.999


def test_ecapa_float32_graph_is_exact_and_packing_does_not_leak(ecapa, speakers3):
    """The graph in float32 reproduces speechbrain to float rounding, also when utterances of
    different lengths share one packed pass (per-utterance reflect padding and statistics)."""
    graph = EcapaGraph(ecapa.classifier.mods.embedding_model, dtype=torch.float32)
    ys = [speakers3[0][: 16000 * 2], speakers3[1][: 16000 + 1234], speakers3[2][: 16000 * 3]]
    packed = graph([ecapa.features(y) for y in ys]).numpy()
    for row, y in zip(packed, ys, strict=False):
        with torch.no_grad():
            ref = ecapa.classifier.encode_batch(torch.from_numpy(y)[None]).reshape(-1).numpy()
        np.testing.assert_allclose(row, ref, rtol=0, atol=2e-3 * np.abs(ref).max())
        assert cos(row, ref) > 0.99999


def test_ecapa_loads_offline_without_touching_the_model_dir(model_dir, monkeypatch):
    files = {p: p.stat().st_mtime_ns for p in registry.install_dir("ecapa", model_dir).iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted while loading")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    emb = load_embedder("ecapa", model_dir=model_dir, settings=VoiceprintSettings(ecapa_precision="float32"))
    assert emb.dtype == torch.float32
    assert {p: p.stat().st_mtime_ns for p in registry.install_dir("ecapa", model_dir).iterdir()} == files


# --- loading failures ------------------------------------------------------------------------


def test_missing_model_is_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="songgate models pull") as err:
        load_embedder("ecapa", model_dir=tmp_path, settings=VoiceprintSettings())
    assert err.value.status == 503 and err.value.code == "model_unavailable"
    with pytest.raises(ModelUnavailable):
        load_embedder("nope", model_dir=tmp_path, settings=VoiceprintSettings())


def test_tampered_model_is_refused(model_dir, tmp_path):
    src = registry.install_dir("resemblyzer", model_dir)
    dst = registry.install_dir("resemblyzer", tmp_path)
    shutil.copytree(src, dst)
    load_embedder("resemblyzer", model_dir=tmp_path, settings=VoiceprintSettings())  # intact copy loads
    with open(dst / "pretrained.pt", "r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * 8)
    with pytest.raises(ModelUnavailable, match="sha256"):
        load_embedder("resemblyzer", model_dir=tmp_path, settings=VoiceprintSettings())


# --- Resemblyzer specifics -------------------------------------------------------------------


def test_resemblyzer_matches_its_own_embed_utterance(resemblyzer, speakers3):
    from voiceprint.embedders.resemblyzer_backend import normalize_volume

    y = speakers3[0][: 16000 * 5]
    ref = resemblyzer.encoder.embed_utterance(normalize_volume(y))
    assert cos(resemblyzer.embed(y, sr=16000), ref) > 0.99999


def test_embedders_are_not_confused_across_model_ids(ecapa, resemblyzer):
    assert ecapa.model_id != resemblyzer.model_id
    assert Path(ecapa.directory).name == ecapa.model_id.split("@")[1]
