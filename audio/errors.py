"""Audio exception tree. Every error has a stable code that api/ serves as problem+json."""

from __future__ import annotations

from core.errors import SonggateError


class AudioError(SonggateError):
    code = "audio_error"
    status = 422
    title = "Audio could not be processed"


class UnsupportedFormat(AudioError):
    code = "unsupported_format"
    status = 415
    title = "Unsupported audio format"


class CorruptAudio(AudioError):
    code = "corrupt_audio"
    title = "Corrupt or truncated audio"


class TooLong(AudioError):
    code = "too_long"
    title = "Audio is longer than allowed"


class TooShort(AudioError):
    code = "too_short"
    title = "Audio is shorter than required"


class TooLarge(AudioError):
    code = "too_large"
    status = 413
    title = "Upload is larger than allowed"


class TooManyChannels(AudioError):
    code = "too_many_channels"
    title = "Too many audio channels"


class InvalidSampleRate(AudioError):
    code = "invalid_sample_rate"
    title = "Sample rate out of range"


class EmptyAudio(AudioError):
    code = "empty_audio"
    title = "Audio contains no samples"


class InvalidSignal(AudioError):
    """An in-memory array that is not a valid signal (wrong dtype, shape, rate, non-finite)."""

    code = "invalid_signal"
    title = "Invalid audio signal"
