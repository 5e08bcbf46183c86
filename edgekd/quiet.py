"""Quiet unless asked: the third-party chatter the ``edgekd`` command hides without ``--verbose``.

One table, :data:`NOISE`, lists every line we hide, where it comes from and why it is harmless.
Each is silenced at its source: Python loggers get a filter that drops exactly that message,
Python warnings a filter for that message, and lines that C++ libraries write straight to file
descriptor 2 (absl, TF's oneDNN notice, LiteRT's XNNPACK notice, ExecuTorch's cpuinfo probing: no
Python or environment switch reaches them; ``TF_CPP_MIN_LOG_LEVEL`` is not honoured by the
converter's absl logging) are dropped by a line filter on fd 2. The fd filter also drops the
Python lines, because worker processes and ``torchrun`` ranks print them too without running
this setup. Every line not in the table passes unchanged, so errors always show.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Noise:
    message: str                       # regex searched in the message (and in each fd-2 line)
    why: str                           # where it comes from, why it is harmless
    logger: str | None = None          # the Python logger that emits it, filtered at the source
    warning: type[Warning] | None = None  # or the Python warning category


NOISE = (
    Noise(r"Failed to load \S*torchao/_C\w*\.\S*so", "torchao's CUDA kernels (mxfp8, cutlass sm90a): no GPU here",
          logger="torchao"),
    Noise(r"<enum 'KernelPreference'> is an Enum subclass and is now natively supported",
          "torchao registers an Enum as a pytree constant; torch deprecates that", logger="torch.utils._pytree"),
    Noise(r"`isinstance\(treespec, LeafSpec\)` is deprecated",
          "torch.export's own pytree code (raised while copying graphs)", warning=FutureWarning),
    Noise(r"torchvision is not installed\. Skipping torchvision::",
          "torch.onnx registers torchvision ops only when torchvision is there",
          logger="torch.onnx._internal.exporter._registration"),
    Noise(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
          "absl (C++, inside LiteRT's converter): printed before its first log line"),
    Noise(r"^I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on",
          "TF's port.cc (C++, inside LiteRT's converter), an INFO notice"),
    Noise(r"^I\d{4} [\d:.]+ +\d+ flatbuffer_export\.cc:\d+\] Estimated count of arithmetic ops",
          "LiteRT's converter (C++), an INFO count of the ops it wrote"),
    Noise(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
          "LiteRT's interpreter (C++), an INFO notice"),
    Noise(r"^\[cpuinfo_utils\.cpp:\d+\] ", "ExecuTorch's runtime (C++) probing /sys for the CPU model"),
)

_FILTER_SCRIPT = Path(__file__).with_name("_stderr_filter.py")


class _DropMessages(logging.Filter):
    def __init__(self, pattern):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record):
        return not self.pattern.search(record.getMessage())


@contextlib.contextmanager
def quiet(native: bool = True):
    """Drop the lines in :data:`NOISE` while the block runs.

    ``native``: also filter fd 2 (the lines C++ writes itself); only when this process owns the
    real stderr (the ``edgekd`` program), never under a caller's capture (tests calling ``main``).
    """
    attached = []
    for noise in NOISE:
        if noise.logger:
            f = _DropMessages(noise.message)
            logging.getLogger(noise.logger).addFilter(f)
            attached.append((noise.logger, f))
    try:
        with warnings.catch_warnings():
            for noise in NOISE:
                if noise.warning:  # filterwarnings matches at the start of the message
                    warnings.filterwarnings("ignore", message=".*" + noise.message, category=noise.warning)
            with native_stderr_filter() if native else contextlib.nullcontext():
                yield
    finally:
        for name, f in attached:
            logging.getLogger(name).removeFilter(f)


@contextlib.contextmanager
def native_stderr_filter(patterns=None):
    """Route fd 2 through a small filter process that drops lines matching ``patterns``.

    A process rather than a thread: it keeps draining if this one crashes, and a C++ library that
    writes a lot while holding the GIL cannot deadlock it. Children inherit the filtered fd 2.
    """
    if os.name != "posix":
        yield
        return
    patterns = [n.message for n in NOISE] if patterns is None else list(patterns)
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-I", "-S", str(_FILTER_SCRIPT), *patterns], stdin=read_end,
                                 stdout=saved, stderr=saved, start_new_session=True)  # Ctrl-C: keep draining
    except OSError:  # no filter: show everything rather than fail
        for fd in (read_end, write_end, saved):
            os.close(fd)
        yield
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # our last copy of the pipe closes: the filter drains and exits
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)  # a grandchild still holding the pipe: do not wait for it
