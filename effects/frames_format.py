"""Versioned binary layout of spectrum frames (``application/vnd.songgate.frames``) and its JSON twin.

Little-endian throughout; byte by byte in docs/visualizer-format.md::

    offset  size         type        field
    0       4            char[4]     magic "SGVF"
    4       2            uint16      version (1)
    6       2            uint16      header_size: 40 (fixed part; readers skip unknown extra bytes)
    8       4            uint32      sample_rate (Hz of the analysed audio)
    12      4            uint32      frame_count F
    16      4            uint32      data_offset: byte offset of the frame data
    20      2            uint16      fps
    22      2            uint16      band_count B
    24      2            uint16      fft_size
    26      2            uint16      flags (0; reserved)
    28      4            float32     smoothing (smoothingTimeConstant)
    32      4            float32     min_db (minDecibels)
    36      4            float32     max_db (maxDecibels)
    40      4 (B + 1)    float32[]   band edges in Hz
    ..      2 (B + 1)    uint16[]    band edges in FFT bins (band b: edges[b] <= k < edges[b + 1])
    ..      0..3         zero bytes  padding to a multiple of 4
    data_offset  F * B   uint8[]     levels, frame-major: frame i band b at data_offset + i * B + b

A 4-minute song at 30 fps x 64 bands is 7,201 x 64 = 460,864 bytes of levels plus 432 bytes of header (461,296 in all).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from effects.errors import FormatError
from effects.spectrum import SpectrumFrames

MAGIC = b"SGVF"
VERSION = 1
HEADER = struct.Struct("<4sHHIIIHHHHfff")
MEDIA_TYPE = "application/vnd.songgate.frames"
JSON_MEDIA_TYPE = "application/json"
JSON_FORMAT_NAME = "songgate-spectrum-frames"


def encode(frames: SpectrumFrames) -> bytes:
    """Serialize ``frames`` to the binary layout above."""
    levels = np.ascontiguousarray(frames.levels, dtype=np.uint8)
    n_frames, bands = levels.shape
    edges_hz = frames.edges_hz.astype("<f4")
    edges_bin = frames.edges_bin.astype("<u2")
    tables = edges_hz.tobytes() + edges_bin.tobytes()
    pad = (-(HEADER.size + len(tables))) % 4
    data_offset = HEADER.size + len(tables) + pad
    head = HEADER.pack(
        MAGIC,
        VERSION,
        HEADER.size,
        frames.sample_rate,
        n_frames,
        data_offset,
        frames.fps,
        bands,
        frames.fft_size,
        0,
        frames.smoothing,
        frames.min_db,
        frames.max_db,
    )
    return b"".join([head, tables, b"\0" * pad, levels.tobytes()])


def decode(data: bytes) -> SpectrumFrames:
    """Parse the binary layout; raises FormatError for anything that does not fit it."""
    if len(data) < HEADER.size:
        raise FormatError("spectrum frames: shorter than the header")
    (magic, version, header_size, sr, n_frames, data_offset, fps, bands, fft_size, _flags, smoothing,
     min_db, max_db) = HEADER.unpack_from(data, 0)  # fmt: skip
    if magic != MAGIC:
        raise FormatError("spectrum frames: bad magic")
    if version != VERSION:
        raise FormatError(f"spectrum frames: unsupported version {version}")
    if header_size < HEADER.size or bands == 0 or fps == 0:
        raise FormatError("spectrum frames: inconsistent header")
    tables_at = header_size
    edges_end = tables_at + 6 * (bands + 1)
    if data_offset < edges_end or len(data) != data_offset + n_frames * bands:
        raise FormatError("spectrum frames: size does not match the header")
    edges_bin = np.frombuffer(data, dtype="<u2", count=bands + 1, offset=tables_at + 4 * (bands + 1))
    levels = np.frombuffer(data, dtype=np.uint8, offset=data_offset).reshape(n_frames, bands)
    return SpectrumFrames(
        levels=levels.copy(),
        edges_bin=edges_bin.astype(np.int64),
        sample_rate=int(sr),
        fps=int(fps),
        fft_size=int(fft_size),
        smoothing=float(np.float32(smoothing)),
        min_db=float(min_db),
        max_db=float(max_db),
    )


def to_json_dict(frames: SpectrumFrames) -> dict[str, Any]:
    """The JSON variant (debugging): same fields, frames as nested arrays of integers."""
    return {
        "format": JSON_FORMAT_NAME,
        "version": VERSION,
        "sample_rate": frames.sample_rate,
        "fps": frames.fps,
        "fft_size": frames.fft_size,
        "smoothing": round(float(np.float32(frames.smoothing)), 6),
        "min_db": frames.min_db,
        "max_db": frames.max_db,
        "band_count": frames.bands,
        "frame_count": frames.frame_count,
        "edges_hz": [round(float(x), 3) for x in frames.edges_hz],
        "edges_bin": [int(x) for x in frames.edges_bin],
        "frames": frames.levels.tolist(),
    }


def to_json_bytes(frames: SpectrumFrames) -> bytes:
    return json.dumps(to_json_dict(frames), separators=(",", ":")).encode()
