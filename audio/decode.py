"""Decode wav, flac, ogg/vorbis, opus, mp3 and m4a/aac to float32, enforcing limits while decoding.

Two paths: libsndfile (soundfile) for WAV/FLAC, which is faster and exact, and PyAV (FFmpeg) for the
compressed containers. Both read in blocks and count samples as they go, so a small file whose
header claims hours, or a decompression bomb, is refused before it can allocate more than
``max_duration_s * sample_rate * channels * 4`` bytes. Nothing is preallocated from header values.

:func:`open_stream` yields the decoded blocks one by one with the same checks (the recording
checks consume a file that way and never hold it whole); :func:`decode_file` collects them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from audio.errors import (
    CorruptAudio,
    EmptyAudio,
    InvalidSampleRate,
    TooLarge,
    TooLong,
    TooManyChannels,
    TooShort,
    UnsupportedFormat,
)
from audio.limits import AudioLimits
from audio.resample import resample, to_mono
from audio.sniff import SNIFF_BYTES, sniff_container, wav_declared_data

#: Codecs we accept, by FFmpeg codec name, per container.
ALLOWED_CODECS = {
    "wav": {"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le", "pcm_u8"},
    "flac": {"flac"},
    "ogg": {"vorbis", "opus", "flac"},
    "mp3": {"mp3", "mp3float"},
    "m4a": {"aac", "alac", "mp3"},
}

MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
}

BLOCK_FRAMES = 65536
#: A decoded duration this much shorter than the container declares means a truncated file.
TRUNCATION_TOLERANCE = 0.9


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file is, from its headers (before decoding)."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    declared_duration_s: float | None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.container]


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
    """Decoded audio.

    Attributes
    ----------
    samples : np.ndarray [shape=(channels, n)], float32, in [-1, 1] for integer sources
    sample_rate : int, Hz
    info : AudioInfo of the source file (native rate and channels)
    """

    samples: np.ndarray
    sample_rate: int
    info: AudioInfo

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate


class DecodeStream:
    """A file being decoded: ``info`` from its headers (checked already), and on iteration its
    samples as float32 ``(channels, m)`` blocks, C-contiguous, checked as they come (limits,
    NaN) and at the end (empty, truncated, too short)."""

    def __init__(self, info: AudioInfo, blocks: Iterator[np.ndarray], max_frames: int) -> None:
        self.info = info
        self.max_frames = max_frames  # samples per channel the limits allow
        self._blocks = blocks

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._blocks


def open_stream(path: str | os.PathLike[str], *, limits: AudioLimits | None = None) -> DecodeStream:
    """Open ``path`` for decoding block by block.

    Raises
    ------
    UnsupportedFormat, CorruptAudio, TooLarge, TooManyChannels, InvalidSampleRate, EmptyAudio
    (here, from the headers); TooLong, CorruptAudio, EmptyAudio, TooShort (while iterating)
    """
    limits = limits or AudioLimits()
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise EmptyAudio("the file is empty")
    if size > limits.max_upload_bytes:
        raise TooLarge(f"file is {size} bytes; the limit is {limits.max_upload_bytes}")
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    container = sniff_container(head)
    if container is None:
        raise UnsupportedFormat("not a recognised audio file (wav, flac, ogg, opus, mp3, m4a)")
    if container in ("wav", "flac"):
        info, blocks, min_declared = _open_soundfile(path, container, limits)
    else:
        info, blocks, min_declared = _open_av(path, container, limits)
    max_frames = int(limits.max_duration_s * info.sample_rate)
    return DecodeStream(info, _checked(blocks, info, limits, min_declared), max_frames)


def _checked(
    blocks: Iterator[np.ndarray], info: AudioInfo, limits: AudioLimits, min_declared: float
) -> Iterator[np.ndarray]:
    """``blocks`` with the limits enforced; a file declaring more than ``min_declared`` seconds
    must decode to most of them (WAV through libsndfile: its size was checked from the header)."""
    max_frames = int(limits.max_duration_s * info.sample_rate)
    n = 0
    for block in blocks:
        if block.shape[0] != info.channels:
            raise CorruptAudio("channel count changes inside the stream")
        n += block.shape[1]
        if n > max_frames:
            raise _too_long(limits)
        if not np.isfinite(block).all():
            raise CorruptAudio("the audio contains NaN or infinite samples")
        yield block
    if n == 0:
        raise EmptyAudio("the file decodes to no samples")
    declared = info.declared_duration_s
    if declared and declared > min_declared and n < TRUNCATION_TOLERANCE * declared * info.sample_rate:
        raise CorruptAudio(
            f"the file is truncated: {n / info.sample_rate:.1f} s decoded of {declared:.1f} s declared"
        )
    if n / info.sample_rate < limits.min_duration_s:
        raise TooShort(f"audio is shorter than {limits.min_duration_s} s")


def decode_file(
    path: str | os.PathLike[str],
    *,
    limits: AudioLimits | None = None,
    sr: int | None = None,
    mono: bool = False,
) -> DecodedAudio:
    """Decode ``path`` to float32 ``(channels, n)``.

    Parameters
    ----------
    path : file to decode; its extension is ignored (the content decides)
    limits : hard limits; defaults to :class:`AudioLimits`
    sr : resample (soxr) to this rate in Hz; ``None`` keeps the native rate
    mono : average the channels into one

    Raises
    ------
    UnsupportedFormat, CorruptAudio, TooLong, TooLarge, TooManyChannels, InvalidSampleRate, EmptyAudio
    """
    limits = limits or AudioLimits()
    stream = open_stream(path, limits=limits)
    info = stream.info
    buf = _SampleBuffer(info.channels, _initial_capacity(info, int(limits.max_duration_s * info.sample_rate)))
    for block in stream:
        buf.append(block)
    samples = buf.result()
    if mono:
        samples = to_mono(samples)
    rate = info.sample_rate
    if sr is not None and sr != rate:
        samples = resample(samples, orig_sr=rate, target_sr=sr)
        rate = sr
    return DecodedAudio(samples=samples, sample_rate=rate, info=info)


def probe_file(path: str | os.PathLike[str], *, limits: AudioLimits | None = None) -> AudioInfo:
    """Header facts without decoding; raises the same errors as :func:`decode_file` for bad headers."""
    limits = limits or AudioLimits()
    path = Path(path)
    if path.stat().st_size == 0:
        raise EmptyAudio("the file is empty")
    with path.open("rb") as fh:
        container = sniff_container(fh.read(SNIFF_BYTES))
    if container is None:
        raise UnsupportedFormat("not a recognised audio file (wav, flac, ogg, opus, mp3, m4a)")
    if container in ("wav", "flac"):
        import soundfile as sf

        try:
            with sf.SoundFile(path) as f:
                info = _soundfile_info(f, container)
        except sf.LibsndfileError as exc:
            raise CorruptAudio(f"unreadable {container} header: {exc}") from None
        if container == "wav":
            info = _check_wav_claims(path, info, limits)
    else:
        import av

        try:
            with av.open(str(path), metadata_errors="ignore") as c:
                info = _av_info(c, container)
        except av.FFmpegError as exc:
            raise CorruptAudio(f"unreadable {container} file: {exc}") from None
    _check_header(info, limits)
    return info


def _check_header(info: AudioInfo, limits: AudioLimits) -> None:
    if info.channels < 1:
        raise CorruptAudio("the header declares no channels")
    if info.channels > limits.max_channels:
        raise TooManyChannels(
            f"{info.channels} channels; at most {limits.max_channels} are accepted",
            channels=info.channels,
            limit=limits.max_channels,
        )
    if not limits.min_sample_rate <= info.sample_rate <= limits.max_sample_rate:
        raise InvalidSampleRate(
            f"{info.sample_rate} Hz is outside {limits.min_sample_rate}-{limits.max_sample_rate} Hz",
            sample_rate=info.sample_rate,
        )
    if info.declared_duration_s is not None and info.declared_duration_s > limits.max_duration_s:
        raise TooLong(
            f"the file declares {info.declared_duration_s:.1f} s; the limit is {limits.max_duration_s:.0f} s",
            limit_s=limits.max_duration_s,
        )


def _too_long(limits: AudioLimits) -> TooLong:
    return TooLong(f"audio is longer than {limits.max_duration_s:.0f} s", limit_s=limits.max_duration_s)


# --- libsndfile path (wav, flac) -------------------------------------------------------------


def _soundfile_info(f: object, container: str) -> AudioInfo:
    import soundfile as sf

    assert isinstance(f, sf.SoundFile)
    codec = {
        "PCM_16": "pcm_s16le",
        "PCM_24": "pcm_s24le",
        "PCM_32": "pcm_s32le",
        "PCM_U8": "pcm_u8",
        "FLOAT": "pcm_f32le",
        "DOUBLE": "pcm_f64le",
    }.get(f.subtype, f.subtype.lower())
    if container == "flac":
        codec = "flac"
    declared = f.frames / f.samplerate if f.samplerate > 0 and f.frames >= 0 else None
    return AudioInfo(container, codec, int(f.samplerate), int(f.channels), declared)


def _check_wav_claims(path: Path, info: AudioInfo, limits: AudioLimits) -> AudioInfo:
    """Judge the data chunk's declared size before reading: refuse a claim over the limit (without
    reading anything) and a claim the file cannot hold (truncated or forged header)."""
    try:
        declared, byte_rate, offset = wav_declared_data(path)
    except ValueError as exc:
        raise CorruptAudio(f"malformed WAV header: {exc}") from None
    if declared is None or byte_rate <= 0:
        return dataclasses.replace(info, declared_duration_s=None)
    claimed_s = declared / byte_rate
    info = dataclasses.replace(info, declared_duration_s=claimed_s)
    _check_header(info, limits)
    actual = path.stat().st_size - offset
    if declared > actual + byte_rate // 10:  # allow a sliver of slack for padding quirks
        raise CorruptAudio(
            f"the header declares {claimed_s:.1f} s of audio but the file holds {actual / byte_rate:.1f} s"
        )
    return info


def _open_soundfile(
    path: Path, container: str, limits: AudioLimits
) -> tuple[AudioInfo, Iterator[np.ndarray], float]:
    import soundfile as sf

    try:
        f = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        # libsndfile rejects some valid-but-unusual WAVs (e.g. odd extensible layouts): try FFmpeg.
        try:
            return _open_av(path, container, limits)
        except UnsupportedFormat:
            raise CorruptAudio(f"unreadable {container} file: {exc}") from None
    try:
        info = _soundfile_info(f, container)
        if info.codec not in ALLOWED_CODECS[container] and container == "wav":
            raise UnsupportedFormat(f"WAV encoding {f.subtype} is not supported")
        if container == "wav":
            info = _check_wav_claims(path, info, limits)
        _check_header(info, limits)
    except BaseException:
        f.close()
        raise

    def blocks() -> Iterator[np.ndarray]:
        with f:
            try:
                while True:
                    block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        return
                    yield np.ascontiguousarray(block.T)
            except sf.LibsndfileError as exc:
                raise CorruptAudio(f"decoding failed: {exc}") from None

    return info, blocks(), (0.0 if container == "flac" else math.inf)


# --- FFmpeg path (ogg, opus, mp3, m4a) ---------------------------------------------------------


def _av_info(c: object, container: str) -> AudioInfo:
    import av

    assert isinstance(c, av.container.InputContainer)
    if not c.streams.audio:
        raise UnsupportedFormat("the file has no audio stream")
    stream = c.streams.audio[0]
    ctx = stream.codec_context
    codec = ctx.name
    rate = int(ctx.sample_rate or stream.rate or 0)
    channels = int(ctx.channels or 0)
    declared: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif c.duration is not None:
        declared = c.duration / 1_000_000
    return AudioInfo(container, codec, rate, channels, declared)


def _open_av(
    path: Path, container: str, limits: AudioLimits
) -> tuple[AudioInfo, Iterator[np.ndarray], float]:
    import av

    try:
        c = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise CorruptAudio(f"unreadable {container} file: {exc}") from None
    except av.FFmpegError as exc:
        raise CorruptAudio(f"unreadable {container} file: {exc}") from None
    try:
        info = _av_info(c, container)
        if container != "wav" and info.codec not in ALLOWED_CODECS[container]:
            raise UnsupportedFormat(f"codec {info.codec} in {container} is not supported")
        _check_header(info, limits)
    except BaseException:
        c.close()
        raise

    def blocks() -> Iterator[np.ndarray]:
        with c:
            stream = c.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout=None, rate=None)
            errors = 0
            try:
                for packet in c.demux(stream):
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError:
                        errors += 1
                        if errors > 8:
                            raise CorruptAudio("too many undecodable packets") from None
                        continue
                    for frame in frames:
                        for out in resampler.resample(frame):
                            yield out.to_ndarray()
            except av.FFmpegError as exc:
                raise CorruptAudio(f"decoding failed: {exc}") from None

    return info, blocks(), 1.0


class _SampleBuffer:
    """A (channels, capacity) float32 buffer filled block by block, growing geometrically.

    Decoding straight into it avoids holding a list of blocks plus their concatenated copy (about
    twice the decoded size at peak). Capacity starts from the header's claim, capped by the limit,
    so a lying header costs at most the limit and an honest one costs no reallocation at all.
    """

    def __init__(self, channels: int, capacity: int) -> None:
        self._data = np.empty((channels, max(capacity, 1)), dtype=np.float32)
        self.size = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.size + n > self._data.shape[1]:
            grown = np.empty(
                (self._data.shape[0], max(self.size + n, int(self._data.shape[1] * 1.5))), np.float32
            )
            grown[:, : self.size] = self._data[:, : self.size]
            self._data = grown
        self._data[:, self.size : self.size + n] = block
        self.size += n

    def result(self) -> np.ndarray:
        """The filled (channels, size) array, C-contiguous, without a second copy: rows are
        compacted in place (memmove is overlap-safe) and the allocation is shrunk with realloc."""
        channels, capacity = self._data.shape
        n = self.size
        if n < capacity:
            base = self._data.ctypes.data
            itemsize = self._data.itemsize
            for c in range(1, channels):
                ctypes.memmove(base + c * n * itemsize, base + c * capacity * itemsize, n * itemsize)
            self._data.resize((channels, n), refcheck=False)
        return self._data


def _initial_capacity(info: AudioInfo, max_frames: int) -> int:
    declared = info.declared_duration_s
    if declared is None or declared <= 0:
        return min(max_frames, BLOCK_FRAMES * 16)
    # A little headroom for codec padding so an honest file never reallocates.
    return min(max_frames, int(declared * info.sample_rate * 1.02) + 4096)
