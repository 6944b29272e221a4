"""Parallel uploads over a real server, and /healthz staying responsive during heavy processing."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from signals import encode, white_noise

pytestmark = pytest.mark.both_dbs


def test_twenty_parallel_uploads(
    app, live_server, make_key, tmp_path: Path, rng: np.random.Generator
) -> None:  # type: ignore[no-untyped-def]
    key = make_key(app, "upload")
    files = [
        encode(white_noise(rng, sr=16000, seconds=1.0), sr=16000, path=tmp_path / f"n{i}.flac")
        for i in range(20)
    ]

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_server, timeout=120) as c:

            async def one(i: int, p: Path) -> httpx.Response:
                return await c.post(
                    "/v1/recordings",
                    headers={"Authorization": f"Bearer {key}"},
                    data={"user_id": f"user{i}", "song_id": "s", "kind": "vocal"},
                    files={"file": (p.name, p.read_bytes())},
                )

            return await asyncio.gather(*(one(i, p) for i, p in enumerate(files)))

    responses = asyncio.run(go())
    assert [r.status_code for r in responses] == [201] * 20, [
        r.text for r in responses if r.status_code != 201
    ]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 20
    for p, r in zip(files, responses, strict=False):
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        assert r.json()["sha256"] == sha
        stored = app.state.blobs.path(sha).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == sha


def test_healthz_answers_during_a_large_upload(
    app, tmp_settings, live_server, make_key, tmp_path: Path, rng
) -> None:  # type: ignore[no-untyped-def]
    key = make_key(app, "upload")
    big = encode(white_noise(rng, sr=44100, seconds=240, channels=2), sr=44100, path=tmp_path / "big.flac")

    async def go() -> tuple[httpx.Response, list[float]]:
        async with httpx.AsyncClient(base_url=live_server, timeout=300) as c:
            upload = asyncio.create_task(
                c.post(
                    "/v1/recordings",
                    headers={"Authorization": f"Bearer {key}"},
                    data={"user_id": "u", "song_id": "s", "kind": "mix"},
                    files={"file": ("big.flac", big.read_bytes())},
                )
            )
            latencies: list[float] = []
            while not upload.done():
                t0 = time.perf_counter()
                r = await c.get("/healthz", timeout=5)
                assert r.status_code == 200
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)
            return await upload, latencies

    response, latencies = asyncio.run(go())
    assert response.status_code == 201, response.text
    # A blocked event loop would hold the first probe until the upload finished (one probe in all);
    # several answered probes (each within its 5 s timeout) prove the work ran off the loop.
    assert len(latencies) >= 5, f"only {len(latencies)} health probes answered during the upload"


def test_chunked_upload_over_limit_is_cut_off_mid_stream(app, tmp_settings, live_server, make_key) -> None:  # type: ignore[no-untyped-def]
    """No Content-Length: the limit is enforced on the bytes as they arrive, and nothing is kept."""
    tmp_settings.limits.max_upload_bytes = 1_000_000
    key = make_key(app, "upload")
    boundary = "sgboundary"
    sent = 0

    def body():  # type: ignore[no-untyped-def]
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="user_id"\r\n\r\nu\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
        ).encode()
        for _ in range(400):  # 40 MB if the server kept reading
            sent += 100_000
            yield b"\0" * 100_000
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(base_url=live_server, timeout=60) as c:
        try:
            r = c.post(
                "/v1/recordings",
                content=body(),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
            assert r.status_code == 413 and r.json()["code"] == "too_large"
        except (httpx.RemoteProtocolError, httpx.WriteError):
            pass  # the server may close the connection as soon as it has answered
    root = app.state.blobs.root
    assert [p for p in root.rglob("*") if p.is_file()] == []
