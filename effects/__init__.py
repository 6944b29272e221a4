"""Effects: visualizer data precomputed once per recording (AnalyserNode-compatible spectrum frames,
BBC audiowaveform peaks, beats and onset envelope) and their byte formats.

effects/ never decodes files: it takes float32 arrays from audio/ (only the worker entry point
``effects.artifacts.compute_from_file`` calls audio.decode for on-demand parameters).

The public names are imported lazily: core.settings imports effects.config, and importing numpy,
scipy and librosa there would slow every process start (and create an import cycle).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Artifact", "compute_default_artifacts"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from effects import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'effects' has no attribute {name!r}")
