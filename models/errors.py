"""models exception tree (see core.errors for the contract: stable code, HTTP status, title)."""

from __future__ import annotations

from core.errors import SonggateError


class ModelsError(SonggateError):
    code = "models_error"
    status = 422
    title = "Models request failed"


class UnknownModel(ModelsError):
    code = "unknown_model"
    status = 404
    title = "No such model in the registry"


class ModelNotInstalled(ModelsError):
    """The model's directory is missing or incomplete; ``songgate models pull`` installs it."""

    code = "model_not_installed"
    status = 503
    title = "Model not installed"


class IntegrityError(ModelsError):
    """A file's sha256 differs from the registry's (tampered, truncated or a different release)."""

    code = "model_integrity"
    status = 503
    title = "Model file failed its sha256 check"


class SourceUnavailable(ModelsError):
    """One source could not provide the model (disabled, offline, missing files, bad hash)."""

    code = "model_source_unavailable"
    status = 503
    title = "Model source unavailable"


class PullFailed(ModelsError):
    """Every source failed; ``extra['attempts']`` lists each source and why."""

    code = "model_pull_failed"
    status = 503
    title = "Model could not be pulled from any source"


class CalibrationError(ModelsError):
    """A calibration file is unreadable or belongs to another model id."""

    code = "model_calibration_invalid"
    status = 500
    title = "Model calibration is invalid"
