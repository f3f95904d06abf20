"""Progress of long work: a bar on a terminal, periodic count lines in an Airflow task log.

One rule for every caller (`pii mask`, `crypto encrypt|decrypt`, `eval pii`, `demo`, the
pipeline's stages inside tasks):
- `quiet` (the CLI's `--quiet`): nothing at all;
- stderr is a terminal: a bar redrawn in place on stderr (done/total, percent, rate, ETA), in rows,
  texts or tasks, or in bytes (shown as KiB/MiB/GiB) for a stream;
- otherwise: an INFO line on the `securepipe.progress` logger every `interval_s` seconds and one at
  the end. Inside an Airflow task that lands in the task log; a CLI configures no logging, so
  with stderr redirected it prints nothing extra.

Threat model: progress shows counts, sizes, times and the label its caller chose (a file's
name at most), never a value from the data, so it is safe on a shared terminal and in task logs.
Standard library only: the CLI runs in both venvs, and the training venv has no tqdm.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

LOGGER = logging.getLogger("securepipe.progress")
BAR_WIDTH = 24
REDRAW_S = 0.1  # a bar redrawn more often only costs CPU


def add_quiet_flag(parser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts `done` of `total` (None: unknown) in `unit` ("bytes" is shown as sizes); see the module doc."""

    def __init__(self, label: str, *, total: float | None = None, unit: str = "rows", quiet: bool = False,
                 stream=None, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.interval_s, self.clock = interval_s, clock
        self.done = 0.0
        self.started = self.last_shown = clock()
        isatty = getattr(self.stream, "isatty", None)
        self.mode = "off" if quiet else "bar" if isatty and isatty() else "log"
        self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, count: float) -> None:
        self.done += count
        if self.mode == "off":
            return
        now = self.clock()
        if now - self.last_shown >= (REDRAW_S if self.mode == "bar" else self.interval_s):
            self.last_shown = now
            self._show(now)

    def close(self) -> None:
        if self.mode == "off":
            return
        self._show(self.clock(), final=True)
        if self.mode == "bar" and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.mode = "off"  # closing twice shows nothing twice

    def describe(self, now: float) -> str:
        """The numbers, as both the bar and the log lines show them."""
        elapsed = max(now - self.started, 1e-9)
        if self.unit == "bytes":
            amount, unit, rate = _bytes, "", f"{_bytes(self.done / elapsed)}/s"
        else:
            amount, unit, rate = _count, f" {self.unit}", f"{_count(self.done / elapsed)} {self.unit}/s"
        done = f"{amount(self.done)}/{amount(self.total)}{unit} ({min(self.done / self.total, 1):.0%})" \
            if self.total else f"{amount(self.done)}{unit}"
        parts = [done, rate, f"elapsed {_duration(elapsed)}"]
        if self.total and 0 < self.done < self.total:
            parts.append(f"ETA {_duration(elapsed * (self.total - self.done) / self.done)}")
        return ", ".join(parts)

    def _show(self, now: float, final: bool = False) -> None:
        text = self.describe(now)
        if self.mode == "log":
            LOGGER.info("%s: %s%s", self.label, text, " (done)" if final else "")
            return
        filled = int(BAR_WIDTH * min(self.done / self.total, 1)) if self.total else 0
        bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] " if self.total else ""
        self.stream.write(f"\r\x1b[2K{self.label} {bar}{text}")
        self.stream.flush()
        self._drawn = True


class CountingReader:
    """A binary file wrapper that advances a Progress (unit "bytes") by each read."""

    def __init__(self, handle, progress: Progress):
        self._handle, self._progress = handle, progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._progress.advance(len(data))
        return data

    def readinto(self, buffer) -> int:
        n = self._handle.readinto(buffer)
        self._progress.advance(n or 0)
        return n

    def __getattr__(self, name):
        return getattr(self._handle, name)
