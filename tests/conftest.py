"""Shared fixtures: seeded rng, per-test settings and database (SQLite, and PostgreSQL when
SONGGATE_TEST_DATABASE_URL is set, as .ci/run does), the app, a client and API keys.

Tests marked ``both_dbs`` run once per backend; others run on SQLite. Every test gets a fresh
database cloned from a template migrated once per session (fast: a file copy on SQLite,
CREATE DATABASE ... TEMPLATE on PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "tests"))  # `from signals import tone` (after the real packages)
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_URL_ENV = "SONGGATE_TEST_DATABASE_URL"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_dbs: run against SQLite and PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_dbs") is not None
        metafunc.parametrize("db_backend", ["sqlite", "postgresql"] if both else ["sqlite"], scope="function")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


# --- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from db.migrate import upgrade

    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[tuple[object, str]]:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_URL_ENV} (set by .ci/run)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from db.engine import normalize_url
    from db.migrate import upgrade

    base = make_url(normalize_url(url))
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    template = f"sg_tpl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{template}"'))
    upgrade(base.set(database=template).render_as_string(hide_password=False))
    from sqlalchemy import create_engine as ce

    # Close every connection to the template so it can be cloned.
    ce(base.set(database=template)).dispose()
    yield admin, template
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if db_backend == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "songgate.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    admin, template = request.getfixturevalue("_pg_admin")
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from db.engine import normalize_url

    name = f"sg_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:  # type: ignore[attr-defined]
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield (
        make_url(normalize_url(os.environ[PG_URL_ENV]))
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    with admin.connect() as c:  # type: ignore[attr-defined]
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- settings, app, client -------------------------------------------------------------------


@pytest.fixture
def tmp_settings(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    from core.settings import Settings

    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=database_url,
        model_dir=ROOT / "var" / "models",
        secret_key="test-secret-key-0123456789abcdef-0123456789",
        worker_mode="thread",
        workers=2,
        load_models=False,
    )


@pytest.fixture
def app(tmp_settings):  # type: ignore[no-untyped-def]
    from api.app import create_app

    return create_app(tmp_settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def session(client):  # type: ignore[no-untyped-def]
    with client.app.state.session_factory() as s:
        yield s


@pytest.fixture
def auth_headers(client) -> Callable[..., dict[str, str]]:  # type: ignore[no-untyped-def]
    """``auth_headers("upload", "claim")`` -> headers with a fresh key holding those scopes."""
    from db import keys

    def make(*scopes: str) -> dict[str, str]:
        with client.app.state.session_factory() as s, s.begin():
            _, plaintext = keys.create_key(s, name="test", scopes=list(scopes or ("admin",)))
        return {"Authorization": f"Bearer {plaintext}"}

    return make


@pytest.fixture
def live_server(app):  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a free loopback port in a background thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def make_key():  # type: ignore[no-untyped-def]
    """``make_key(app, "upload")`` -> plaintext key, for tests that talk to a live server."""
    from db import keys

    def make(app, *scopes: str) -> str:  # type: ignore[no-untyped-def]
        with app.state.session_factory() as s, s.begin():
            _, plaintext = keys.create_key(s, name="test", scopes=list(scopes or ("admin",)))
        return plaintext

    return make


def pytest_runtest_setup(item: pytest.Item) -> None:
    """speechbrain registers lazy modules (e.g. its k2 integration) that raise ImportError on any
    attribute access; Hypothesis scans sys.modules with getattr(module, "__file__", None), which only
    tolerates AttributeError. Drop the lazy modules that cannot load before each test."""
    if "speechbrain.utils.importutils" not in sys.modules:
        return
    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # deprecation redirects announce themselves
                    getattr(module, "__file__", None)
            except ImportError:
                del sys.modules[name]
