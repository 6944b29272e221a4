"""Silero VAD (the model shipped in the ``silero-vad`` wheel) run as one batched pass.

The stock ``get_speech_timestamps`` calls the TorchScript model once per 32 ms frame from a Python
loop (~25 ms of CPU per second of audio). The model is a per-frame convolutional front end followed
by one LSTM cell carried across frames, so the front end can run on all frames at once and the
recurrence as a single ``nn.LSTM`` call over the sequence: the same probabilities (to float
rounding) at a fraction of the cost. Speech regions then come from silero's own
``get_speech_timestamps_from_probs`` state machine, unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
FRAME = 512  # samples per probability at 16 kHz
CONTEXT = 64  # samples of the previous frame the model sees


class BatchedSilero:
    """The 16 kHz Silero VAD network with its weights taken from the packaged TorchScript model."""

    def __init__(self, jit_model: torch.nn.Module) -> None:
        sd = {k: v.detach().clone() for k, v in jit_model.state_dict().items() if k.startswith("_model.")}
        self.basis = sd["_model.stft.forward_basis_buffer"]  # (2 * 129, 1, 256)
        self.convs = [
            (
                sd[f"_model.encoder.{i}.reparam_conv.weight"],
                sd[f"_model.encoder.{i}.reparam_conv.bias"],
                stride,
            )
            for i, stride in enumerate((1, 2, 2, 1))
        ]
        self.lstm = torch.nn.LSTM(128, 128, batch_first=True)
        self.lstm.load_state_dict(
            {
                f"{name}_l0": sd[f"_model.decoder.rnn.{name}"]
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            }
        )
        self.lstm.eval()
        self.out_w = sd["_model.decoder.decoder.2.weight"]
        self.out_b = sd["_model.decoder.decoder.2.bias"]

    @torch.inference_mode()
    def probabilities(self, y: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample frame.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)], float32, 16 kHz mono

        Returns
        -------
        np.ndarray [shape=(ceil(n / 512),)], float32 in [0, 1]
        """
        n_frames = -(-len(y) // FRAME)
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.zeros(CONTEXT + n_frames * FRAME, dtype=np.float32)
        padded[CONTEXT : CONTEXT + len(y)] = y
        x = torch.from_numpy(padded)
        # Frame i sees the 64 samples before it, then its own 512 (zeros before the start).
        x = x.unfold(0, CONTEXT + FRAME, FRAME)  # (frames, 576)
        x = F.pad(x[:, None, :], (0, CONTEXT), mode="reflect")
        spec = F.conv1d(x, self.basis, stride=128)  # (frames, 258, 4)
        half = spec.shape[1] // 2
        x = torch.sqrt(spec[:, :half] ** 2 + spec[:, half:] ** 2)
        for w, b, stride in self.convs:
            x = torch.relu(F.conv1d(x, w, b, stride=stride, padding=1))
        h, _ = self.lstm(x[:, :, 0][None])  # (1, frames, 128): the recurrence over frames
        p = torch.sigmoid(F.conv1d(torch.relu(h[0])[:, :, None], self.out_w, self.out_b))
        return p.reshape(-1).numpy().astype(np.float32, copy=False)


_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _load() -> tuple[BatchedSilero, Callable[..., Any]]:
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
        from silero_vad.utils_vad import get_speech_timestamps_from_probs

        model = BatchedSilero(load_silero_vad())
    finally:
        # silero_vad's model module calls torch.set_num_threads(1) on import: undo that, since it
        # would silently slow every other torch op in the process (the embedders).
        torch.set_num_threads(threads)
    return model, get_speech_timestamps_from_probs


def vad() -> BatchedSilero:
    """The process-wide batched model (loaded once; the weights ship in the silero-vad wheel)."""
    return _load_locked()[0]


def speech_regions(
    y: np.ndarray,
    *,
    sr: int,
    threshold: float = 0.5,
    min_speech_ms: int = 250,
    min_silence_ms: int = 100,
    pad_ms: int = 30,
) -> list[tuple[int, int]]:
    """Speech regions as ``(start, end)`` sample indices (end exclusive) of 16 kHz mono ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32, mono
    sr : int, must be 16000
    threshold : float, speech probability threshold (silero's default 0.5)
    min_speech_ms, min_silence_ms, pad_ms : silero's post-processing parameters
    """
    if sr != SAMPLE_RATE:
        raise ValueError(f"speech_regions needs {SAMPLE_RATE} Hz, got {sr}")
    return regions_from_probabilities(
        vad().probabilities(y),
        n_samples=len(y),
        threshold=threshold,
        min_speech_ms=min_speech_ms,
        min_silence_ms=min_silence_ms,
        pad_ms=pad_ms,
    )


def regions_from_probabilities(
    probs: np.ndarray,
    *,
    n_samples: int,
    threshold: float = 0.5,
    min_speech_ms: int = 250,
    min_silence_ms: int = 100,
    pad_ms: int = 30,
) -> list[tuple[int, int]]:
    """Speech regions (sample indices, end exclusive) from per-frame probabilities, by silero's own
    ``get_speech_timestamps_from_probs`` state machine (one VAD pass can serve several settings)."""
    _, to_timestamps = _load_locked()
    stamps = to_timestamps(
        probs.tolist(),
        sampling_rate=SAMPLE_RATE,
        threshold=threshold,
        min_speech_duration_ms=min_speech_ms,
        min_silence_duration_ms=min_silence_ms,
        speech_pad_ms=pad_ms,
        audio_length_samples=n_samples,
    )
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def _load_locked() -> tuple[BatchedSilero, Callable[..., Any]]:
    with _lock:
        return _load()
