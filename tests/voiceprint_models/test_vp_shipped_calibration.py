"""Registry entries ship the thresholds calibrated for their exact version; a local calibration wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import registry


@pytest.mark.parametrize("name", ["ecapa", "resemblyzer"])
def test_shipped_thresholds_without_local_calibration(tmp_path: Path, name: str) -> None:
    spec = registry.get(name)
    got = registry.thresholds(name, tmp_path)
    assert got is not None and spec.calibration is not None
    assert got["model_id"] == spec.model_id
    assert got["raw_cosine"] == spec.calibration["raw_cosine"] and got["target_far"] == 0.01


def test_local_calibration_file_takes_precedence(tmp_path: Path) -> None:
    spec = registry.get("ecapa")
    directory = registry.install_dir(spec, tmp_path)
    directory.mkdir(parents=True)
    record = {"raw_cosine": 0.5, "asnorm": 3.1, "target_far": 0.001, "model_id": spec.model_id}
    (directory / registry.CALIBRATION_FILE).write_text(json.dumps(record))
    got = registry.thresholds("ecapa", tmp_path)
    assert got is not None and got["raw_cosine"] == 0.5 and got["target_far"] == 0.001


def test_calibration_for_another_version_is_refused(tmp_path: Path) -> None:
    spec = registry.get("ecapa")
    directory = registry.install_dir(spec, tmp_path)
    directory.mkdir(parents=True)
    record = {"raw_cosine": 0.5, "asnorm": 3.1, "target_far": 0.01, "model_id": "ecapa-voxceleb@000000000000"}
    (directory / registry.CALIBRATION_FILE).write_text(json.dumps(record))
    with pytest.raises(registry.CalibrationError):
        registry.thresholds("ecapa", tmp_path)
