"""Prometheus metrics, one registry per app instance (so several apps can live in one process)."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "songgate_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "songgate_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.uploads = Counter(
            "songgate_uploads_total", "Recording uploads by outcome", ["outcome"], registry=self.registry
        )
        self.pool_in_flight = Gauge(
            "songgate_worker_pool_in_flight", "Jobs running or queued in the CPU pool", registry=self.registry
        )


def install(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def _measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, name, str(response.status_code)).inc()
        metrics.latency.labels(request.method, name).observe(time.perf_counter() - start)
        return response


def render(metrics: Metrics, pool_in_flight: int) -> Response:
    metrics.pool_in_flight.set(pool_in_flight)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
