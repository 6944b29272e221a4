"""The speaker-embedder protocol every backend implements, and the input checks they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from audio.errors import InvalidSampleRate, InvalidSignal
from voiceprint.errors import TooLittleSpeech


@runtime_checkable
class SpeakerEmbedder(Protocol):
    """Maps speech to a fixed-size, L2-normalized speaker embedding.

    Attributes
    ----------
    sample_rate : int, the only rate ``embed`` accepts (16000)
    dimension : int, embedding size (192 for ECAPA, 256 for Resemblyzer)
    min_duration_s : float, least *speech* (after VAD) accepted, seconds
    model_id : str, ``name@version`` where the version is derived from the weights' sha256; two
        embeddings are comparable only when their model ids are equal
    """

    sample_rate: int
    dimension: int
    min_duration_s: float
    model_id: str

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Embed one utterance.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)], float32, mono speech-only samples (see voiceprint.speech)
        sr : int, must equal ``sample_rate``

        Returns
        -------
        np.ndarray [shape=(dimension,)], float32, unit L2 norm

        Raises
        ------
        TooLittleSpeech : ``n / sr < min_duration_s``
        InvalidSignal, InvalidSampleRate : not a finite float mono array, or the wrong rate
        """
        ...

    def embed_batch(self, ys: Sequence[np.ndarray], *, sr: int) -> np.ndarray:
        """Embed many utterances at once (same result as ``embed`` on each, faster).

        Returns
        -------
        np.ndarray [shape=(len(ys), dimension)], float32, rows of unit L2 norm
        """
        ...


def check_speech(
    y: object, *, sr: object, sample_rate: int, min_duration_s: float, index: int | None = None
) -> np.ndarray:
    """Validate one embedder input.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], floating point, finite
    sr : int, must equal ``sample_rate``
    sample_rate : int, the embedder's rate
    min_duration_s : float, least duration accepted, seconds
    index : int or None, the item's position (reported in errors from ``embed_batch``)

    Returns
    -------
    np.ndarray [shape=(n,)], float32, C-contiguous

    Raises
    ------
    InvalidSampleRate, InvalidSignal, TooLittleSpeech
    """
    where = "" if index is None else f" (item {index})"
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or int(sr) != sample_rate:
        raise InvalidSampleRate(
            f"embedder needs {sample_rate} Hz speech, got sr={sr!r}{where}", sample_rate=sample_rate
        )
    if not isinstance(y, np.ndarray):
        raise InvalidSignal(f"expected a numpy array, got {type(y).__name__}{where}")
    if not np.issubdtype(y.dtype, np.floating):
        raise InvalidSignal(f"expected floating-point samples, got {y.dtype}{where}")
    if y.ndim != 1:
        raise InvalidSignal(f"expected mono samples of shape (n,), got {y.shape}{where}")
    if not np.all(np.isfinite(y)):
        raise InvalidSignal(f"signal contains NaN or infinite samples{where}")
    seconds = y.shape[0] / sample_rate
    if seconds < min_duration_s:
        extra = {"speech_s": round(seconds, 3), "min_speech_s": min_duration_s}
        if index is not None:
            extra["index"] = index
        raise TooLittleSpeech(
            f"{seconds:.2f} s of speech{where}; at least {min_duration_s:.2f} s is needed", **extra
        )
    return np.ascontiguousarray(y, dtype=np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows (or the vector) scaled to unit L2 norm, float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)
