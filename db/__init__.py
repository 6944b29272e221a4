"""Storage plumbing: SQLAlchemy engine and sessions, Alembic migrations, the blob store, and the
foundation tables (recordings, API keys, idempotency records).

Each capability package keeps its own tables in ``<package>/tables.py`` on the shared
:data:`db.base.Base`; Alembic keeps one migration branch per package (``alembic upgrade heads``).
"""
