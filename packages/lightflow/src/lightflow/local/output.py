"""Whole-line output for tasks that share one process.

On the embedded engine tasks are threads writing to the same ``sys.stdout``; ``print``
writes the text and the newline in separate calls, so parallel lanes would interleave
inside lines. :class:`LineSafeStream` buffers each thread's text until a newline and
writes complete lines under one lock, as separate worker processes would.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO


class LineSafeStream:
    """A text stream proxy writing whole lines atomically across threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        head, newline, tail = buffered.rpartition("\n")
        self._pending.text = tail
        if newline:
            with self._lock:
                self._stream.write(head + newline)
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._pending, "text", "")
        self._pending.text = ""
        with self._lock:
            if rest:
                self._stream.write(rest)
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def whole_lines() -> Iterator[None]:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`LineSafeStream`."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = LineSafeStream(saved[0]), LineSafeStream(saved[1])
    try:
        yield
    finally:
        for proxy in (sys.stdout, sys.stderr):
            proxy.flush()
        sys.stdout, sys.stderr = saved
