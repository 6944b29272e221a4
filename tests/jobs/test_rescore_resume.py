"""Resumability through the real CLI: ``songgate rescore`` over a manifest (1 worker process) is killed
with SIGKILL, resumed and interrupted with Ctrl-C (SIGINT), then resumed to the end with the same
job id. Every item must be in the results exactly once and nothing committed before a kill may be
redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from signals import encode, tone
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
N_ITEMS = 16


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "rescore", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _finished(engine, job_id: str) -> dict[int, tuple[str, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT seq, status, finished_at FROM job_items WHERE job_id = :j AND status != 'pending'"),
            {"j": job_id},
        ).all()
    return {r[0]: (r[1], str(r[2])) for r in rows}


def _wait_for(engine, job_id: str, at_least: int, proc: subprocess.Popen[str], timeout: float = 120) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            n = len(_finished(engine, job_id))
        except Exception:  # the job tables may not exist yet (the CLI migrates first)
            n = 0
        if n >= at_least:
            return n
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the CLI exited ({proc.returncode}) before {at_least} items were done:\n{out}")
        time.sleep(0.01)
    pytest.fail("the job made no progress in time")


def test_resume_after_sigkill_and_ctrl_c(tmp_settings, tmp_path: Path) -> None:
    from jobs.output import read_output

    for i in range(N_ITEMS):
        y = tone(110.0 * (1 + i % 7), sr=44100, seconds=2.0, amp_dbfs=-12.0, channels=2)
        encode(y, sr=44100, path=tmp_path / f"song-{i:02d}.wav")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(f'{{"path": "song-{i:02d}.wav"}}\n' for i in range(N_ITEMS)))
    out = tmp_path / "results.parquet"
    url = tmp_settings.resolved_database_url
    env = {
        **os.environ,
        "SONGGATE_ENV": "test",
        "SONGGATE_DATABASE_URL": url,
        "SONGGATE_DATA_DIR": str(tmp_settings.data_dir),
        "SONGGATE_JOBS__COMMIT_EVERY": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    args = [
        "--what",
        "checks,effects",
        "--manifest",
        str(manifest),
        "--job-id",
        "resume-me",
        "--output",
        str(out),
        "--no-progress",
    ]
    engine = create_engine(url)  # plain reads: no write lock taken while polling

    # 1. SIGKILL the whole job (runner and its worker process) once a few items are committed.
    proc = _cli([*args, "--workers", "1"], env)
    _wait_for(engine, "resume-me", 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    first = _finished(engine, "resume-me")
    assert 3 <= len(first) < N_ITEMS, "the job must be killed mid-run"
    with engine.connect() as c:
        assert c.execute(text("SELECT status FROM jobs WHERE id = 'resume-me'")).scalar() == "running"

    # 2. Resume, in-process this time (--workers 0: run options may change on resume), then Ctrl-C:
    #    the runner commits what finished and says how to resume.
    proc = _cli([*args, "--workers", "0"], env)
    _wait_for(engine, "resume-me", len(first) + 3, proc)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "--job-id resume-me" in output
    second = _finished(engine, "resume-me")
    assert len(second) < N_ITEMS, "Ctrl-C must stop the job mid-run"
    assert {k: v for k, v in second.items() if k in first} == first  # nothing redone

    # 3. Resume to the end (in-process too: worker start-up is what makes this test slow).
    proc = _cli([*args, "--workers", "0"], env)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "job resume-me resumed" in output
    final = _finished(engine, "resume-me")
    assert len(final) == N_ITEMS
    assert {k: v for k, v in final.items() if k in second} == second  # committed items never redone
    with engine.connect() as c:
        job = c.execute(text("SELECT status, total, done, failed FROM jobs WHERE id = 'resume-me'")).one()
        attempts = c.execute(
            text("SELECT max(attempts), min(attempts) FROM job_items WHERE job_id = 'resume-me'")
        ).one()
    assert tuple(job) == ("done", N_ITEMS, N_ITEMS, 0)
    assert tuple(attempts) == (1, 1)  # each item's result was recorded once
    rows = read_output(out)
    assert sorted(r["seq"] for r in rows) == list(range(N_ITEMS))
    assert len({r["item"] for r in rows}) == N_ITEMS
    assert all(r["status"] == "done" and r["result"]["checks"]["verdict"] for r in rows)
    engine.dispose()
