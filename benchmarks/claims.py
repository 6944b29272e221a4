"""Claim-path load test: heartbeat throughput and claim latency against uvicorn on loopback.

A bounded asyncio load generator (raw HTTP/1.1 keep-alive connections, so the client spends as
little CPU as possible on the machine it shares with the server):

1. heartbeats: ``--connections`` listeners, each with its own listen session on a 10-minute song,
   send correctly chained, MACed heartbeats back to back (position = real elapsed time, so every
   one is accepted and stored) for ``--seconds``; reports heartbeats/s and latency percentiles;
2. claims: ``--claims`` claimants listen to a 1.5 s song in full (real time), then claim shares of
   10-share lucky packets with ``--claim-connections`` concurrent connections and an
   Idempotency-Key each; reports claim latency percentiles and status counts.

The per-IP account caps are switched off for the run (every request comes from 127.0.0.1).

    .venv/bin/python benchmarks/claims.py --workers 2 --connections 32 --seconds 20 --claims 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Conn:
    """One keep-alive HTTP/1.1 connection (requests strictly one after another)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.base = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.base}{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, json.loads(payload) if payload else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    xs = sorted(xs)

    def p(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2)

    return {
        "p50_ms": p(0.50),
        "p90_ms": p(0.90),
        "p99_ms": p(0.99),
        "max_ms": round(xs[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(xs) * 1000, 2),
    }


def prepare(data_dir: Path, database_url: str | None, n_claim_packets: int) -> dict[str, Any]:
    """Migrate, create a claim-scoped API key and the recordings the run uses."""
    from db import keys
    from db.engine import make_engine, make_session_factory
    from db.migrate import upgrade
    from db.tables import Recording

    url = database_url or f"sqlite:///{data_dir / 'songgate.db'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as s, s.begin():
        _, key = keys.create_key(s, name="bench", scopes=["claim"])
        for rid, dur in (("rec_long", 600.0), ("rec_short", 1.5)):
            s.add(
                Recording(
                    id=rid,
                    user_id="bench",
                    song_id=rid,
                    kind="mix",
                    sha256=rid.ljust(64, "0"),
                    size_bytes=1,
                    filename=None,
                    media_type="audio/wav",
                    container="wav",
                    codec="pcm_s16le",
                    sample_rate=48000,
                    channels=2,
                    duration_s=dur,
                    report={},
                    report_version="bench",
                )
            )
    engine.dispose()
    return {"url": url, "key": key}


def start_server(port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            time.sleep(1.0 if workers > 1 else 0.2)  # let every worker finish its lifespan
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("uvicorn exited") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("uvicorn did not start")


async def heartbeat_phase(
    port: int, headers: dict[str, str], *, connections: int, seconds: float, rate: float | None = None
) -> dict[str, Any]:
    """Listeners send back to back, or paced: with ``rate``, listener i sends on the schedule
    ``start + (i / connections + k) x connections / rate`` (offered load ``rate`` per second,
    latency timed from the scheduled send while the server keeps up)."""
    from claims.client import ListenClient

    setup = Conn("127.0.0.1", port, headers)
    await setup.open()
    status, packet = await setup.request(
        "POST",
        "/v1/packets",
        {"sender_id": "hb-sender", "recording_id": "rec_long", "total_fen": 1000, "count": 10},
    )
    assert status == 201, packet
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def listener(i: int) -> None:
        conn = Conn("127.0.0.1", port, headers)
        await conn.open()
        st, opened = await conn.request(
            "POST",
            f"/v1/packets/{packet['id']}/listen-sessions",
            {"claimant_id": f"hb-{i}", "device_id": f"hb-dev-{i}"},
        )
        assert st == 201, opened
        client = ListenClient.from_session(opened)
        t0 = time.monotonic()
        tok = {"X-Listen-Token": client.token}
        interval = connections / rate if rate else 0.0
        k = 0
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            if interval:
                scheduled = start + (i / connections + k) * interval
                k += 1
                await asyncio.sleep(max(0.0, scheduled - t))
                t = scheduled
            body = client.heartbeat(int((time.monotonic() - t0) * 1000))
            st, answer = await conn.request(
                "POST", f"/v1/listen-sessions/{client.session_id}/heartbeats", body, tok
            )
            latencies.append(time.perf_counter() - t)
            statuses[st] = statuses.get(st, 0) + 1
            if st == 200:
                client.acknowledge(answer)
        conn.close()

    stop_at = time.monotonic() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(listener(i) for i in range(connections)))
    wall = time.perf_counter() - start
    setup.close()
    ok = statuses.get(200, 0)
    return {
        "connections": connections,
        "offered_rate_per_s": rate,
        "seconds": round(wall, 2),
        "heartbeats": sum(statuses.values()),
        "accepted": ok,
        "statuses": statuses,
        "heartbeats_per_s": round(ok / wall, 1),
        **percentiles(latencies),
    }


async def claim_phase(
    port: int, headers: dict[str, str], *, claims: int, concurrency: int, rate: float | None = None
) -> dict[str, Any]:
    from claims.client import ListenClient

    setup = Conn("127.0.0.1", port, headers)
    await setup.open()
    packets = []
    for k in range((claims + 9) // 10):
        st, p = await setup.request(
            "POST",
            "/v1/packets",
            {"sender_id": f"claim-sender-{k}", "recording_id": "rec_short", "total_fen": 10_000, "count": 10},
        )
        assert st == 201, p
        packets.append(p["id"])
    setup.close()

    # Everyone listens to the 1.5 s song in full first (a few connections, real time).
    listens: list[tuple[str, str, str]] = []

    async def listen_batch(idx: list[int]) -> None:
        conn = Conn("127.0.0.1", port, headers)
        await conn.open()
        clients = []
        for i in idx:
            pid = packets[i // 10]
            st, opened = await conn.request(
                "POST",
                f"/v1/packets/{pid}/listen-sessions",
                {"claimant_id": f"claimant-{i}", "device_id": f"dev-{i}"},
            )
            assert st == 201, opened
            c = ListenClient.from_session(opened)
            st, a = await conn.request(
                "POST",
                f"/v1/listen-sessions/{c.session_id}/heartbeats",
                c.heartbeat(0),
                {"X-Listen-Token": c.token},
            )
            assert st == 200, a
            c.acknowledge(a)
            clients.append((i, pid, c))
        await asyncio.sleep(1.7)
        for i, pid, c in clients:
            st, a = await conn.request(
                "POST",
                f"/v1/listen-sessions/{c.session_id}/heartbeats",
                c.heartbeat(c.duration_ms),
                {"X-Listen-Token": c.token},
            )
            assert st == 200 and a["complete"], a
            listens.append((pid, c.session_id, f"claimant-{i}"))
        conn.close()

    groups = [list(range(g, claims, 8)) for g in range(8)]
    await asyncio.gather(*(listen_batch(g) for g in groups))

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    queue = list(listens)

    async def claimer(w: int) -> None:
        conn = Conn("127.0.0.1", port, headers)
        await conn.open()
        while queue:
            pid, sid, who = queue.pop()
            t = time.perf_counter()
            st, body = await conn.request(
                "POST",
                f"/v1/packets/{pid}/claims",
                {"session_id": sid, "claimant_id": who},
                {"Idempotency-Key": f"bench-{sid}"},
            )
            latencies.append(time.perf_counter() - t)
            label = str(st) if st == 200 else f"{st} {body.get('code')}"
            statuses[label] = statuses.get(label, 0) + 1
        conn.close()

    async def open_loop() -> None:
        """Claims sent on a fixed schedule (``rate`` per second) whatever the answers take, each
        timed from its scheduled send: waiting for a free connection counts (no coordinated
        omission)."""
        pool: asyncio.Queue[Conn] = asyncio.Queue()
        for _ in range(concurrency):
            conn = Conn("127.0.0.1", port, headers)
            await conn.open()
            pool.put_nowait(conn)
        begin = time.perf_counter()

        async def one(i: int, pid: str, sid: str, who: str) -> None:
            scheduled = begin + i / float(rate or 1.0)
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            conn = await pool.get()
            try:
                st, body = await conn.request(
                    "POST",
                    f"/v1/packets/{pid}/claims",
                    {"session_id": sid, "claimant_id": who},
                    {"Idempotency-Key": f"bench-{sid}"},
                )
            finally:
                pool.put_nowait(conn)
            latencies.append(time.perf_counter() - scheduled)
            label = str(st) if st == 200 else f"{st} {body.get('code')}"
            statuses[label] = statuses.get(label, 0) + 1

        await asyncio.gather(*(one(i, *item) for i, item in enumerate(listens)))
        while not pool.empty():
            pool.get_nowait().close()

    start = time.perf_counter()
    if rate:
        await open_loop()
    else:
        await asyncio.gather(*(claimer(w) for w in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "claims": len(listens),
        "concurrency": concurrency,
        "offered_rate_per_s": rate,
        "seconds": round(wall, 2),
        "claims_per_s": round(len(listens) / wall, 1),
        "statuses": statuses,
        **percentiles(latencies),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--connections", type=int, default=32, help="concurrent heartbeat listeners")
    ap.add_argument("--seconds", type=float, default=20.0, help="heartbeat phase length")
    ap.add_argument("--claims", type=int, default=400)
    ap.add_argument("--claim-connections", type=int, default=8)
    ap.add_argument(
        "--claim-rate",
        type=float,
        default=None,
        help="open loop: send claims at this rate (per s) over --claim-connections connections, "
        "instead of --claim-connections clients back to back",
    )
    ap.add_argument(
        "--heartbeat-rate",
        type=float,
        default=None,
        help="pace the listeners to this many heartbeats per second in all (default: back to back)",
    )
    ap.add_argument(
        "--mixed", action="store_true", help="run the claims during the heartbeat phase instead of after it"
    )
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    ap.add_argument("--no-store-heartbeats", action="store_true", help="skip the per-heartbeat audit rows")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="songgate-bench-") as d:
        data_dir = Path(d)
        prep = prepare(data_dir, args.database_url, (args.claims + 9) // 10)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SONGGATE_ENV": "test",
            "SONGGATE_DATA_DIR": str(data_dir),
            "SONGGATE_DATABASE_URL": prep["url"],
            "SONGGATE_SECRET_KEY": "bench-secret-0123456789abcdef-0123456789",
            "SONGGATE_LOAD_MODELS": "false",
            "SONGGATE_WORKER_MODE": "thread",
            "SONGGATE_WORKERS": "1",
            "SONGGATE_CLAIMS__RISK__DISABLED_RULES": '["ip_accounts_per_packet","ip_accounts_per_day"]',
            "SONGGATE_CLAIMS__STORE_HEARTBEATS": "false" if args.no_store_heartbeats else "true",
        }
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = start_server(port, args.workers, env)
        headers = {"Authorization": f"Bearer {prep['key']}"}
        try:
            cpu0 = time.process_time()

            def heartbeats() -> Any:
                return heartbeat_phase(
                    port,
                    headers,
                    connections=args.connections,
                    seconds=args.seconds,
                    rate=args.heartbeat_rate,
                )

            def claims() -> Any:
                return claim_phase(
                    port,
                    headers,
                    claims=args.claims,
                    concurrency=args.claim_connections,
                    rate=args.claim_rate,
                )

            if args.mixed:  # claims while the heartbeats flow, as in production

                async def both() -> tuple[Any, Any]:
                    return await asyncio.gather(heartbeats(), claims())  # type: ignore[return-value]

                hb, cl = asyncio.run(both())
            else:
                hb = asyncio.run(heartbeats())
                cl = asyncio.run(claims())
            hb["loadgen_cpu_s"] = round(time.process_time() - cpu0, 2)
        finally:
            server.terminate()
            server.wait(30)
    result = {
        "workers": args.workers,
        "database": "sqlite" if args.database_url is None else "url",
        "store_heartbeats": not args.no_store_heartbeats,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "heartbeats": hb,
        "claims": cl,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"heartbeats: {hb['heartbeats_per_s']}/s accepted over {hb['seconds']} s with {hb['connections']} "
            f"connections; latency p50 {hb.get('p50_ms')} ms, p99 {hb.get('p99_ms')} ms; statuses {hb['statuses']}"
        )
        print(
            f"claims: {cl['claims']} at "
            + (
                f"{cl['offered_rate_per_s']:g}/s offered"
                if cl["offered_rate_per_s"]
                else f"concurrency {cl['concurrency']}"
            )
            + f": p50 {cl.get('p50_ms')} ms, "
            f"p90 {cl.get('p90_ms')} ms, p99 {cl.get('p99_ms')} ms, max {cl.get('max_ms')} ms; {cl['statuses']}"
        )
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
