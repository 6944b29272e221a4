"""Concurrent enrollments of one user (one version, no lost utterance) and concurrent verifications
racing for one challenge, through the service on both databases."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from vp_fakes import SR, FakeEmbedder, speak
from vp_support import ALICE

from voiceprint.enrollment import energy_speech_only, measure
from voiceprint.service import PreparedUtterance
from voiceprint.service_errors import ChallengeUsed

pytestmark = pytest.mark.both_dbs


def _prepared(rng: np.random.Generator) -> PreparedUtterance:
    y = speak(ALICE, rng)
    speech = energy_speech_only(y, sr=SR)
    return PreparedUtterance(speech, y.size / SR, measure(y, sr=SR, speech_s=speech.size / SR))


def _run(n: int, fn) -> list[object]:  # type: ignore[no-untyped-def]
    results: list[object] = []
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results.append(fn(i))
        except Exception as exc:  # collected and asserted on
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_parallel_enrollment_uploads_form_one_voiceprint(vp_client, rng) -> None:  # type: ignore[no-untyped-def]
    service = vp_client.app.state.voiceprints
    emb = FakeEmbedder()
    items = [_prepared(rng) for _ in range(6)]
    vectors = [emb.embed(p.speech, sr=SR) for p in items]
    results = _run(
        6,
        lambda i: service.add_enrollment(
            "alice",
            model_id=emb.model_id,
            embedding=vectors[i],
            sha256=f"{i:064x}",
            size_bytes=1,
            prepared=items[i],
        ),
    )
    errors = [r for r in results if isinstance(r, Exception)]
    # A rare double race may answer 409 Conflict (retry); nothing else may fail.
    assert all(getattr(e, "status", None) == 409 for e in errors), errors
    ok = [r for r in results if not isinstance(r, Exception)]
    rows = service.voiceprints_of("alice")
    total = sum(vp.n_utterances for vp, _, _ in rows)
    assert total == len(ok) and sum(len(u) for _, u, _ in rows) == len(ok)
    # Versions are 1, 2, ...: the first three accepted utterances activated version 1.
    assert sorted(vp.version for vp, _, _ in rows) == list(range(1, len(rows) + 1))
    assert sum(1 for vp, _, _ in rows if vp.active) == 1
    assert sum(1 for r in ok if r.activated) == len(ok) // 3


def test_one_challenge_many_verifiers(vp_client, rng) -> None:  # type: ignore[no-untyped-def]
    service = vp_client.app.state.voiceprints
    challenge_id = service.issue_challenge("alice").id
    results = _run(6, lambda i: service.consume_challenge("alice", challenge_id, audio_sha256=f"{i:064x}"))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert sum(1 for r in results if isinstance(r, ChallengeUsed)) == 5
