"""effects exception tree (see core.errors for the contract: stable code, HTTP status, title)."""

from __future__ import annotations

from core.errors import SonggateError


class EffectsError(SonggateError):
    code = "effects_error"
    status = 422
    title = "Effects request failed"


class InvalidEffectParams(EffectsError):
    """A request parameter (fps, bands, samples_per_pixel, bits, format...) is outside what is served."""

    code = "invalid_effect_params"
    status = 422
    title = "Invalid visualizer parameters"


class InvalidSignal(EffectsError):
    """An array handed to effects/ is not a usable signal (dtype, shape, rate, non-finite, empty)."""

    code = "effects_invalid_signal"
    status = 422
    title = "Invalid signal for visualizer data"


class FormatError(EffectsError):
    """Bytes that do not parse as the format they claim to be (spectrum frames, waveform .dat)."""

    code = "effects_format_error"
    status = 422
    title = "Malformed visualizer data"
