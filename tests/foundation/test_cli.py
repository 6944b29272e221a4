"""The songgate CLI: keys, db upgrade, check (exit codes and JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from signals import encode, tone

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SONGGATE_DATA_DIR": str(tmp_path / "var"), "SONGGATE_ENV": "test"}
    env.pop("SONGGATE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_keys_create_prints_key_alone_on_last_line(tmp_path: Path) -> None:
    r = _run(["keys", "create", "--scope", "upload", "--scope", "claim", "--name", "uploader"], tmp_path)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("sg_") and " " not in key
    bad = _run(["keys", "create", "--scope", "root"], tmp_path)
    assert bad.returncode != 0


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        r = _run(["db", "upgrade"], tmp_path)
        assert r.returncode == 0, r.stderr
        assert "0001_foundation" in r.stdout or "_0001" in r.stdout
    assert (tmp_path / "var" / "songgate.db").exists()


def test_check_json_and_errors(tmp_path: Path) -> None:
    good = encode(
        tone(1000, sr=48000, seconds=3, amp_dbfs=-20, channels=2), sr=48000, path=tmp_path / "good.wav"
    )
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    r = _run(["check", str(good), str(bad), "--json"], tmp_path)
    assert r.returncode == 1  # one file failed to decode
    out = json.loads(r.stdout)
    assert out[0]["file"] == str(good) and out[0]["checks"]
    assert out[1]["error"]["code"] == "unsupported_format"
    table = _run(["check", str(good)], tmp_path)
    assert "loudness.integrated" in table.stdout


@pytest.mark.parametrize("missing", ["nope.wav"])
def test_check_missing_file(tmp_path: Path, missing: str) -> None:
    r = _run(["check", str(tmp_path / missing), "--json"], tmp_path)
    assert r.returncode == 1 and json.loads(r.stdout)[0]["error"]["code"] == "not_found"
