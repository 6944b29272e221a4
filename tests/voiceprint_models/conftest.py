"""Fixtures for the model registry / embedder / evaluation tests.

Real-model tests use the pulled models in the default model dir (``songgate models pull``; CI runs
it first) and skip with a reason when they are not installed; real-data tests skip when
../shared/data is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRISPEECH = ROOT.parent / "shared" / "data" / "speech" / "librispeech-train-clean-100-excerpts"
FSDD = ROOT.parent / "shared" / "data" / "speech" / "fsdd" / "recordings"


def default_model_dir() -> Path:
    from core.settings import Settings

    return Settings().resolved_model_dir


def _installed(name: str) -> Path:
    from models import registry

    root = default_model_dir()
    if not registry.is_installed(name, root):
        pytest.skip(
            f"model {registry.get(name).model_id} not installed in {root}: run `songgate models pull`"
        )
    return root


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The default model dir, if both registered models are installed and verified."""
    _installed("ecapa")
    return _installed("resemblyzer")


@pytest.fixture(scope="module")
def ecapa(model_dir: Path):
    from voiceprint.config import VoiceprintSettings
    from voiceprint.embedders import load_embedder

    return load_embedder("ecapa", model_dir=model_dir, settings=VoiceprintSettings())


@pytest.fixture(scope="module")
def resemblyzer(model_dir: Path):
    from voiceprint.config import VoiceprintSettings
    from voiceprint.embedders import load_embedder

    return load_embedder("resemblyzer", model_dir=model_dir, settings=VoiceprintSettings())


@pytest.fixture(scope="session")
def librispeech() -> Path:
    if not LIBRISPEECH.is_dir():
        pytest.skip(f"shared speech data not found at {LIBRISPEECH}")
    return LIBRISPEECH


def read16k(path: Path) -> np.ndarray:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    return y


@pytest.fixture(scope="session")
def speakers3(librispeech: Path) -> list[np.ndarray]:
    """Three LibriSpeech speakers' recordings (16 kHz float32), at least 10 s each."""
    out = []
    for p in sorted(librispeech.glob("*.flac")):
        y = read16k(p)
        if len(y) >= 10 * 16000:
            out.append(y)
        if len(out) == 3:
            return out
    pytest.skip("not enough long recordings")
