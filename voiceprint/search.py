"""Cross-account voice search: a vector index over active voiceprints, one per model id.

:class:`VoiceIndex` is an in-memory inner-product index (vectors are unit-norm, so inner product is
cosine). Backends (faiss):

* ``flat``: exact ``IndexFlatIP``, used below ``exact_below`` voiceprints;
* ``pq`` (default above it): 4-bit product-quantization fast-scan (``IndexPQFastScan``, SIMD,
  about d/4 bytes a vector) picks ``k * refine_factor`` candidates, which are re-ranked with the
  exact float32 vectors. Speaker embeddings have a flat neighbour structure (the 10 nearest voices
  are barely nearer than the next thousand), which graph indexes handle badly: measured at
  100k x 192, HNSW (M=32, efSearch=512) reached recall@10 0.96, while this reaches 1.00 at about
  0.3 ms a query (docs/benchmarks.md, "Voice search"), and is built in seconds, not minutes;
* ``hnsw``: ``IndexHNSWFlat``, for collections far beyond 100k where a linear scan is too slow;
* ``numpy``: exact matrix product, only when faiss is not installed.

Entries are keyed by user id (one active voiceprint per user and model); replacing or removing one
leaves a tombstone that searches skip, and the index compacts itself once tombstones exceed a
quarter of it.

Keeping several API processes consistent: every change to a model's active voiceprints bumps a
generation counter (row ``voiceprint_index_state``) and writes an :class:`IndexEvent` in the same
transaction (:func:`record_change`). The counter row is locked by the UPDATE until commit, so
generations commit in order; each process replays the events it has not seen before searching
(:meth:`IndexRegistry.get`), or rebuilds from the voiceprints table when it is too far behind.
An index can be saved to and loaded from disk so a restart does not rebuild 100k vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.base import utcnow
from voiceprint.scoring import as_unit_vectors
from voiceprint.tables import Embedding, IndexEvent, IndexState, Voiceprint, vector_from_bytes

try:  # faiss is the real index; without it search stays exact (and slower at scale)
    import faiss
except ImportError:  # pragma: no cover - exercised only where faiss-cpu is absent
    faiss = None  # type: ignore[assignment]

log = logging.getLogger("songgate.voiceprint.search")

#: Compact (rebuild without tombstones) once dead entries exceed this fraction of all entries.
COMPACT_FRACTION = 0.25
#: Prune the change feed every this many generations.
PRUNE_EVERY = 1000
#: PQ codebooks need this many vectors to train on (16 centroids per sub-space); fewer: exact search.
PQ_MIN_TRAIN = 256
#: Re-train PQ codebooks once the index has grown this many times since they were trained.
RETRAIN_GROWTH = 4

Kind = Literal["flat", "pq", "hnsw", "numpy"]


@dataclasses.dataclass(frozen=True)
class IndexParams:
    """How to index. ``kind='auto'`` is exact (``flat``) below ``exact_below`` live entries and
    ``pq`` (4-bit PQ fast-scan + exact re-rank of ``k * refine_factor`` candidates) above."""

    kind: Literal["auto", "flat", "pq", "hnsw"] = "auto"
    exact_below: int = 5000
    refine_factor: int = 40
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    @classmethod
    def from_settings(cls, vp: Any) -> IndexParams:
        return cls(
            kind=vp.search_index,
            exact_below=vp.search_exact_below,
            refine_factor=vp.search_refine_factor,
            hnsw_m=vp.hnsw_m,
            ef_construction=vp.hnsw_ef_construction,
            ef_search=vp.hnsw_ef_search,
        )


@dataclasses.dataclass(frozen=True)
class Neighbor:
    user_id: str
    voiceprint_id: str
    score: float


class _Rows:
    """A growable float32 row buffer (capacity doubling: adding one row is amortized O(d))."""

    def __init__(self, d: int) -> None:
        self._buf = np.zeros((16, d), dtype=np.float32)
        self.n = 0

    def append(self, x: np.ndarray) -> None:
        need = self.n + x.shape[0]
        if need > self._buf.shape[0]:
            grown = np.zeros((max(need, 2 * self._buf.shape[0]), self._buf.shape[1]), dtype=np.float32)
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        self._buf[self.n : need] = x
        self.n = need

    @property
    def rows(self) -> np.ndarray:
        return self._buf[: self.n]


def _pad(rows: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    labels = np.full((len(rows), k), -1, dtype=np.int64)
    for r, (s, i) in enumerate(rows):
        scores[r, : s.size], labels[r, : i.size] = s, i
    return scores, labels


def _exact_top(x: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-rank of candidate rows ``cand`` of ``x`` for one query ``q``: top ``k``."""
    s = x[cand] @ q
    order = np.argsort(-s, kind="stable")[:k]
    return s[order], cand[order]


class _Backend:
    """What VoiceIndex needs from a backend: positions are assigned in add order (0, 1, ...)."""

    kind: Kind

    def __init__(self, d: int, params: IndexParams) -> None:
        self.d, self.params = d, params
        self.vectors = _Rows(d)  # exact float32 copy: re-ranking, reconstruct, rebuilds

    @property
    def ntotal(self) -> int:
        return self.vectors.n

    def add(self, x: np.ndarray) -> None:
        self.vectors.append(x)

    def reconstruct(self, i: int) -> np.ndarray:
        return self.vectors.rows[i].copy()

    def search(
        self, q: np.ndarray, k: int, alive: np.ndarray, bits: np.ndarray, dead: int
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        np.save(directory / "vectors.npy", self.vectors.rows)

    def load(self, directory: Path) -> None:
        """Read what :meth:`save` wrote (subclasses then restore or rebuild their index)."""
        self.vectors.append(np.load(directory / "vectors.npy").astype(np.float32))


class _NumpyFlat(_Backend):
    """Exact search with numpy (only where faiss is missing)."""

    kind: Kind = "numpy"

    def search(self, q, k, alive, bits, dead):  # type: ignore[no-untyped-def]
        s = q @ self.vectors.rows.T
        s[:, ~alive[: self.ntotal]] = -np.inf
        idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(s, idx, axis=1), idx


def _selector(bits: np.ndarray, n: int, dead: int) -> Any:
    return faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)) if dead else None


class _FaissFlat(_Backend):
    """Exact ``IndexFlatIP``; tombstones skipped through an ID bitmap."""

    kind: Kind = "flat"

    def __init__(self, d: int, params: IndexParams) -> None:
        super().__init__(d, params)
        self.index = faiss.IndexFlatIP(d)

    def add(self, x: np.ndarray) -> None:
        super().add(x)
        self.index.add(x)

    def search(self, q, k, alive, bits, dead):  # type: ignore[no-untyped-def]
        sel = _selector(bits, self.ntotal, dead)
        return self.index.search(q, k, params=faiss.SearchParameters(sel=sel) if sel else None)

    def load(self, directory: Path) -> None:
        super().load(directory)
        self.index.add(self.vectors.rows)


class _FaissHNSW(_Backend):
    """``IndexHNSWFlat`` graph search (for collections far beyond 100k)."""

    kind: Kind = "hnsw"

    def __init__(self, d: int, params: IndexParams) -> None:
        super().__init__(d, params)
        self.index: Any = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = params.ef_construction

    def add(self, x: np.ndarray) -> None:
        super().add(x)
        self.index.add(x)

    def search(self, q, k, alive, bits, dead):  # type: ignore[no-untyped-def]
        params = faiss.SearchParametersHNSW(
            efSearch=self.params.ef_search, sel=_selector(bits, self.ntotal, dead)
        )
        return self.index.search(q, k, params=params)

    def save(self, directory: Path) -> None:
        super().save(directory)
        faiss.write_index(self.index, str(directory / "index.faiss"))  # the graph is costly to rebuild

    def load(self, directory: Path) -> None:
        super().load(directory)
        self.index = faiss.read_index(str(directory / "index.faiss"))
        if self.index.ntotal != self.ntotal:
            raise ValueError("HNSW graph and vectors disagree")


def _pq_m(d: int) -> int:
    """Sub-quantizers for 4-bit PQ: two dimensions each (one when d is odd)."""
    return d // 2 if d % 2 == 0 else d


class _PQRefine(_Backend):
    """Randomly rotated 4-bit PQ fast-scan (SIMD, d/4 bytes a vector) for candidates, then an exact
    float32 re-rank.

    The codebooks are trained on the vectors present when the backend is built (the index switches
    to this backend at ``exact_below`` entries; it re-trains when it has grown RETRAIN_GROWTH-fold,
    and at compaction). Until PQ_MIN_TRAIN vectors exist, search is exact. Fast-scan cannot skip
    tombstones itself, so candidates are over-fetched by the dead fraction and filtered here.
    """

    kind: Kind = "pq"

    def __init__(self, d: int, params: IndexParams) -> None:
        super().__init__(d, params)
        # A random rotation first spreads variance evenly over the PQ sub-spaces (measured: axis-
        # aligned anisotropic data lost 1 % recall without it).
        self.index: Any = faiss.IndexPreTransform(
            faiss.RandomRotationMatrix(d, d),
            faiss.IndexPQFastScan(d, _pq_m(d), 4, faiss.METRIC_INNER_PRODUCT),
        )
        self.trained_on = 0

    def add(self, x: np.ndarray) -> None:
        super().add(x)
        if self.index.is_trained:
            self.index.add(x)
        elif self.ntotal >= PQ_MIN_TRAIN:
            rows = self.vectors.rows
            self.index.train(rows)
            self.index.add(rows)
            self.trained_on = self.ntotal

    def search(self, q, k, alive, bits, dead):  # type: ignore[no-untyped-def]
        n = self.ntotal
        x = self.vectors.rows
        if not self.index.is_trained:  # too few vectors to train on: exact
            s = q @ x.T
            s[:, ~alive[:n]] = -np.inf
            idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(s, idx, axis=1), idx
        live_fraction = max(1.0 - dead / max(n, 1), 0.05)
        n_cand = min(n, int(np.ceil(k * self.params.refine_factor / live_fraction)))
        _, cand = self.index.search(q, n_cand)
        rows = []
        for row_q, row_c in zip(q, cand, strict=False):
            c = row_c[row_c >= 0]
            if dead:
                c = c[alive[c]]
            rows.append(_exact_top(x, row_q, c, k))
        return _pad(rows, k)

    def wants_retrain(self) -> bool:
        return self.trained_on > 0 and self.ntotal >= RETRAIN_GROWTH * self.trained_on

    def save(self, directory: Path) -> None:
        super().save(directory)
        if self.index.is_trained:
            faiss.write_index(self.index, str(directory / "index.faiss"))

    def load(self, directory: Path) -> None:
        super().load(directory)
        path = directory / "index.faiss"
        if path.exists():
            self.index = faiss.read_index(str(path))
            self.trained_on = self.ntotal
            if self.index.ntotal != self.ntotal:
                raise ValueError("PQ codes and vectors disagree")
        elif self.ntotal >= PQ_MIN_TRAIN:
            raise ValueError("PQ index file missing")


_BACKENDS: dict[str, type[_Backend]] = {
    "numpy": _NumpyFlat,
    "flat": _FaissFlat,
    "hnsw": _FaissHNSW,
    "pq": _PQRefine,
}


class VoiceIndex:
    """An inner-product index over one model's voiceprints, keyed by user id. Thread-safe.

    Parameters
    ----------
    model_id : str, every vector must come from this model
    dimension : int, vector size
    params : IndexParams
    """

    def __init__(self, model_id: str, dimension: int, params: IndexParams | None = None) -> None:
        self.model_id = model_id
        self.dimension = int(dimension)
        self.params = params or IndexParams()
        self.generation = 0
        self.epoch = ""
        self._lock = threading.RLock()
        self._users: list[str] = []
        self._vps: list[str] = []
        self._pos: dict[str, int] = {}
        self._alive = np.zeros(0, dtype=bool)
        self._bits = np.zeros(0, dtype=np.uint8)
        self._dead = 0
        self._index: _Backend = self._new_backend(self._choose_kind(0))

    # --- backend ----------------------------------------------------------------------------
    def _choose_kind(self, n: int) -> Kind:
        if faiss is None:
            return "numpy"
        if self.params.kind == "auto":
            return "pq" if n >= self.params.exact_below else "flat"
        return self.params.kind

    def _new_backend(self, kind: Kind) -> _Backend:
        return _BACKENDS[kind](self.dimension, self.params)

    @property
    def kind(self) -> Kind:
        return self._index.kind

    def tune(self, **changes: Any) -> None:
        """Change search-time parameters (``ef_search``, ``refine_factor``) without rebuilding."""
        allowed = {"ef_search", "refine_factor"}
        if not set(changes) <= allowed:
            raise ValueError(f"only {sorted(allowed)} can change without a rebuild")
        with self._lock:
            self.params = dataclasses.replace(self.params, **changes)
            self._index.params = self.params

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def users(self) -> list[str]:
        with self._lock:
            return list(self._pos)

    # --- writes -----------------------------------------------------------------------------
    def upsert(self, user_ids: Sequence[str], voiceprint_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace entries.

        Parameters
        ----------
        user_ids, voiceprint_ids : sequences of n str (a user id at most once)
        vectors : np.ndarray [shape=(n, dimension)], normalized here
        """
        if len(user_ids) != len(voiceprint_ids) or len(set(user_ids)) != len(user_ids):
            raise ValueError("user_ids must be unique and match voiceprint_ids")
        if len(user_ids) == 0:
            return
        x = as_unit_vectors(np.atleast_2d(vectors), dimension=self.dimension)
        if x.shape[0] != len(user_ids):
            raise ValueError("one vector per user id")
        with self._lock:
            for u in user_ids:
                self._kill(u)
            start = len(self._users)
            self._users.extend(user_ids)
            self._vps.extend(voiceprint_ids)
            for i, u in enumerate(user_ids):
                self._pos[u] = start + i
            self._grow_alive(len(self._users))
            wanted = self._choose_kind(len(self._pos))
            if wanted != self.kind and self.kind == "flat":
                self._index.add(x)  # keep positions aligned, then rebuild as the larger index
                self._rebuild(wanted)
            else:
                self._index.add(x)
                if isinstance(self._index, _PQRefine) and self._index.wants_retrain():
                    self._rebuild("pq")
            self._maybe_compact()

    def remove(self, user_id: str) -> bool:
        """Drop ``user_id``'s entry; True when there was one."""
        with self._lock:
            found = self._kill(user_id)
            self._maybe_compact()
            return found

    def _kill(self, user_id: str) -> bool:
        pos = self._pos.pop(user_id, None)
        if pos is None:
            return False
        self._alive[pos] = False
        self._bits[pos >> 3] &= np.uint8(~(1 << (pos & 7)) & 0xFF)
        self._dead += 1
        return True

    def _grow_alive(self, n: int) -> None:
        old = self._alive.shape[0]
        if n > old:
            self._alive = np.concatenate([self._alive, np.ones(n - old, dtype=bool)])
            self._bits = np.packbits(self._alive, bitorder="little")

    def _maybe_compact(self) -> None:
        total = len(self._users)
        if self._dead and self._dead > COMPACT_FRACTION * total:
            self._rebuild(self._choose_kind(len(self._pos)))

    def _rebuild(self, kind: Kind) -> None:
        """Rebuild the backend from the live entries only (drops tombstones)."""
        live = np.flatnonzero(self._alive[: len(self._users)])
        x = self._index.vectors.rows[live] if len(self._users) else None
        users = [self._users[i] for i in live]
        vps = [self._vps[i] for i in live]
        self._index = self._new_backend(kind)
        self._users, self._vps = users, vps
        self._pos = {u: i for i, u in enumerate(users)}
        self._alive = np.ones(len(users), dtype=bool)
        self._bits = np.packbits(self._alive, bitorder="little")
        self._dead = 0
        if x is not None and len(users):
            self._index.add(np.ascontiguousarray(x, dtype=np.float32))

    # --- reads ------------------------------------------------------------------------------
    def vector(self, user_id: str) -> np.ndarray | None:
        """The stored unit vector of ``user_id`` [shape=(dimension,)], or None."""
        with self._lock:
            pos = self._pos.get(user_id)
            return None if pos is None else np.asarray(self._index.reconstruct(pos), dtype=np.float32)

    def search(self, queries: np.ndarray, *, k: int, exclude: Sequence[str] = ()) -> list[list[Neighbor]]:
        """The ``k`` nearest live entries (highest cosine first) of each query.

        Parameters
        ----------
        queries : np.ndarray [shape=(d,) or (q, d)]
        k : int >= 1
        exclude : user ids left out of the answers (e.g. the querying user)

        Returns
        -------
        list of q lists of :class:`Neighbor`, each at most ``k`` long
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        q = as_unit_vectors(np.atleast_2d(queries), dimension=self.dimension)
        excluded = set(exclude)
        with self._lock:
            if not self._pos:
                return [[] for _ in range(q.shape[0])]
            fetch = min(k + len(excluded), len(self._pos))
            scores, labels = self._index.search(q, fetch, self._alive, self._bits, self._dead)
            out: list[list[Neighbor]] = []
            for row_s, row_l in zip(scores, labels, strict=False):
                hits: list[Neighbor] = []
                for s, i in zip(row_s, row_l, strict=False):
                    if i < 0 or not self._alive[i]:
                        continue
                    user = self._users[i]
                    if user in excluded:
                        continue
                    hits.append(Neighbor(user, self._vps[i], float(min(s, 1.0))))
                    if len(hits) == k:
                        break
                out.append(hits)
            return out

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the index atomically to ``directory`` (replaced as a whole)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + f".tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            with self._lock:
                meta = {
                    "format": 2,
                    "model_id": self.model_id,
                    "dimension": self.dimension,
                    "kind": self.kind,
                    "generation": self.generation,
                    "epoch": self.epoch,
                    "users": self._users,
                    "voiceprints": self._vps,
                    "alive": np.flatnonzero(self._alive[: len(self._users)]).tolist(),
                }
                self._index.save(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta))
            old = directory.with_name(directory.name + ".old")
            if directory.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, params: IndexParams | None = None) -> VoiceIndex:
        """Read an index written by :meth:`save`."""
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format") != 2:
            raise ValueError("unknown index format")
        idx = cls(meta["model_id"], meta["dimension"], params)
        kind: Kind = meta["kind"]
        if faiss is None and kind != "numpy":
            kind = "numpy"  # the exact vectors are always saved: search stays exact without faiss
            backend = _NumpyFlat(idx.dimension, idx.params)
            _Backend.load(backend, directory)
        else:
            backend = idx._new_backend(kind)
            backend.load(directory)
        if backend.ntotal != len(meta["users"]):
            raise ValueError("index file and metadata disagree")
        idx._index = backend
        idx._users, idx._vps = list(meta["users"]), list(meta["voiceprints"])
        idx._alive = np.zeros(len(idx._users), dtype=bool)
        idx._alive[np.asarray(meta["alive"], dtype=np.int64)] = True
        idx._bits = np.packbits(idx._alive, bitorder="little")
        idx._pos = {idx._users[i]: int(i) for i in np.flatnonzero(idx._alive)}
        idx._dead = len(idx._users) - len(idx._pos)
        idx.generation, idx.epoch = int(meta["generation"]), str(meta["epoch"])
        return idx


# --- change feed ---------------------------------------------------------------------------------


def record_change(
    session: Session, model_id: str, user_id: str, voiceprint_id: str | None, *, retention: int | None = None
) -> int:
    """Record that ``user_id``'s active voiceprint for ``model_id`` is now ``voiceprint_id`` (None:
    removed). Call inside the transaction that makes the change; returns the new generation.
    Every PRUNE_EVERY generations, events older than the newest ``retention`` are deleted.

    The UPDATE locks the model's state row until commit, which serializes changes per model so
    generations become visible in order (PostgreSQL); SQLite serializes writers anyway.
    """
    values = {"model_id": model_id, "generation": 0, "epoch": uuid.uuid4().hex}
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(sqlite.insert(IndexState).values(**values).on_conflict_do_nothing())
    elif dialect == "postgresql":
        session.execute(postgresql.insert(IndexState).values(**values).on_conflict_do_nothing())
    elif session.get(IndexState, model_id) is None:
        session.add(IndexState(**values))
        session.flush()
    generation = session.execute(
        update(IndexState)
        .where(IndexState.model_id == model_id)
        .values(generation=IndexState.generation + 1)
        .returning(IndexState.generation)
    ).scalar_one()
    session.add(
        IndexEvent(
            model_id=model_id,
            generation=generation,
            user_id=user_id,
            voiceprint_id=voiceprint_id,
            created_at=utcnow(),
        )
    )
    session.flush()
    if retention is not None and generation % PRUNE_EVERY == 0:
        prune_events(session, model_id, keep=retention)
    return int(generation)


def prune_events(session: Session, model_id: str, *, keep: int) -> None:
    """Delete all but the newest ``keep`` change events of ``model_id``."""
    gen = session.execute(select(IndexState.generation).where(IndexState.model_id == model_id)).scalar()
    if gen is not None and gen > keep:
        session.execute(
            delete(IndexEvent).where(IndexEvent.model_id == model_id, IndexEvent.generation <= gen - keep)
        )


def _active_rows(session: Session, model_id: str, voiceprint_ids: Sequence[str] | None = None) -> list[Any]:
    stmt = (
        select(Voiceprint.user_id, Voiceprint.id, Embedding.vector, Embedding.dimension, Embedding.model_id)
        .join(Embedding, (Embedding.voiceprint_id == Voiceprint.id) & (Embedding.kind == "voiceprint"))
        .where(Voiceprint.model_id == model_id, Voiceprint.active.is_(True))
    )
    if voiceprint_ids is not None:
        stmt = stmt.where(Voiceprint.id.in_(list(voiceprint_ids)))
    return list(session.execute(stmt))


def _rows_to_arrays(rows: list[Any], model_id: str) -> tuple[list[str], list[str], np.ndarray | None]:
    if not rows:
        return [], [], None
    for r in rows:
        if r.model_id != model_id:  # a voiceprint's embedding from another model: never index it
            raise ValueError(f"voiceprint {r.id} has an embedding of model {r.model_id}")
    x = np.stack([vector_from_bytes(r.vector, r.dimension) for r in rows])
    return [r.user_id for r in rows], [r.id for r in rows], x


class IndexRegistry:
    """The per-model indexes of one database, kept in sync with it (see module docstring).

    Parameters
    ----------
    params : IndexParams
    index_dir : directory to save indexes to and load them from (None: memory only)
    """

    def __init__(self, params: IndexParams | None = None, index_dir: Path | None = None) -> None:
        self.params = params or IndexParams()
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self._indexes: dict[str, VoiceIndex] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        #: The app's Settings when a service owns this registry (so step-up checks use the same
        #: thresholds as the API); None otherwise.
        self.settings: Any = None

    def _path(self, model_id: str) -> Path | None:
        if self.index_dir is None:
            return None
        digest = hashlib.sha256(model_id.encode()).hexdigest()[:16]
        return self.index_dir / f"index-{digest}"

    def _lock_for(self, model_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(model_id, threading.Lock())

    def get(self, session: Session, model_id: str, *, dimension: int | None = None) -> VoiceIndex | None:
        """The index of ``model_id``, brought up to date with the database; None when nothing was
        ever enrolled with that model and ``dimension`` is not given."""
        state = session.execute(
            select(IndexState.generation, IndexState.epoch).where(IndexState.model_id == model_id)
        ).first()
        gen, epoch = (int(state.generation), state.epoch) if state else (0, "")
        idx = self._indexes.get(model_id)
        if idx is not None and idx.generation == gen and idx.epoch == epoch:
            return idx
        with self._lock_for(model_id):
            idx = self._indexes.get(model_id)
            if idx is None:
                idx = self._load(model_id)
            if idx is not None and idx.epoch == epoch and idx.generation <= gen:
                if idx.generation == gen or self._replay(session, idx, gen):
                    self._indexes[model_id] = idx
                    return idx
            if state is None and dimension is None:
                return None
            idx = self._build(session, model_id, gen, epoch, dimension)
            self._indexes[model_id] = idx
            return idx

    def _load(self, model_id: str) -> VoiceIndex | None:
        path = self._path(model_id)
        if path is None or not (path / "meta.json").exists():
            return None
        try:
            idx = VoiceIndex.load(path, self.params)
        except Exception as exc:  # a corrupt or foreign file is only a cache: rebuild
            log.warning("ignoring saved voice index %s: %s", path, exc)
            return None
        return idx if idx.model_id == model_id else None

    def _replay(self, session: Session, idx: VoiceIndex, gen: int) -> bool:
        events = list(
            session.execute(
                select(IndexEvent.generation, IndexEvent.user_id, IndexEvent.voiceprint_id)
                .where(IndexEvent.model_id == idx.model_id, IndexEvent.generation > idx.generation)
                .order_by(IndexEvent.generation)
            )
        )
        expected = list(range(idx.generation + 1, idx.generation + 1 + len(events)))
        if not events or [e.generation for e in events] != expected or events[-1].generation < gen:
            return False  # pruned past us, or a gap: rebuild
        final: dict[str, str | None] = {}
        for e in events:
            final[e.user_id] = e.voiceprint_id
        wanted = [vp for vp in final.values() if vp is not None]
        users, vps, x = _rows_to_arrays(_active_rows(session, idx.model_id, wanted), idx.model_id)
        found = set(users)
        for user in final:
            if user not in found:
                idx.remove(user)
        if x is not None:
            idx.upsert(users, vps, x)
        idx.generation = events[-1].generation
        return True

    def _build(
        self, session: Session, model_id: str, gen: int, epoch: str, dimension: int | None
    ) -> VoiceIndex:
        users, vps, x = _rows_to_arrays(_active_rows(session, model_id), model_id)
        dim = x.shape[1] if x is not None else dimension
        if dim is None:
            raise ValueError("cannot size an empty index without a dimension")
        idx = VoiceIndex(model_id, dim, self.params)
        if x is not None:
            # Choose the final backend up front: one bulk add instead of flat-then-rebuild.
            idx._index = idx._new_backend(idx._choose_kind(len(users)))
            idx.upsert(users, vps, x)
        idx.generation, idx.epoch = gen, epoch
        log.info("built voice index for %s: %d voiceprints (%s)", model_id, len(idx), idx.kind)
        path = self._path(model_id)
        if path is not None and len(idx) >= self.params.exact_below:
            try:
                idx.save(path)
            except OSError as exc:
                log.warning("could not save voice index to %s: %s", path, exc)
        return idx

    def save_all(self) -> None:
        """Save every loaded index (e.g. at shutdown) so the next start only replays the feed."""
        for model_id, idx in list(self._indexes.items()):
            path = self._path(model_id)
            if path is not None:
                idx.save(path)

    def search_user(
        self, session: Session, user_id: str, model_id: str, *, k: int, threshold: float | None = None
    ) -> list[Neighbor]:
        """Other accounts nearest to ``user_id``'s active voiceprint of ``model_id`` (none if absent),
        optionally only those with cosine >= ``threshold``."""
        idx = self.get(session, model_id)
        if idx is None:
            return []
        vec = idx.vector(user_id)
        if vec is None:
            return []
        hits = idx.search(vec, k=k, exclude=[user_id])[0]
        return [h for h in hits if threshold is None or h.score >= threshold]


_REGISTRIES: weakref.WeakKeyDictionary[Engine, IndexRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry_for(
    engine: Engine, *, params: IndexParams | None = None, index_dir: Path | None = None
) -> IndexRegistry:
    """The process-wide registry of ``engine``'s database (created on first use)."""
    with _REGISTRIES_LOCK:
        reg = _REGISTRIES.get(engine)
        if reg is None:
            reg = IndexRegistry(params, index_dir)
            _REGISTRIES[engine] = reg
        return reg
