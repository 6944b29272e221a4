"""jobs exception tree (see core.errors for the contract: stable code, HTTP status, title).

These are failures of a job as a whole (bad selection, unknown job, a job already running).
A single item's failure is never raised out of the batch: it is recorded on its row with the
``code`` of the error that stopped it (e.g. ``corrupt_audio``).
"""

from __future__ import annotations

from core.errors import SonggateError


class JobsError(SonggateError):
    code = "jobs_error"
    status = 422
    title = "Jobs request failed"


class InvalidSelection(JobsError):
    """An unknown ``--where`` key, a malformed value, or a selection that does not fit ``--what``."""

    code = "invalid_selection"
    status = 422
    title = "Invalid item selection"


class ManifestError(JobsError):
    """A manifest that cannot be read: unknown extension, no ``path`` column, malformed rows."""

    code = "invalid_manifest"
    status = 422
    title = "Invalid manifest"


class JobNotFound(JobsError):
    code = "job_not_found"
    status = 404
    title = "No such job"


class JobAlreadyRunning(JobsError):
    """Another live runner holds the job (same host and its process is alive, or a fresh heartbeat)."""

    code = "job_running"
    status = 409
    title = "The job is already running"


class JobFinished(JobsError):
    """A ``done`` or ``cancelled`` job cannot be resumed."""

    code = "job_finished"
    status = 409
    title = "The job has already finished"


class JobMismatch(JobsError):
    """``--job-id`` names an existing job that was created with different parameters."""

    code = "job_mismatch"
    status = 409
    title = "The job exists with other parameters"


class EngineUnavailable(JobsError):
    code = "engine_unavailable"
    status = 503
    title = "The execution engine could not start"
