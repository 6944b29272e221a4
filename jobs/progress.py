"""Progress reporting for a running job: a rich progress bar (items, rate, ETA, failures) on a
terminal, and nothing (or periodic log lines) elsewhere."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

log = logging.getLogger("songgate.jobs")


class Progress(Protocol):
    def start(self, *, total: int, completed: int, description: str) -> None: ...
    def advance(self, *, failed: bool) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    def start(self, *, total: int, completed: int, description: str) -> None:
        pass

    def advance(self, *, failed: bool) -> None:
        pass

    def stop(self) -> None:
        pass


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "ETA -:--:--"
    s = int(round(seconds))
    return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RichProgress:
    """``rich`` bar: what, bar, done/total, items/s, ETA, elapsed, failed count.

    Rate and ETA are this run's average (items finished since it started / seconds), not rich's
    short-window estimate: Ray hands results back in bursts, which make a windowed rate jump around.
    """

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._task: Any = None
        self._failed = 0
        self._done = self._base = self._total = 0
        self._t0 = 0.0

    def start(self, *, total: int, completed: int, description: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RProgress

        self._total, self._done, self._base = total, completed, completed
        self._t0 = time.monotonic()
        self._progress = RProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            TextColumn("[red]{task.fields[failed]}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total, completed=completed, rate="- items/s", eta=_fmt_eta(None), failed=""
        )

    def advance(self, *, failed: bool) -> None:
        if self._progress is None:
            return
        self._failed += int(failed)
        self._done += 1
        rate = (self._done - self._base) / max(time.monotonic() - self._t0, 1e-9)
        eta = (self._total - self._done) / rate if rate > 0 else None
        self._progress.update(
            self._task,
            advance=1,
            rate=f"{rate:.2f} items/s",
            eta=_fmt_eta(eta),
            failed=f"{self._failed} failed" if self._failed else "",
        )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LogProgress:
    """One log line every ``every_s`` seconds (non-interactive runs, the API's background jobs)."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._total = self._done = self._base = self._failed = 0
        self._t0 = self._last = 0.0

    def start(self, *, total: int, completed: int, description: str) -> None:
        self._total, self._done, self._base = total, completed, completed
        self._t0 = self._last = time.monotonic()

    def advance(self, *, failed: bool) -> None:
        self._done += 1
        self._failed += int(failed)
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            rate = (self._done - self._base) / max(now - self._t0, 1e-9)
            eta = (self._total - self._done) / rate if rate > 0 else float("inf")
            log.info(
                "%d/%d items, %.2f items/s, ETA %.0f s, %d failed",
                self._done,
                self._total,
                rate,
                eta,
                self._failed,
            )

    def stop(self) -> None:
        pass
