"""Run a job in a background thread of the current process (what ``POST /v1/jobs`` does).

The thread runs the same :func:`jobs.runner.run_job` as the CLI; with ``workers > 0`` the items run
in its process pool, so the API's event loop never does the work. If the API process dies, the job
stays ``running`` with a dead runner pid and ``songgate rescore --job-id ID`` resumes it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from jobs.progress import LogProgress
from jobs.runner import RunOptions, materialize, run_job

log = logging.getLogger("songgate.jobs")


def _run(
    factory: sessionmaker[Session],
    settings: Settings,
    job_id: str,
    options: RunOptions,
    stop: threading.Event,
) -> None:
    try:
        materialize(factory, job_id)
        status = run_job(factory, settings, job_id, options=options, progress=LogProgress(), stop_event=stop)
        log.info("job %s %s: %d done, %d failed", job_id, status["status"], status["done"], status["failed"])
    except Exception:
        log.exception("job %s failed", job_id)


def start_in_background(
    factory: sessionmaker[Session],
    settings: Settings,
    job_id: str,
    *,
    options: RunOptions,
    threads: dict[str, Any],
) -> bool:
    """Start ``job_id`` in a daemon thread unless this process already runs it; True if started.

    ``threads`` is the caller's registry (``app.state.job_threads``): job id -> (thread, stop event).
    """
    current = threads.get(job_id)
    if current is not None and current[0].is_alive():
        return False
    stop = threading.Event()
    thread = threading.Thread(
        target=_run,
        args=(factory, settings, job_id, options, stop),
        name=f"songgate-job-{job_id}",
        daemon=True,
    )
    threads[job_id] = (thread, stop)
    thread.start()
    return True
