"""`songgate eval voiceprint` end to end on a few real speakers: report, plot, calibration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from models import registry

pytestmark = pytest.mark.model


def speaker_dir(root: Path, files: list[Path]) -> Path:
    """One sub-folder per speaker, holding a symlink to that speaker's recording."""
    for f in files:
        d = root / f.name.split("-")[0]
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="module")
def dataset(librispeech: Path, tmp_path_factory) -> tuple[Path, Path]:
    files = sorted(librispeech.glob("*.flac"))
    base = tmp_path_factory.mktemp("evaldata")
    return speaker_dir(base / "trials", files[:5]), speaker_dir(base / "cohort", files[5:9])


@pytest.fixture
def linked_model_dir(model_dir: Path, tmp_path: Path) -> Path:
    """A private model dir whose ECAPA files are links to the installed ones (so calibration
    writes go to tmp, not to the real model dir)."""
    src = registry.install_dir("ecapa", model_dir)
    dst = registry.install_dir("ecapa", tmp_path / "models")
    dst.mkdir(parents=True)
    for rel in registry.ECAPA.files:
        (dst / rel).symlink_to(src / rel)
    return tmp_path / "models"


def test_eval_reports_compares_plots_and_calibrates(dataset, linked_model_dir, tmp_path):
    trials, cohort = dataset
    plot = tmp_path / "scores.png"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "voiceprint",
            str(trials),
            "--segments",
            "2",
            "--cohort",
            str(cohort),
            "--cohort-segments",
            "2",
            "--top-n",
            "4",
            "--json",
            "--plot",
            str(plot),
            "--calibrate",
            "--target-far",
            "0.05",
            "--model-dir",
            str(linked_model_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["model_id"] == registry.ECAPA.model_id
    assert report["trials"] == {"target": 5, "nontarget": 40}
    assert report["scoring"] == "asnorm" and report["asnorm_top_n"] == 4
    for system in ("pipeline", "reference"):
        for kind in ("raw", "asnorm"):
            block = report[system][kind]
            assert 0 <= block["eer_percent"] <= 100 and 0 <= block["min_dcf"] <= 1.0 + 1e-9
    # Real speakers, same-recording halves: the pipeline separates them well.
    assert report["pipeline"]["raw"]["eer_percent"] < 20
    assert "encode_batch" in report["reference"]["name"]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    got = registry.thresholds("ecapa", linked_model_dir)
    assert got["target_far"] == 0.05
    assert got["raw_cosine"] == report["pipeline"]["raw"]["threshold_at_far"]
    assert got["asnorm"] == report["pipeline"]["asnorm"]["threshold_at_far"]
    assert report["calibration"]["model_id"] == registry.ECAPA.model_id


def test_eval_with_a_trial_list_and_resemblyzer(dataset, model_dir, tmp_path):
    trials, _ = dataset
    files = sorted(trials.rglob("*.flac"))
    lines = [
        f"1 {files[0].relative_to(trials)} {files[0].relative_to(trials)}",
        *(f"0 {files[0].relative_to(trials)} {f.relative_to(trials)}" for f in files[1:]),
    ]
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "voiceprint",
            str(trials),
            "--backend",
            "resemblyzer",
            "--trials",
            str(tmp_path / "trials.txt"),
            "--condition",
            "crop3",
            "--json",
            "--no-reference",
            "--model-dir",
            str(model_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    # A crop with less than min_speech_s of speech is left out of every trial it is in (and counted).
    assert report["trials"]["target"] == 1
    assert report["trials"]["nontarget"] + report["utterances"]["left_out_too_little_speech"] == 4
    assert report["scoring"] == "raw" and "reference" not in report
    assert report["utterances"]["mean_audio_s"] <= 3.0
    assert not os.path.exists(registry.install_dir("resemblyzer", model_dir) / "calibration.json.tmp")


def test_eval_without_the_model_says_how_to_install(dataset, tmp_path):
    trials, _ = dataset
    result = CliRunner().invoke(app, ["eval", "voiceprint", str(trials), "--model-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "songgate models pull" in result.output
