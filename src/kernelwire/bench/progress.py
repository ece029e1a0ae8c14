"""The progress display: one self-updating line on a terminal, one line per sample otherwise."""

from __future__ import annotations

import sys
import time
import typing as t

from .base import Sample


def format_value(value: float, unit: str) -> str:
    """A compact figure: 31.2k msg/s, 1,480 MB/s, 58.3 µs."""
    if unit in ("msg/s", "tasks/s"):
        if value >= 1e6:
            return f"{value / 1e6:,.2f}M"
        return f"{value / 1e3:,.1f}k" if value >= 1e4 else f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


class Progress:
    def __init__(self, stream: t.TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = self.stream.isatty()
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.current = ""

    def begin(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()

    def _eta(self) -> str:
        if not self.done:
            return ""
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        return f" ~{left:.0f}s left"

    def step(self, description: str) -> None:
        self.current = description
        if self.live and not self.quiet:
            line = f"[{self.done + 1}/{self.total}]{self._eta()} {description}"
            self.stream.write("\r\033[K" + line[:150])
            self.stream.flush()

    def record(self, sample: Sample) -> None:
        self.done += 1
        if self.quiet or self.live:
            return
        result = (
            f"failed: {sample.error}"
            if sample.error
            else f"{format_value(t.cast(float, sample.value), sample.unit)} {sample.unit}"
        )
        self.stream.write(f"[{self.done}/{self.total}] {self.current}: {result}\n")
        self.stream.flush()

    def end(self) -> None:
        if self.live and not self.quiet:
            self.stream.write("\r\033[K")
            self.stream.flush()
