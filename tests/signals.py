"""Seeded synthetic signals and in-test encoders for every supported format.

Signals are float32 with shape (channels, n). Levels are peak dBFS per channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def db_to_amp(dbfs: float) -> float:
    return float(10 ** (dbfs / 20))


def tone(
    freq: float, *, sr: int, seconds: float, amp_dbfs: float = -6.0, channels: int = 1, phase: float = 0.0
) -> np.ndarray:
    """Sine at ``freq`` Hz; ``phase`` in radians."""
    t = np.arange(int(round(sr * seconds)), dtype=np.float64) / sr
    y = db_to_amp(amp_dbfs) * np.sin(2 * np.pi * freq * t + phase)
    return np.repeat(y[None, :], channels, axis=0).astype(np.float32)


def chirp(
    f0: float, f1: float, *, sr: int, seconds: float, amp_dbfs: float = -6.0, channels: int = 1
) -> np.ndarray:
    """Logarithmic sweep from ``f0`` to ``f1`` Hz."""
    t = np.arange(int(round(sr * seconds)), dtype=np.float64) / sr
    k = np.log(f1 / f0) / seconds
    y = db_to_amp(amp_dbfs) * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    return np.repeat(y[None, :], channels, axis=0).astype(np.float32)


def white_noise(
    rng: np.random.Generator, *, sr: int, seconds: float, amp_dbfs: float = -12.0, channels: int = 1
) -> np.ndarray:
    """Uniform white noise with peak ``amp_dbfs``."""
    n = int(round(sr * seconds))
    return (db_to_amp(amp_dbfs) * rng.uniform(-1, 1, size=(channels, n))).astype(np.float32)


_AV_FORMATS = {
    # ext: (container format, codec, bit_rate, forced sample rate)
    "mp3": ("mp3", "libmp3lame", 128_000, None),
    "m4a": ("ipod", "aac", 128_000, None),
    "ogg": ("ogg", "vorbis", None, None),  # FFmpeg's native encoder (PyAV ships no libvorbis)
    "opus": ("ogg", "libopus", 96_000, 48000),
}


def encode(
    y: np.ndarray,
    *,
    sr: int,
    path: str | Path,
    fmt: str | None = None,
    bit_rate: int | None = None,
    subtype: str | None = None,
) -> Path:
    """Write ``y`` (channels, n) to ``path`` as wav/flac (soundfile) or mp3/m4a/ogg/opus (PyAV).

    ``fmt`` defaults to the extension; it is independent of it so tests can mislabel files.
    """
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    y = np.atleast_2d(y)
    if fmt in ("wav", "flac"):
        import soundfile as sf

        sf.write(path, y.T, sr, format=fmt.upper(), subtype=subtype or "PCM_16")
        return path
    if fmt == "ogg" and y.shape[0] == 1:
        return _ffmpeg_vorbis(y, sr=sr, path=path)
    import av

    container_fmt, codec, default_rate, forced_sr = _AV_FORMATS[fmt]
    if forced_sr and forced_sr != sr:
        from audio.resample import resample

        y, sr = resample(y, orig_sr=sr, target_sr=forced_sr), forced_sr
    layout = "mono" if y.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=container_fmt) as c:
        options = {"strict": "experimental"} if codec == "vorbis" else {}
        stream = c.add_stream(codec, rate=sr, layout=layout, options=options)
        if bit_rate or default_rate:
            stream.bit_rate = bit_rate or default_rate
        frame_size = 1152 if codec == "libmp3lame" else 1024
        for start in range(0, y.shape[1], frame_size * 8):
            block = np.ascontiguousarray(y[:, start : start + frame_size * 8], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = sr
            frame.pts = start
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


def _ffmpeg_vorbis(y: np.ndarray, *, sr: int, path: Path) -> Path:
    """FFmpeg's native Vorbis encoder is stereo-only; mono Vorbis comes from Debian's ffmpeg (libvorbis)."""
    import shutil
    import subprocess
    import tempfile

    import soundfile as sf

    if shutil.which("ffmpeg") is None:
        raise RuntimeError("mono Ogg Vorbis needs the ffmpeg CLI (installed by .ci/run)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        sf.write(tmp.name, y.T, sr, subtype="FLOAT")
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-i",
                tmp.name,
                "-c:a",
                "libvorbis",
                "-q:a",
                "4",
                "-f",
                "ogg",
                str(path),
            ],
            check=True,
        )
    return path
