"""speechbrain ECAPA-TDNN (spkrec-ecapa-voxceleb) embedder, loaded offline from the model registry.

speechbrain builds the modules and loads the checkpoint from the installed, sha256-verified
directory (``source = savedir = pretrained_path = DIR``: nothing is fetched, nothing written);
inference then runs through :class:`voiceprint.embedders.ecapa_graph.EcapaGraph`, which computes
the same function faster on CPU. ``classifier`` stays available for side-by-side comparisons with
``EncoderClassifier.encode_batch`` (evaluation, benchmark, tests).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from voiceprint.embedders.base import check_speech, l2_normalize
from voiceprint.embedders.ecapa_graph import EcapaGraph

SAMPLE_RATE = 16000
HOP = 160  # Fbank hop, samples (10 ms)


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether the CPU has native bfloat16 dot products (AVX512-BF16 or AMX); Linux only."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_precision(precision: str) -> torch.dtype:
    """``auto`` -> bfloat16 on CPUs with native bf16, else float32 (emulated bf16 is slower)."""
    if precision == "bfloat16" or (precision == "auto" and native_bf16()):
        return torch.bfloat16
    if precision in ("float32", "auto"):
        return torch.float32
    raise ValueError(f"unknown precision {precision!r}")


def load_classifier(directory: Path):
    """speechbrain's EncoderClassifier from an installed directory, offline, on CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from speechbrain.inference.speaker import EncoderClassifier

        d = str(Path(directory).resolve())
        classifier = EncoderClassifier.from_hparams(
            source=d, savedir=d, overrides={"pretrained_path": d}, run_opts={"device": "cpu"}
        )
    classifier.eval()
    return classifier


class EcapaEmbedder:
    """ECAPA-TDNN speaker embeddings (192-d, 16 kHz).

    Parameters
    ----------
    directory : Path, the installed, verified model version directory
    model_id : str, ``ecapa-voxceleb@<sha256[:12] of embedding_model.ckpt>``
    min_duration_s : float, least speech accepted, seconds
    precision : "auto" | "bfloat16" | "float32", the trunk's compute precision
    batch_max_s : float, most audio packed into one pass by :meth:`embed_batch`
    """

    sample_rate = SAMPLE_RATE
    dimension = 192

    def __init__(
        self,
        directory: Path,
        *,
        model_id: str,
        min_duration_s: float = 1.0,
        precision: str = "auto",
        batch_max_s: float = 120.0,
    ) -> None:
        self.model_id = model_id
        self.min_duration_s = float(min_duration_s)
        self.directory = Path(directory)
        self.classifier = load_classifier(self.directory)
        self.dtype = resolve_precision(precision)
        self._graph = EcapaGraph(self.classifier.mods.embedding_model, dtype=self.dtype)
        self._fbank = self.classifier.mods.compute_features
        self._batch_max_frames = int(batch_max_s * SAMPLE_RATE / HOP)

    def __repr__(self) -> str:
        return f"EcapaEmbedder({self.model_id}, {str(self.dtype).removeprefix('torch.')})"

    @torch.inference_mode()
    def features(self, y: np.ndarray) -> torch.Tensor:
        """Sentence-mean-normalized 80-band log-mel Fbank of 16 kHz ``y``: (frames, 80) float32."""
        feats = self._fbank(torch.from_numpy(y)[None])[0]
        return feats - feats.mean(dim=0, keepdim=True)

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Embed one utterance; see :class:`voiceprint.embedders.base.SpeakerEmbedder`."""
        y = check_speech(y, sr=sr, sample_rate=SAMPLE_RATE, min_duration_s=self.min_duration_s)
        return l2_normalize(self._graph([self.features(y)]).numpy()[0])

    def embed_batch(self, ys: Sequence[np.ndarray], *, sr: int) -> np.ndarray:
        """Embed utterances in packed passes (no padding; each row equals ``embed`` of its item).

        Longest first, utterances are packed into passes of at most ``batch_max_s`` of audio.
        """
        checked = [
            check_speech(y, sr=sr, sample_rate=SAMPLE_RATE, min_duration_s=self.min_duration_s, index=i)
            for i, y in enumerate(ys)
        ]
        out = np.zeros((len(checked), self.dimension), dtype=np.float32)
        order = sorted(range(len(checked)), key=lambda i: -len(checked[i]))
        groups: list[list[int]] = [[]]
        frames = 0
        for i in order:
            n = len(checked[i]) // HOP + 1
            if groups[-1] and frames + n > self._batch_max_frames:
                groups.append([])
                frames = 0
            groups[-1].append(i)
            frames += n
        for group in groups:
            if group:
                out[group] = l2_normalize(self._graph([self.features(checked[j]) for j in group]).numpy())
        return out
