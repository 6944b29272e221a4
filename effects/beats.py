"""Tempo, beat times and an onset-strength envelope for beat-pulse effects (librosa).

Pipeline (all at ``settings.onset_sample_rate``, 11,025 Hz by default, which keeps it cheap):

1. onset envelope: log-mel spectral flux, ``librosa.onset.onset_strength`` on a 40-band mel power
   spectrogram in dB (STFT 512 / hop 256: 43 frames per second);
2. tempo: global autocorrelation of the envelope (``librosa.autocorrelate``) weighted by librosa's
   log-normal tempo prior (120 BPM, one octave). The prior alone picks 90 for a click track at 180
   (every other click is an equally good beat), so when the autocorrelation at half the period is
   nearly as strong as at the period (evenly spaced pulses) the faster tempo is taken;
3. beats: ``librosa.beat.beat_track`` (dynamic programming) with that tempo;
4. refinement: each beat moves to the sharpest energy rise within -60..+30 ms, measured on 2.9 ms
   blocks (the envelope frames are 23 ms and lag onsets by about one frame), and the tempo is
   recomputed from the refined beat intervals (mean of the intervals within 10 % of the median),
   which is far finer than the autocorrelation lag grid.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import numpy as np

from audio.resample import resample
from effects.config import EffectSettings
from effects.signal import as_channels, webaudio_mono

JSON_MEDIA_TYPE = "application/json"
#: Block size of the refinement energy (samples at the onset rate): 32 / 11025 Hz = 2.9 ms.
SNAP_BLOCK = 32
#: A refinement is accepted only where the energy rises by at least this ratio (about 6 dB).
SNAP_MIN_RISE = np.log(4.0)
#: At most this many unsnapped beats are trimmed from each end (see _trim).
EDGE_UNSNAPPED = 2
#: Below this many envelope frames (~2 s) there is no tempo to speak of.
MIN_FRAMES = 86


@dataclasses.dataclass(frozen=True)
class BeatInfo:
    """Beats of a recording.

    Attributes
    ----------
    tempo_bpm : float or None (no periodic onsets, e.g. silence)
    beats_s : np.ndarray [shape=(beats,)], float64, seconds from the start, increasing
    onset_envelope : np.ndarray [shape=(frames,)], float32 in [0, 1] (normalised to its maximum)
    onset_frame_rate : float, envelope frames per second (frame ``t`` is at ``t / rate`` s)
    """

    tempo_bpm: float | None
    beats_s: np.ndarray
    onset_envelope: np.ndarray
    onset_frame_rate: float


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def onset_envelope(y: np.ndarray, *, sr: int, settings: EffectSettings) -> np.ndarray:
    """librosa onset strength of mono ``y`` [shape=(n,)], float32 at ``sr`` == onset rate.

    Returns
    -------
    np.ndarray [shape=(1 + n // hop,)], float32, non-negative
    """
    import librosa

    n_fft, hop = settings.onset_n_fft, settings.onset_hop
    padded = np.pad(y, n_fft // 2)  # centred frames, as librosa.stft(center=True)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    import scipy.fft

    spec = scipy.fft.rfft(frames * _hann(n_fft), axis=1, workers=1)
    power = spec.real**2 + spec.imag**2
    mel = _mel_basis(sr, n_fft, settings.onset_n_mels) @ power.T.astype(np.float32)
    s_db = librosa.power_to_db(mel, ref=np.max)
    env = librosa.onset.onset_strength(S=s_db, sr=sr, hop_length=hop, n_fft=n_fft)
    return env.astype(np.float32)


def estimate_tempo(env: np.ndarray, *, frame_rate: float, settings: EffectSettings) -> float | None:
    """Tempo in BPM from the envelope's autocorrelation (see module docstring), or None.

    The autocorrelation is summed over three adjacent lags: a period that is not a whole number of
    frames splits its pairs between two lags, which would otherwise favour twice the period.
    """
    import librosa

    centred = env.astype(np.float64) - env.mean()
    ac = librosa.autocorrelate(centred)
    if ac[0] <= 0:
        return None
    ac3 = np.convolve(ac, [1.0, 1.0, 1.0], mode="same")
    lags = np.arange(1, len(ac))
    bpm = 60.0 * frame_rate / lags
    ok = (bpm >= settings.tempo_min_bpm) & (bpm <= settings.tempo_max_bpm)
    if not ok.any():
        return None
    prior = np.exp(-0.5 * (np.log2(bpm / settings.tempo_start_bpm) / settings.tempo_std_octaves) ** 2)
    score = np.where(ok, ac3[1:] * prior, -np.inf)
    best = int(lags[np.argmax(score)])
    if ac3[best] <= 0.05 * ac3[0]:
        return None  # nothing periodic
    period = _peak_lag(ac3, best)
    half = period / 2
    if 60.0 * frame_rate / half <= settings.double_tempo_max_bpm and half >= 2:
        near = int(round(half))
        if ac3[near] >= settings.double_tempo_ratio * ac3[best]:
            period = _peak_lag(ac3, int(np.argmax(ac3[near - 1 : near + 2])) + near - 1)
    return 60.0 * frame_rate / period


def _peak_lag(ac: np.ndarray, k: int) -> float:
    """Parabolic interpolation of the autocorrelation peak near lag ``k``."""
    if k <= 0 or k >= len(ac) - 1:
        return float(k)
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    den = a - 2 * b + c
    if den >= 0:  # not a local maximum: keep the integer lag
        return float(k)
    return k + 0.5 * (a - c) / den


def _rise(y: np.ndarray) -> np.ndarray:
    """Energy rise at each block boundary ``k`` (time ``k * SNAP_BLOCK / sr``): log of the energy
    of blocks ``k, k+1`` over that of ``k-2, k-1``. float64 [shape=(n // SNAP_BLOCK,)]."""
    nb = len(y) // SNAP_BLOCK
    energy = np.square(y[: nb * SNAP_BLOCK], dtype=np.float64).reshape(nb, SNAP_BLOCK).sum(axis=1)
    floor = max(energy.max() * 1e-6, 1e-20)
    pair = np.log(np.convolve(energy, [1.0, 1.0])[:nb] + floor)  # pair[k] = E[k-1] + E[k]
    rise = np.full(nb, -np.inf)
    rise[2 : nb - 1] = pair[3:nb] - pair[1 : nb - 2]
    return rise


def _snap(
    beats_s: np.ndarray, rise: np.ndarray, *, sr: int, settings: EffectSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Move each beat to the sharpest rise within the search window; returns (times, moved mask)."""
    block_s = SNAP_BLOCK / sr
    before = int(round(settings.snap_before_ms / 1000 / block_s))
    after = int(round(settings.snap_after_ms / 1000 / block_s))
    out = beats_s.copy()
    moved = np.zeros(len(beats_s), dtype=bool)
    for i, t in enumerate(beats_s):
        j = _best_rise(rise, int(round(t / block_s)) - before, int(round(t / block_s)) + after)
        if j is not None:
            out[i] = j * block_s
            moved[i] = True
    if moved.any() and not moved.all():
        # Beats without a sharp onset get the typical envelope latency removed instead.
        out[~moved] -= np.median(beats_s[moved] - out[moved])
    return np.maximum.accumulate(np.maximum(out, 0.0)), moved


def _best_rise(rise: np.ndarray, lo: int, hi: int) -> int | None:
    """Block index of the largest rise in ``[lo, hi]`` if it is a sharp onset, else None."""
    lo, hi = max(0, lo), min(len(rise), hi + 1)
    if hi <= lo:
        return None
    j = lo + int(np.argmax(rise[lo:hi]))
    return j if rise[j] >= SNAP_MIN_RISE else None


def _trim(beats_s: np.ndarray, frames: np.ndarray, env: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Drop leading and trailing beats whose envelope (the frame and the next two, which is where an
    onset at the beat shows up) is under 30 % of the median beat strength (librosa's tracker runs
    its grid into silent intros and outros with ``trim=False``; its own trim also cut real beats),
    then up to :data:`EDGE_UNSNAPPED` outermost beats on each side that found no sharp onset: the
    tracker bends its last beats towards the silent tail. :func:`_extend` adds back edge beats that
    sit on sharp onsets one period apart."""
    idx = frames[:, None] + np.arange(-1, 3)[None, :]
    strength = env[np.clip(idx, 0, len(env) - 1)].max(axis=1)
    weak = strength < 0.3 * np.median(strength)
    if weak.all():
        return beats_s[:0]
    first = int(np.argmin(weak))
    last = len(weak) - int(np.argmin(weak[::-1]))
    for _ in range(EDGE_UNSNAPPED):
        if last - first > 4 and not moved[first]:
            first += 1
        if last - first > 4 and not moved[last - 1]:
            last -= 1
    return beats_s[first:last]


def _extend(
    beats_s: np.ndarray, rise: np.ndarray, *, sr: int, period: float, settings: EffectSettings
) -> np.ndarray:
    """Add beats one period beyond either end while a sharp onset is there (within the snap-after
    window), recovering edge beats the tracker left out."""
    block_s = SNAP_BLOCK / sr
    tol = int(round(settings.snap_after_ms / 1000 / block_s))
    end_s = len(rise) * block_s
    head: list[float] = []
    tail: list[float] = []
    t = beats_s[-1] + period
    while t < end_s:
        j = _best_rise(rise, int(round(t / block_s)) - tol, int(round(t / block_s)) + tol)
        if j is None:
            break
        tail.append(j * block_s)
        t = j * block_s + period
    t = beats_s[0] - period
    while t >= 0:
        j = _best_rise(rise, int(round(t / block_s)) - tol, int(round(t / block_s)) + tol)
        if j is None:
            break
        head.append(j * block_s)
        t = j * block_s - period
    return np.concatenate([np.array(head[::-1]), beats_s, np.array(tail)])


def _tempo_from_beats(beats_s: np.ndarray) -> float | None:
    if len(beats_s) < 3:
        return None
    intervals = np.diff(beats_s)
    med = np.median(intervals)
    if med <= 0:
        return None
    good = intervals[np.abs(intervals - med) <= 0.1 * med]
    return 60.0 / float(good.mean()) if len(good) else None


def beats(y: np.ndarray, *, sr: int, settings: EffectSettings | None = None) -> BeatInfo:
    """Tempo, beats and onset envelope of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], float, any rate (resampled to the onset rate)
    sr : int, Hz
    settings : ``EffectSettings()`` when omitted

    Returns
    -------
    BeatInfo
    """
    import librosa

    s = settings or EffectSettings()
    mono = webaudio_mono(as_channels(y, sr=sr))
    rate = s.onset_sample_rate
    x = resample(mono, orig_sr=int(sr), target_sr=rate)
    env = onset_envelope(x, sr=rate, settings=s)
    frame_rate = rate / s.onset_hop
    peak = float(env.max()) if env.size else 0.0
    norm = env / peak if peak > 0 else np.zeros_like(env)
    empty = BeatInfo(None, np.zeros(0), norm.astype(np.float32), frame_rate)
    if len(env) < MIN_FRAMES or peak <= 0:
        return empty
    tempo = estimate_tempo(env, frame_rate=frame_rate, settings=s)
    if tempo is None:
        return empty
    _, frames = librosa.beat.beat_track(
        onset_envelope=env, sr=rate, hop_length=s.onset_hop, bpm=tempo, tightness=s.beat_tightness,
        units="frames", trim=False,
    )  # fmt: skip
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) == 0:
        return BeatInfo(round(tempo, 2), np.zeros(0), norm.astype(np.float32), frame_rate)
    rise = _rise(x)
    beat_s, moved = _snap(frames / frame_rate, rise, sr=rate, settings=s)
    beat_s = _trim(beat_s, frames, norm, moved)
    if len(beat_s) == 0:
        return BeatInfo(round(tempo, 2), beat_s, norm.astype(np.float32), frame_rate)
    refined = _tempo_from_beats(beat_s) or tempo
    beat_s = _extend(beat_s, rise, sr=rate, period=60.0 / refined, settings=s)
    beat_s = np.unique(beat_s)  # two beats snapped onto one onset count once
    refined = _tempo_from_beats(beat_s) or tempo
    return BeatInfo(round(refined, 2), beat_s, norm.astype(np.float32), frame_rate)


def to_json_dict(info: BeatInfo) -> dict[str, Any]:
    """``{"version", "tempo_bpm", "beats_s", "onset_envelope": {"frame_rate_hz", "values"}}``;
    times in seconds to the millisecond, envelope values in [0, 1] to 3 decimals."""
    return {
        "version": 1,
        "tempo_bpm": info.tempo_bpm,
        "beats_s": [round(float(t), 3) for t in info.beats_s],
        "onset_envelope": {
            "frame_rate_hz": round(info.onset_frame_rate, 6),
            "values": [round(float(v), 3) for v in info.onset_envelope],
        },
    }


def to_json_bytes(info: BeatInfo) -> bytes:
    return json.dumps(to_json_dict(info), separators=(",", ":")).encode()
