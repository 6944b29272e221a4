"""Re-scoring recordings: failure isolation, idempotent write-backs, the checks flip report,
selections and manifests. Runs the job runner in-process (the CLI and the engines have their own tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from signals import encode, tone, white_noise
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jobfakes  # noqa: E402


@pytest.fixture
def db(tmp_settings):  # type: ignore[no-untyped-def]
    from db.blobstore import LocalBlobStore
    from db.engine import make_engine, make_session_factory

    engine = make_engine(tmp_settings.resolved_database_url)
    yield make_session_factory(engine), LocalBlobStore(tmp_settings.resolved_blob_dir)
    engine.dispose()


def _files(tmp_path: Path, n: int, rng) -> list[Path]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        y = tone(220.0 * (i + 1), sr=22050, seconds=1.0 + 0.5 * (i % 3), amp_dbfs=-14.0)
        if i % 2:
            y = y + white_noise(rng, sr=22050, seconds=y.shape[1] / 22050, amp_dbfs=-40.0)
        out.append(encode(y, sr=22050, path=tmp_path / f"take {i}.wav"))
    return out


def _recordings(factory, blobs, files, **kw):  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        return [jobfakes.add_recording(s, blobs, p, **kw) for p in files]


@pytest.mark.both_dbs
def test_one_corrupt_file_fails_alone_with_its_code(tmp_settings, db, tmp_path, rng) -> None:
    from jobs.output import read_output
    from jobs.runner import JobRequest, RunOptions, create_job, run_job

    factory, _ = db
    good = _files(tmp_path, 3, rng)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(good[0].read_bytes()[:44] + b"\x00garbage" * 50)  # a WAV header, then junk
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    manifest = tmp_path / "manifest.csv"
    rows = [good[0].name, str(corrupt), good[1].name, "gone.wav", not_audio.name, good[2].name]
    manifest.write_text("path\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out.jsonl"
    job_id, _ = create_job(
        factory,
        tmp_settings,
        JobRequest(what=("checks", "effects"), manifest=str(manifest)),
        options=RunOptions(workers=0, output=str(out)),
    )
    status = run_job(factory, tmp_settings, job_id)
    assert status["status"] == "done"
    assert (status["total"], status["done"], status["failed"]) == (6, 3, 3)
    rows_out = read_output(out)
    assert [r["seq"] for r in rows_out] == list(range(6))
    by_name = {Path(r["path"]).name: r for r in rows_out}
    assert by_name["corrupt.wav"]["error_code"] == "corrupt_audio"
    assert by_name["gone.wav"]["error_code"] == "file_not_found"
    assert by_name["notes.wav"]["status"] == "failed" and by_name["notes.wav"]["error_code"]
    assert status["errors"] == {
        "corrupt_audio": 1,
        "file_not_found": 1,
        by_name["notes.wav"]["error_code"]: 1,
    }
    for p in good:
        row = by_name[p.name]
        assert row["status"] == "done" and row["error_code"] is None
        # A manifest file has no database row: the full report and the effects summary are in the output.
        assert row["result"]["report"]["verdict"] == row["result"]["checks"]["verdict"]
        assert {e["kind"] for e in row["result"]["effects"]} == {"spectrum", "waveform_dat", "beats"}


@pytest.mark.both_dbs
def test_write_backs_are_idempotent(tmp_settings, db, tmp_path, rng) -> None:
    from db.tables import Recording
    from effects.tables import EffectArtifact
    from jobs.runner import JobRequest, JobRunner, RunOptions, create_job, run_job
    from jobs.tables import Job, JobItem

    factory, blobs = db
    rec_ids = _recordings(factory, blobs, _files(tmp_path, 3, rng), report_version="old")
    request = JobRequest(what=("checks", "effects"), where=("settings_version=old",))
    first, _ = create_job(factory, tmp_settings, request, options=RunOptions(workers=0))
    assert run_job(factory, tmp_settings, first)["done"] == 3

    def snapshot():  # type: ignore[no-untyped-def]
        with factory() as s:
            arts = s.execute(
                select(
                    EffectArtifact.recording_id,
                    EffectArtifact.kind,
                    EffectArtifact.params_key,
                    EffectArtifact.etag,
                )
            ).all()
            reports = {r.id: (r.report_version, r.report) for r in s.scalars(select(Recording))}
        return sorted(arts), reports

    arts1, reports1 = snapshot()
    assert len(arts1) == 3 * 3  # spectrum, waveform, beats per recording, once each
    assert {v for v, _ in reports1.values()} == {tmp_settings.checks.version}
    assert all(r["settings_version"] == tmp_settings.checks.version for _, r in reports1.values())

    # A second job over the same recordings (selected by id now) replaces, never appends.
    again, _ = create_job(
        factory,
        tmp_settings,
        JobRequest(what=("checks", "effects"), where=(f"id={','.join(rec_ids)}",)),
        options=RunOptions(workers=0),
    )
    assert run_job(factory, tmp_settings, again)["done"] == 3
    arts2, reports2 = snapshot()
    assert arts2 == arts1 and reports2 == reports1

    # Committing the same outcomes twice (a crash between commit and acknowledgement) counts them once.
    with factory() as s:
        items = s.scalars(select(JobItem).where(JobItem.job_id == again)).all()
    runner = JobRunner(factory, tmp_settings, again)
    runner.params, runner.dry_run = {"what": ["checks", "effects"]}, False
    from jobs.items import ItemTask, Outcome

    dup = [
        (ItemTask(i.seq, "recording", i.item_key), Outcome(i.seq, "done", result={"checks": {}}))
        for i in items
    ]
    import time

    runner._commit(dup, len(dup), time.perf_counter())
    with factory() as s:
        job = s.get(Job, again)
        assert (job.done, job.failed) == (3, 0)
    assert snapshot() == (arts1, reports1)
    # Resuming a finished job is a no-op.
    assert run_job(factory, tmp_settings, again)["done"] == 3
    with factory() as s:
        assert s.scalar(select(func.max(JobItem.attempts)).where(JobItem.job_id == again)) == 1


@pytest.mark.both_dbs
def test_threshold_change_reports_flipped_verdicts_without_writing(tmp_settings, db, tmp_path, rng) -> None:
    from db.tables import Recording
    from jobs.runner import JobRequest, RunOptions, create_job, run_job

    factory, blobs = db
    rec_ids = _recordings(factory, blobs, _files(tmp_path, 4, rng), user_id="singer")
    # Grade everything with today's thresholds: 1-2 s mixes fail format.duration (10 s minimum).
    base, _ = create_job(
        factory,
        tmp_settings,
        JobRequest(what=("checks",), where=("user=singer",)),
        options=RunOptions(workers=0),
    )
    status = run_job(factory, tmp_settings, base)
    assert status["done"] == 4
    with factory() as s:
        before = {r.id: r.report for r in s.scalars(select(Recording))}
    assert all(
        r["verdict"] == "fail"
        and any(c["code"] == "format.duration" and c["verdict"] == "fail" for c in r["checks"])
        for r in before.values()
    )

    # New thresholds: mixes of 1 s and more are long enough. What would flip?
    mix = tmp_settings.checks.mix.model_copy(update={"min_duration_s": 1.0})
    new = tmp_settings.model_copy(
        update={"checks": tmp_settings.checks.model_copy(update={"mix": mix, "version": "checks-next"})}
    )
    dry, _ = create_job(
        factory,
        new,
        JobRequest(what=("checks",), where=("user=singer",), dry_run=True),
        options=RunOptions(workers=0),
    )
    flips = run_job(factory, new, dry)["summary"]["flips"]["checks"]
    assert flips["compared"] == 4
    assert flips["stopped_failing"].get("format.duration") == 4
    changed = sum(n for t, n in flips["transitions"].items() if not t.startswith("fail->fail"))
    assert flips["changed"] == changed and changed >= 1
    assert all(t.startswith("fail->") for t in flips["transitions"])
    with factory() as s:  # a dry run writes nothing back
        assert {r.id: r.report for r in s.scalars(select(Recording))} == before
        assert set(s.scalars(select(Recording.report_version))) == {tmp_settings.checks.version}
    assert set(rec_ids) == set(before)


def test_job_keeps_the_settings_it_was_created_with(tmp_settings, db, tmp_path, rng) -> None:
    """A job resumed under other environment settings still grades like its first items."""
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from jobs.tables import JobItem

    factory, blobs = db
    _recordings(factory, blobs, _files(tmp_path, 2, rng))
    job_id, _ = create_job(factory, tmp_settings, JobRequest(what=("checks",)), options=RunOptions(workers=0))
    mix = tmp_settings.checks.mix.model_copy(update={"min_duration_s": 0.5})
    other = tmp_settings.model_copy(
        update={"checks": tmp_settings.checks.model_copy(update={"mix": mix, "version": "other"})}
    )
    run_job(factory, other, job_id)
    with factory() as s:
        versions = {
            i.result["checks"]["settings_version"]
            for i in s.scalars(select(JobItem).where(JobItem.job_id == job_id))
        }
    assert versions == {tmp_settings.checks.version}


def test_cancel_stops_a_running_job_at_its_next_commit(tmp_settings, db, tmp_path, rng) -> None:
    from jobs.errors import JobFinished
    from jobs.progress import NullProgress
    from jobs.runner import JobRequest, RunOptions, create_job, request_cancel, run_job

    factory, _ = db
    files = _files(tmp_path, 5, rng)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(f'{{"path": "{p.name}"}}\n' for p in files))
    settings = tmp_settings.model_copy(
        update={"jobs": tmp_settings.jobs.model_copy(update={"commit_every": 1})}
    )
    job_id, _ = create_job(
        factory, settings, JobRequest(what=("checks",), manifest=str(manifest)), options=RunOptions(workers=0)
    )

    class CancelAfterFirst(NullProgress):
        def advance(self, *, failed: bool) -> None:
            request_cancel(factory, job_id)  # as `songgate jobs cancel` or the API would

    status = run_job(factory, settings, job_id, progress=CancelAfterFirst())
    assert status["status"] == "cancelled"
    assert status["done"] == 1 and status["pending"] == 4  # the item in hand was committed, no more
    with pytest.raises(JobFinished):
        run_job(factory, settings, job_id)


def test_a_live_runner_is_never_joined_and_a_dead_one_is_taken_over(tmp_settings, db, tmp_path, rng) -> None:
    import datetime as dt
    import subprocess

    from jobs.errors import JobAlreadyRunning
    from jobs.runner import HOST, JobRequest, RunOptions, create_job, run_job
    from jobs.tables import Job

    factory, _ = db
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "\n".join(p.name for p in _files(tmp_path, 2, rng)) + "\n")
    job_id, _ = create_job(
        factory,
        tmp_settings,
        JobRequest(what=("checks",), manifest=str(manifest)),
        options=RunOptions(workers=0),
    )
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )

    def mark(pid: int, host: str, beat_age_s: float) -> None:
        with factory() as s, s.begin():
            job = s.get(Job, job_id)
            job.status, job.runner_pid, job.runner_host = "running", pid, host
            job.heartbeat_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=beat_age_s)

    mark(os.getpid(), HOST, 0)  # this very process: alive
    with pytest.raises(JobAlreadyRunning):
        run_job(factory, tmp_settings, job_id)
    mark(12345, "other-host", 5)  # another host with a fresh heartbeat
    with pytest.raises(JobAlreadyRunning):
        run_job(factory, tmp_settings, job_id)
    mark(int(dead.stdout), HOST, 5)  # a runner process that has exited: taken over
    assert run_job(factory, tmp_settings, job_id)["status"] == "done"
    out = tmp_path / "late.parquet"  # a finished job can still write its output file
    assert (
        run_job(factory, tmp_settings, job_id, options=RunOptions(output=str(out)))["summary"]["output"][
            "rows"
        ]
        == 2
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_formats(tmp_path, fmt) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.selection import read_manifest

    rows = [{"path": "a.wav", "kind": "vocal"}, {"path": "/abs/b.flac"}, {"path": "a.wav"}]
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        path.write_text("path,kind\na.wav,vocal\n/abs/b.flac,\na.wav,\n")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist([{"path": r["path"], "kind": r.get("kind")} for r in rows]), path)
    items = list(read_manifest(path))
    assert [(i.path, i.kind) for i in items] == [(str(tmp_path / "a.wav"), "vocal"), ("/abs/b.flac", "mix")]


@pytest.mark.parametrize(
    ("content", "message"),
    [("file\nx.wav\n", "path"), ("path,kind\nx.wav,karaoke\n", "kind")],
)
def test_bad_manifest_is_refused(tmp_path, content, message) -> None:
    from jobs.errors import ManifestError
    from jobs.selection import read_manifest

    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        list(read_manifest(path))


@pytest.mark.parametrize(
    ("where", "ok"),
    [
        (["user=a,b", "kind!=vocal", "since=2026-01-01", "created<2026-02-01T00:00:00+08:00"], True),
        (["settings_version!=checks-1"], True),
        (["model_id=x"], False),  # a voiceprint key, not a recording's
        (["user"], False),
        (["created=2026-01-01"], False),
        (["since=yesterday"], False),
        (["kind=karaoke"], False),
    ],
)
def test_where_validation(where, ok) -> None:
    from contextlib import nullcontext

    from jobs.errors import InvalidSelection
    from jobs.selection import check_conditions, parse_where

    with nullcontext() if ok else pytest.raises(InvalidSelection):
        check_conditions(parse_where(where), what=["checks"])


def test_where_selects_by_user_date_and_version(tmp_settings, db, tmp_path, rng) -> None:
    import datetime as dt

    from db.tables import Recording
    from jobs.selection import parse_where, select_recordings

    factory, blobs = db
    files = _files(tmp_path, 4, rng)
    a = _recordings(factory, blobs, files[:2], user_id="a", report_version="v1")
    b = _recordings(factory, blobs, files[2:], user_id="b", report_version="v2")
    with factory() as s, s.begin():
        s.get(Recording, a[0]).created_at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    with factory() as s:

        def keys(*w: str) -> list[str]:
            return [i.key for i in select_recordings(s, parse_where(w), chunk=1)]  # chunk=1: paging

        assert keys("user=a") == [a[0], a[1]]
        assert keys("settings_version!=v1") == b
        assert keys("since=2026-01-01") == [a[1], *b]
        assert keys("until=2026-01-01") == [a[0]]
        assert keys("user=a,b", "kind=mix") == [a[0], a[1], *b]
