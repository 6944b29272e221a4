"""FastAPI app factory. The lifespan builds everything heavy once (engine, blob store, worker pool,
models) and puts it on ``app.state``; routes reach it through api.deps."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import metrics as metrics_mod
from api import problems
from core.clock import SystemClock
from core.pool import WorkerPool
from core.settings import Settings, get_settings
from db import keys
from db.blobstore import LocalBlobStore
from db.checkpoint import WalCheckpointer
from db.engine import make_engine, make_read_session_factory, make_session_factory, sqlite_path
from db.migrate import upgrade
from pipeline.recording import warm_up as warm_up_worker

log = logging.getLogger("songgate")

STATIC_DIR = Path(__file__).with_name("static")
GIL_SWITCH_INTERVAL_S = 0.0005  # see lifespan()
#: Router modules under api/routers, mounted under /v1 (ops is mounted at the root).
V1_ROUTERS = ["recordings", "visualizer", "voiceprints", "packets", "listen_sessions", "jobs"]
DEV_KEY_FILE = "dev-api-key"


def _load_embedder(settings: Settings) -> object | None:
    try:
        from voiceprint.embedders import load_embedder
    except ImportError:
        return None
    try:
        return load_embedder(
            settings.voiceprint.backend, model_dir=settings.resolved_model_dir, settings=settings.voiceprint
        )
    except Exception as exc:  # missing or tampered model: serve everything else, voiceprint answers 503
        log.warning("voiceprint model unavailable: %s", exc)
        return None


def _dev_key(app: FastAPI, settings: Settings) -> None:
    """Development mode: ensure an admin key exists for this data dir and print it."""
    path = settings.data_dir / DEV_KEY_FILE
    with app.state.session_factory() as s, s.begin():
        if path.exists():
            key = path.read_text().strip()
            keys.ensure_key(s, name="dev", scopes=["admin"], key=key)
        else:
            _, key = keys.create_key(s, name="dev", scopes=["admin"])
            path.write_text(key + "\n")
            path.chmod(0o600)
    print(f"songgate dev mode: admin API key (also in {path}):\n{key}", flush=True)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # The event loop thread, the heartbeat writer and the thread pool share one GIL. A thread
    # coming back from a database call waits up to the switch interval (5 ms by default) for it,
    # while holding the database write lock, so every writer in every worker queues behind that
    # wait. 0.5 ms cut those convoys: saturated heartbeats 2504/s -> 3230/s, and claim p99 at
    # 40/s amid 1000 heartbeats/s from 128-346 ms to 53-123 ms (docs/benchmarks.md, "Claims").
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if settings.env != "production":
        upgrade(url)  # embedded defaults just work; production migrates explicitly (songgate db upgrade)
    wal_path = sqlite_path(url)
    app.state.engine = make_engine(url, background_checkpoints=wal_path is not None)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.state.read_session_factory = make_read_session_factory(app.state.engine)
    app.state.blobs = LocalBlobStore(settings.resolved_blob_dir)
    app.state.clock = SystemClock()
    app.state.auth_cache = {}
    app.state.pool = WorkerPool(workers=settings.workers, mode=settings.worker_mode, warm_up=warm_up_worker)
    app.state.pool.warm_up()
    app.state.embedder = _load_embedder(settings) if settings.load_models else None
    if settings.bootstrap_admin_key is not None:
        with app.state.session_factory() as s, s.begin():
            keys.ensure_key(
                s, name="bootstrap", scopes=["admin"], key=settings.bootstrap_admin_key.get_secret_value()
            )
    if settings.env == "development":
        _dev_key(app, settings)
    for hook in app.state.startup_hooks:
        hook(app)
    checkpointer = WalCheckpointer(wal_path).start() if wal_path is not None else None
    try:
        yield
    finally:
        for hook in app.state.shutdown_hooks:
            try:
                hook(app)
            except Exception:  # one failing hook must not keep the others from running
                log.exception("shutdown hook %s failed", getattr(hook, "__name__", hook))
        app.state.pool.shutdown()
        if checkpointer is not None:
            checkpointer.stop()
        app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="songgate",
        version="0.1.0",
        description="Audio verification for karaoke red packets: recording checks, visualizer data, "
        "voiceprints and server-verified listening proof.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics_mod.Metrics()
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    problems.install(app)
    if settings.claims.heartbeat_fast_path:
        from api.heartbeat_fast_path import HeartbeatFastPath

        app.add_middleware(HeartbeatFastPath)  # inside the metrics middleware: counted the same
    metrics_mod.install(app, app.state.metrics)

    from api.routers import ops

    app.include_router(ops.router)
    for name in V1_ROUTERS:
        module = importlib.import_module(f"api.routers.{name}")
        app.include_router(module.router, prefix="/v1")
        for attr, hooks in (
            ("on_startup", app.state.startup_hooks),
            ("on_shutdown", app.state.shutdown_hooks),
        ):
            hook = getattr(module, attr, None)
            if hook is not None:
                hooks.append(hook)

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
        index = STATIC_DIR / "index.html"

        @app.get("/", include_in_schema=False)
        def page() -> FileResponse:
            return FileResponse(index if index.exists() else STATIC_DIR / "missing.html")

    return app
