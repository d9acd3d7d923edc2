"""Progress of a long evaluation: a rich bar on a terminal, a sparse plain line in CI logs.

pytest captures output while fixtures run, so every write happens inside ``suspend()``, a context
manager the caller provides (the plugin passes pytest's capture manager). The bar is refreshed by
hand, never from a background thread, for the same reason.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager

from ._text import terminal

LINE_INTERVAL_S = 15.0  # CI logs: at most one line this often
BAR_INTERVAL_S = 0.2


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        *,
        mode: str,  # "bar", "lines" or "off"
        write_line: Callable[[str], None],
        suspend: Callable[[], ContextManager] = contextlib.nullcontext,
        new_line: Callable[[], None] = lambda: None,
        resume: Callable[[], None] = lambda: None,
        width: int | None = None,
    ) -> None:
        self.label, self.total, self.mode = terminal(label, one_line=True), total, mode
        self.write_line, self.suspend = write_line, suspend
        self.new_line, self.resume, self.width = new_line, resume, width
        self.done = 0
        self.audio_seconds = 0.0
        self.start = self.last = time.monotonic()
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            # No file: rich then writes to whatever sys.stdout is at write time, which inside
            # suspend() is the real terminal rather than pytest's capture. The bar gets a line of its
            # own (new_line ends pytest's "file.py ..." line first) and never runs wider than pytest's
            # terminal width, so that nothing is overwritten and no residue is left behind.
            console = Console(force_terminal=True, width=self.width)
            self._bar = Bar(
                TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                TextColumn("{task.fields[audio]:.0f} s audio"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=console, auto_refresh=False, transient=True,
            )
            self._task = self._bar.add_task(self.label, total=self.total, audio=0.0)
            with self.suspend():
                self.new_line()
                self._bar.start()
        elif self.mode == "lines" and self.total:  # a log says what runs before its first item ends
            with self.suspend():
                self.write_line(f"speechlab: {self.label}: started, {self.total} items")
        return self

    def advance(self, audio_seconds: float) -> None:
        self.done += 1
        self.audio_seconds += audio_seconds
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, audio=self.audio_seconds)
            if now - self.last >= BAR_INTERVAL_S or self.done == self.total:
                self.last = now
                with self.suspend():
                    self._bar.refresh()
        elif self.mode == "lines" and now - self.last >= LINE_INTERVAL_S:
            self.last = now
            with self.suspend():
                self.write_line(self.status())

    def status(self) -> str:
        audio = f"{self.audio_seconds:.1f} s audio, " if self.audio_seconds else ""  # none for chat prompts
        elapsed = time.monotonic() - self.start
        eta = f", ETA {elapsed / self.done * (self.total - self.done):.0f} s" if 0 < self.done < self.total else ""
        return f"speechlab: {self.label}: {self.done}/{self.total} items, {audio}{elapsed:.1f} s elapsed{eta}"

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            with self.suspend():
                self._bar.stop()
        if self.mode != "off":
            with self.suspend():
                self.resume()  # pytest's "file.py" prefix again, for the result letter that follows
