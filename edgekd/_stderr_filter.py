"""Copy stdin to stdout except the lines that match any regex given as an argument.

Started by :func:`edgekd.quiet.native_stderr_filter` with the program's fd 2 as its stdin and the
real stderr as its stdout; it runs until every writer has closed the pipe. Standard library only,
no package imports (it starts with ``python -I -S``).
"""
from __future__ import annotations

import os
import re
import select
import sys

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)")
_WARNING_HEADER = re.compile(rb":\d+: \w*Warning: ")  # warnings.showwarning: "file:line: Category: message"


class LineFilter:
    """Feed bytes, get back what passes. Whole lines are checked; a dropped warning takes its
    indented source line with it. A partial line (a progress bar redrawn with ``\\r``, a prompt)
    is held only until :meth:`flush` (the caller flushes when no more bytes come for a moment)."""

    def __init__(self, patterns):
        self.noise = re.compile(b"|".join(b"(?:" + p.encode() + b")" for p in patterns)) if patterns else None
        self.pending = b""
        self.dropping_continuation = False

    def feed(self, data: bytes) -> bytes:
        data = self.pending + data
        out, end = [], 0
        for m in _LINE.finditer(data):
            out.append(self._check(m.group()))
            end = m.end()
        self.pending = data[end:]
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return self._check(rest) if rest else b""

    def _check(self, line: bytes) -> bytes:
        if self.dropping_continuation and line[:1] in (b" ", b"\t"):
            return b""
        self.dropping_continuation = False
        if self.noise is not None and self.noise.search(line.rstrip(b"\r\n")):
            self.dropping_continuation = bool(_WARNING_HEADER.search(line))
            return b""
        return line


def _write(fd, data):
    while data:
        data = data[os.write(fd, data):]


def main(patterns) -> int:
    lines = LineFilter(patterns)
    src, dst = sys.stdin.fileno(), sys.stdout.fileno()
    try:
        while True:
            ready, _, _ = select.select([src], [], [], 0.1 if lines.pending else None)
            if not ready:  # a partial line stopped growing: show it (a progress bar, a prompt)
                _write(dst, lines.flush())
                continue
            chunk = os.read(src, 65536)
            if not chunk:
                _write(dst, lines.flush())
                return 0
            _write(dst, lines.feed(chunk))
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
