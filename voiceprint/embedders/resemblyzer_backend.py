"""Resemblyzer (GE2E, 3-layer LSTM, 256-d) embedder, weights from the model registry.

Resemblyzer embeds an utterance as the normalized mean of the embeddings of 1.6 s partial windows
(rate 1.3/s, last window kept if 75 % covered). Every partial is an independent LSTM pass of fixed
length, so :meth:`ResemblyzerEmbedder.embed_batch` runs the partials of all utterances as one
batch: exact, and no padding. Input is already speech-only (voiceprint.speech), so Resemblyzer's own
webrtcvad silence trimming is not applied again; its volume normalization (-30 dBFS, increase only)
is, because the model was trained on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from voiceprint.embedders.base import check_speech, l2_normalize

SAMPLE_RATE = 16000
PARTIALS_RATE = 1.3
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
MAX_PARTIALS = 512  # partial windows per LSTM pass (bounds memory)


def normalize_volume(y: np.ndarray, *, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the level of ``y`` [shape=(n,)] float32 to ``target_dbfs`` RMS."""
    rms = float(np.sqrt(np.mean((y.astype(np.float64) * INT16_MAX) ** 2)))
    if rms == 0.0:
        return y
    change_db = target_dbfs - 20 * np.log10(rms / INT16_MAX)
    if change_db < 0:
        return y
    return (y * 10 ** (change_db / 20)).astype(np.float32)


class ResemblyzerEmbedder:
    """Resemblyzer speaker embeddings (256-d, 16 kHz).

    Parameters
    ----------
    directory : Path, the installed, verified model version directory (holds pretrained.pt)
    model_id : str, ``resemblyzer-ge2e@<sha256[:12] of pretrained.pt>``
    min_duration_s : float, least speech accepted, seconds
    """

    sample_rate = SAMPLE_RATE
    dimension = 256

    def __init__(self, directory: Path, *, model_id: str, min_duration_s: float = 1.0) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resemblyzer imports deprecated scipy paths
            from resemblyzer import VoiceEncoder
            from resemblyzer.audio import wav_to_mel_spectrogram

            # torch.load inside uses weights_only=True (torch >= 2.6): tensors only, no pickled code.
            self.encoder = VoiceEncoder(
                device="cpu", verbose=False, weights_fpath=Path(directory) / "pretrained.pt"
            )
        self.encoder.eval()
        self._mel = wav_to_mel_spectrogram
        self.model_id = model_id
        self.min_duration_s = float(min_duration_s)
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"ResemblyzerEmbedder({self.model_id})"

    def _partials(self, y: np.ndarray) -> np.ndarray:
        """Mel partial windows of one utterance: (k, 160, 40) float32."""
        wav_slices, mel_slices = self.encoder.compute_partial_slices(len(y), PARTIALS_RATE, MIN_COVERAGE)
        need = wav_slices[-1].stop
        if need >= len(y):
            y = np.pad(y, (0, need - len(y)))
        mel = self._mel(y)
        return np.stack([mel[s] for s in mel_slices])

    @torch.inference_mode()
    def _embed_checked(self, ys: list[np.ndarray]) -> np.ndarray:
        parts = [self._partials(normalize_volume(y)) for y in ys]
        counts = [len(p) for p in parts]
        stacked = torch.from_numpy(np.concatenate(parts))
        partial_emb = torch.cat([self.encoder(chunk) for chunk in stacked.split(MAX_PARTIALS)]).numpy()
        bounds = np.cumsum([0, *counts])
        means = np.stack(
            [partial_emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=False)]
        )
        return l2_normalize(means)

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Embed one utterance; see :class:`voiceprint.embedders.base.SpeakerEmbedder`."""
        y = check_speech(y, sr=sr, sample_rate=SAMPLE_RATE, min_duration_s=self.min_duration_s)
        return self._embed_checked([y])[0]

    def embed_batch(self, ys: Sequence[np.ndarray], *, sr: int) -> np.ndarray:
        """Embed utterances; all partial windows go through the LSTM as one batch."""
        checked = [
            check_speech(y, sr=sr, sample_rate=SAMPLE_RATE, min_duration_s=self.min_duration_s, index=i)
            for i, y in enumerate(ys)
        ]
        if not checked:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._embed_checked(checked)
