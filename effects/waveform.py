"""Waveform peaks compatible with BBC audiowaveform (``.dat`` versions 1 and 2, and its JSON).

Follows audiowaveform's generator: samples become 16-bit integers (``round(x * 32767)``, clipped,
as libsndfile converts float to short), pixel ``p`` covers samples ``[p * spp, (p + 1) * spp)`` with
a last partial pixel kept, and each pixel stores ``min, max`` per channel. A mono waveform of a
multichannel input averages the 16-bit samples with C integer division (truncation toward zero).
8-bit output is ``value / 256`` truncated toward zero (C semantics), as audiowaveform writes it.

Because min/max commute with monotonic maps, coarser zoom levels (multiples of the stored one)
and 8-bit data are derived exactly from a stored 16-bit level without touching the audio again.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import numpy as np

from effects.errors import FormatError, InvalidEffectParams
from effects.signal import as_channels

FLAG_8_BIT = 0x1
HEADER_V1 = struct.Struct("<iIiiI")
HEADER_V2 = struct.Struct("<iIiiIi")
DAT_MEDIA_TYPE = "application/octet-stream"
JSON_MEDIA_TYPE = "application/json"
#: audiowaveform's limit (WaveformBuffer::MAX_CHANNELS).
MAX_CHANNELS = 24


@dataclasses.dataclass(frozen=True)
class WaveformData:
    """Min/max peaks.

    Attributes
    ----------
    data : np.ndarray [shape=(length, channels, 2)], int16 (16-bit scale even when ``bits == 8``
        values were read: 8-bit files are scaled by 256 on load, as audiowaveform does)
    sample_rate : int, Hz of the source audio
    samples_per_pixel : int
    """

    data: np.ndarray
    sample_rate: int
    samples_per_pixel: int

    @property
    def length(self) -> int:
        return int(self.data.shape[0])

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])


def to_int16(x: np.ndarray) -> np.ndarray:
    """float samples -> int16 like libsndfile's ``sf_read_short``: ``rint(x * 32767)``, clipped
    (the product in float64, so the result is the exactly rounded one)."""
    scaled = np.rint(x.astype(np.float64) * 32767.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def peaks(y: np.ndarray, *, sr: int, samples_per_pixel: int, split_channels: bool = True) -> WaveformData:
    """Min/max per pixel of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], float, nominally in [-1, 1]
    sr : int, Hz (stored in the header)
    samples_per_pixel : int >= 2
    split_channels : keep every channel (``.dat`` version 2); False mixes to one channel like
        ``audiowaveform`` without ``--split-channels``

    Returns
    -------
    WaveformData with ``ceil(n / samples_per_pixel)`` pixels
    """
    if isinstance(samples_per_pixel, bool) or not isinstance(samples_per_pixel, (int, np.integer)):
        raise InvalidEffectParams("samples_per_pixel must be an integer", parameter="samples_per_pixel")
    if samples_per_pixel < 2:
        raise InvalidEffectParams("samples_per_pixel must be at least 2", parameter="samples_per_pixel")
    x = as_channels(y, sr=sr)
    if x.shape[0] > MAX_CHANNELS and split_channels:
        raise InvalidEffectParams(f"at most {MAX_CHANNELS} waveform channels")
    spp = int(samples_per_pixel)
    if split_channels or x.shape[0] == 1:
        # Min/max of the floats, then convert only the extremes (the conversion is monotonic).
        lo, hi = _minmax(x, spp)
        data = np.stack([to_int16(lo), to_int16(hi)], axis=-1)
    else:
        ints = to_int16(x).astype(np.int32)
        total = ints.sum(axis=0)
        mixed = (np.abs(total) // x.shape[0]) * np.sign(total)  # C division truncates toward zero
        lo, hi = _minmax(mixed[None, :], spp)
        data = np.stack([lo, hi], axis=-1).astype(np.int16)
    return WaveformData(data=np.ascontiguousarray(data), sample_rate=int(sr), samples_per_pixel=spp)


def _minmax(x: np.ndarray, spp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel min and max: [shape=(length, channels)] each."""
    c, n = x.shape
    full = n // spp
    lo = np.empty((-(-n // spp), c), dtype=x.dtype)
    hi = np.empty_like(lo)
    if full:
        blocks = x[:, : full * spp].reshape(c, full, spp)
        lo[:full] = blocks.min(axis=2).T
        hi[:full] = blocks.max(axis=2).T
    if n > full * spp:
        lo[full] = x[:, full * spp :].min(axis=1)
        hi[full] = x[:, full * spp :].max(axis=1)
    return lo, hi


def rescale(wf: WaveformData, *, samples_per_pixel: int) -> WaveformData:
    """A coarser zoom level: ``samples_per_pixel`` must be a multiple of ``wf.samples_per_pixel``.

    Exact: pixel ``j`` of the result covers the same samples as pixels ``j*f .. j*f + f - 1``.
    """
    if samples_per_pixel % wf.samples_per_pixel:
        raise InvalidEffectParams(
            f"samples_per_pixel {samples_per_pixel} is not a multiple of {wf.samples_per_pixel}",
            parameter="samples_per_pixel",
        )
    f = samples_per_pixel // wf.samples_per_pixel
    if f == 1:
        return wf
    length = -(-wf.length // f)
    pad = length * f - wf.length
    lo = wf.data[..., 0]
    hi = wf.data[..., 1]
    if pad:  # pad with values that never win min/max
        lo = np.concatenate([lo, np.full((pad, wf.channels), 32767, dtype=np.int16)])
        hi = np.concatenate([hi, np.full((pad, wf.channels), -32768, dtype=np.int16)])
    lo = lo.reshape(length, f, wf.channels).min(axis=1)
    hi = hi.reshape(length, f, wf.channels).max(axis=1)
    return WaveformData(np.stack([lo, hi], axis=-1), wf.sample_rate, samples_per_pixel)


def _values(wf: WaveformData, bits: int) -> np.ndarray:
    """Interleaved values [shape=(length * channels * 2,)] at ``bits`` resolution, int16 or int8."""
    flat = wf.data.reshape(-1)
    if bits == 16:
        return flat
    if bits == 8:
        return (np.fix(flat.astype(np.int32) / 256)).astype(np.int8)  # C: value / 256
    raise InvalidEffectParams("bits must be 8 or 16", parameter="bits")


def dat_version(wf: WaveformData) -> int:
    """1 for a single channel (audiowaveform's default), 2 for several."""
    return 1 if wf.channels == 1 else 2


def encode_dat(wf: WaveformData, *, bits: int, version: int | None = None) -> bytes:
    """audiowaveform binary ``.dat``; version 1 needs one channel."""
    version = version or dat_version(wf)
    values = _values(wf, bits)
    flags = FLAG_8_BIT if bits == 8 else 0
    if version == 1:
        if wf.channels != 1:
            raise InvalidEffectParams("a version 1 .dat file holds one channel")
        head = HEADER_V1.pack(1, flags, wf.sample_rate, wf.samples_per_pixel, wf.length)
    elif version == 2:
        head = HEADER_V2.pack(2, flags, wf.sample_rate, wf.samples_per_pixel, wf.length, wf.channels)
    else:
        raise InvalidEffectParams(f"unknown .dat version {version}")
    return head + values.astype("<i2" if bits == 16 else "i1").tobytes()


def decode_dat(data: bytes) -> tuple[WaveformData, int]:
    """Parse a ``.dat`` file; returns the peaks (16-bit scale) and the file's bit depth."""
    if len(data) < HEADER_V1.size:
        raise FormatError(".dat: shorter than its header")
    version, flags, sr, spp, length = HEADER_V1.unpack_from(data, 0)
    if version == 1:
        channels, offset = 1, HEADER_V1.size
    elif version == 2:
        if len(data) < HEADER_V2.size:
            raise FormatError(".dat: shorter than its header")
        channels, offset = HEADER_V2.unpack_from(data, 0)[5], HEADER_V2.size
    else:
        raise FormatError(f".dat: unsupported version {version}")
    bits = 8 if flags & FLAG_8_BIT else 16
    if not 1 <= channels <= MAX_CHANNELS or spp < 2 or sr < 1:
        raise FormatError(".dat: inconsistent header")
    count = length * channels * 2
    if len(data) != offset + count * (bits // 8):
        raise FormatError(".dat: size does not match the header")
    values = np.frombuffer(data, dtype="<i2" if bits == 16 else "i1", count=count, offset=offset)
    scaled = values.astype(np.int16) * (256 if bits == 8 else 1)
    return WaveformData(scaled.reshape(length, channels, 2).astype(np.int16), int(sr), int(spp)), bits


def to_json_dict(wf: WaveformData, *, bits: int, version: int | None = None) -> dict[str, Any]:
    """audiowaveform JSON: version, channels (version 2 only), sample_rate, samples_per_pixel, bits,
    length, data (interleaved min, max per channel per pixel)."""
    version = version or dat_version(wf)
    out: dict[str, Any] = {"version": version}
    if version == 2:
        out["channels"] = wf.channels
    elif wf.channels != 1:
        raise InvalidEffectParams("a version 1 waveform holds one channel")
    out.update(
        sample_rate=wf.sample_rate,
        samples_per_pixel=wf.samples_per_pixel,
        bits=bits,
        length=wf.length,
        data=_values(wf, bits).tolist(),
    )
    return out


def to_json_bytes(wf: WaveformData, *, bits: int) -> bytes:
    return json.dumps(to_json_dict(wf, bits=bits), separators=(",", ":")).encode()
