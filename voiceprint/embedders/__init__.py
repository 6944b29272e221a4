"""Speaker embedders: one class per backend behind the :class:`SpeakerEmbedder` protocol.

``load_embedder(name, model_dir=...)`` is the only way the service gets one: it resolves the name in
the model registry, verifies every file's sha256 and loads offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from voiceprint.embedders.base import SpeakerEmbedder, check_speech, l2_normalize
from voiceprint.errors import ModelUnavailable

if TYPE_CHECKING:
    from voiceprint.config import VoiceprintSettings

__all__ = ["BACKENDS", "SpeakerEmbedder", "check_speech", "l2_normalize", "load_embedder"]

#: Backend name -> registry model name.
BACKENDS = {"ecapa": "ecapa-voxceleb", "resemblyzer": "resemblyzer-ge2e"}


def load_embedder(
    name: str = "ecapa", *, model_dir: Path, settings: VoiceprintSettings | None = None
) -> SpeakerEmbedder:
    """Load an embedder from the installed model registry, offline.

    Parameters
    ----------
    name : "ecapa" (default) or "resemblyzer", or a registry name/alias of their models
    model_dir : Path, the model cache root (``Settings().resolved_model_dir``)
    settings : VoiceprintSettings or None (None: ``get_settings().voiceprint``); supplies
        min_speech_s, ecapa_precision, torch_threads, embed_batch_max_s

    Raises
    ------
    ModelUnavailable : unknown name, model not installed, a file failing its sha256 check, or a
        load failure (detail says to run ``songgate models pull``)
    """
    from models import registry
    from models.errors import ModelsError

    if settings is None:
        from core.settings import get_settings

        settings = get_settings().voiceprint
    try:
        spec = registry.get(BACKENDS.get(name, name))
        directory = registry.install_dir(spec, model_dir)
        registry.verify(spec, directory)
    except ModelsError as exc:
        raise ModelUnavailable(
            f"{exc.detail} (install with `songgate models pull`)", model=name, reason=exc.code
        ) from exc
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    try:
        if spec.backend == "ecapa":
            from voiceprint.embedders.ecapa import EcapaEmbedder

            return EcapaEmbedder(
                directory,
                model_id=spec.model_id,
                min_duration_s=settings.min_speech_s,
                precision=settings.ecapa_precision,
                batch_max_s=settings.embed_batch_max_s,
            )
        if spec.backend == "resemblyzer":
            from voiceprint.embedders.resemblyzer_backend import ResemblyzerEmbedder

            return ResemblyzerEmbedder(
                directory, model_id=spec.model_id, min_duration_s=settings.min_speech_s
            )
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"could not load {spec.model_id} from {directory}: {exc}", model=name) from exc
    raise ModelUnavailable(f"no embedder backend {spec.backend!r}", model=name)
