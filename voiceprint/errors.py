"""voiceprint exception tree (see core.errors for the contract: stable code, HTTP status, title).

The embedder-side errors live here; the service's own errors are in ``voiceprint.service_errors``.
"""

from __future__ import annotations

from core.errors import SonggateError


class VoiceprintError(SonggateError):
    code = "voiceprint_error"
    status = 422
    title = "Voiceprint request failed"


class TooLittleSpeech(VoiceprintError):
    """Less speech than the embedder needs for a meaningful voiceprint (an explicit error, never a
    garbage vector). ``extra`` carries ``speech_s`` and ``min_speech_s``."""

    code = "too_little_speech"
    status = 422
    title = "Too little speech"


class ModelMismatch(VoiceprintError):
    """Two embeddings (or an embedding and a threshold) come from different model ids."""

    code = "model_mismatch"
    status = 409
    title = "Voiceprint model mismatch"


class ModelUnavailable(VoiceprintError):
    """The embedding model is not installed, fails its sha256 check, or cannot be loaded."""

    code = "model_unavailable"
    status = 503
    title = "Voiceprint model unavailable"
