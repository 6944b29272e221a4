"""`songgate simulate listen`, `songgate outbox relay`, `songgate packets expire`, `songgate risk ...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from claimfakes import World

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
        timeout=600,
    )


def test_simulate_listen_json_and_table(tmp_path: Path) -> None:
    r = _run(
        ["simulate", "listen", "--runs", "2", "--honest", "10", "--max-song-s", "40", "--json"], tmp_path
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["classes"]) == 9 and all(c["runs"] == 2 and c["granted"] == 0 for c in doc["classes"])
    assert doc["honest"]["runs"] == 10 and doc["honest"]["false_reject_rate"] <= 0.005
    t = _run(["simulate", "listen", "--runs", "1", "--honest", "3", "--max-song-s", "30"], tmp_path)
    assert t.returncode == 0, t.stderr
    assert "scripted_no_wait" in t.stdout and "honest" in t.stdout and "granted" in t.stdout


def test_relay_and_expire_commands(tmp_path: Path) -> None:
    from db.migrate import upgrade

    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'songgate.db'}"
    upgrade(url)
    world = World.from_url(url)  # its clock is months in the past
    try:
        pid = world.packet(total_fen=1000, count=3, duration_s=3.0)
        grant = world.claim(pid, world.listen_fully(pid, "alice"))
    finally:
        world.engine.dispose()
    sink = tmp_path / "out" / "payouts.jsonl"
    r = _run(["outbox", "relay", "--once", "--no-expire", "--sink", str(sink)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["payout_id"] for x in sink.read_text().splitlines()] == [grant.payout_id]

    r = _run(["packets", "expire"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"refund {1000 - grant.amount_fen} fen" in r.stdout and "1 packets expired" in r.stdout
    r = _run(["outbox", "relay", "--once", "--sink", str(sink)], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in sink.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["grant", "refund"]
    assert sum(x["amount_fen"] for x in lines) == 1000

    r = _run(["risk", "audit", "--user", "alice"], tmp_path)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["action"], x["decision"], x["packet"]) for x in rows] == [("claim", "allow", pid)]


def test_risk_flag_user(tmp_path: Path) -> None:
    r = _run(["risk", "flag-user", "kid", "--minor", "--tz", "Asia/Shanghai"], tmp_path)
    assert r.returncode == 0 and "minor=True" in r.stdout, r.stderr
    bad = _run(["risk", "flag-user", "kid", "--tz", "Mars/Olympus"], tmp_path)
    assert bad.returncode == 2 and "invalid_timezone" in bad.stderr
