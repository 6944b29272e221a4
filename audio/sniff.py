"""Identify a container from its first bytes (extensions and client MIME types are not trusted),
and read the WAV chunk table so a header's claims can be checked against the file's real size."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Literal

SNIFF_BYTES = 4096

Container = Literal["wav", "flac", "ogg", "mp3", "m4a"]

#: RIFF/RF64 data sizes meaning "unknown, read to end of file" (streamed WAVs).
_UNKNOWN_SIZES = {0, 0xFFFFFFFF}


def sniff_container(head: bytes) -> Container | None:
    """Return the container of a file from its first bytes (:data:`SNIFF_BYTES`), or ``None``."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3":
        return "mp3"
    if _two_mpeg_frames(head):
        return "mp3"  # raw MPEG audio: a valid frame header followed by another one
    return None


_BITRATES_KBPS = {  # (mpeg1?, layer) -> table indexed by bitrate index
    (True, 1): [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    (True, 2): [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    (True, 3): [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    (False, 1): [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    (False, 2): [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    (False, 3): [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(h: bytes) -> int | None:
    """Length in bytes of the MPEG audio frame whose 4-byte header is ``h``, or None if invalid."""
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return None
    version = (h[1] >> 3) & 3  # 3 = MPEG1, 2 = MPEG2, 0 = MPEG2.5, 1 reserved
    layer = 4 - ((h[1] >> 1) & 3)  # 4 means reserved
    bitrate_idx, rate_idx, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate_idx in (0, 15) or rate_idx == 3:
        return None
    mpeg1 = version == 3
    bitrate = _BITRATES_KBPS[(mpeg1, layer)][bitrate_idx] * 1000
    rate = _RATES[version][rate_idx]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    factor = 144 if (layer == 2 or mpeg1) else 72
    return factor * bitrate // rate + padding


def _two_mpeg_frames(head: bytes) -> bool:
    first = _mpeg_frame_length(head[:4])
    if not first:
        return False
    if len(head) < first + 4:
        return False  # too short to confirm; a real MP3 is longer than one frame
    return _mpeg_frame_length(head[first : first + 4]) is not None


def wav_declared_data(path: Path) -> tuple[int | None, int, int]:
    """Return ``(declared_data_bytes, bytes_per_second, data_offset)`` from a WAV's chunks.

    ``declared_data_bytes`` is ``None`` when the header says "unknown" (streamed WAVs).
    Raises ``ValueError`` when the chunk table is malformed.
    """
    with path.open("rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12:
            raise ValueError("truncated RIFF header")
        endian = ">" if riff[:4] == b"RIFX" else "<"
        byte_rate = 0
        for _ in range(64):  # a WAV has a handful of chunks; bound the walk
            hdr = fh.read(8)
            if len(hdr) < 8:
                raise ValueError("no data chunk")
            cid, size = hdr[:4], struct.unpack(endian + "I", hdr[4:])[0]
            if cid == b"fmt ":
                fmt = fh.read(min(size, 64))
                if len(fmt) < 16:
                    raise ValueError("truncated fmt chunk")
                byte_rate = struct.unpack(endian + "I", fmt[8:12])[0]
                fh.seek(size - len(fmt) + (size & 1), 1)
            elif cid == b"data":
                declared = None if size in _UNKNOWN_SIZES or riff[:4] == b"RF64" else size
                return declared, byte_rate, fh.tell()
            else:
                fh.seek(size + (size & 1), 1)
        raise ValueError("too many chunks before data")
