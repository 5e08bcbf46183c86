"""Time an ExecuTorch ``.pte`` program (float in, float out) in its own process, on a set thread count.

    python executorch_runner.py request.json result.json

Request (JSON): {"path": ".pte", "input": ".npy of float32 (1, ...)", "threads": 1, "warmup", "runs",
"budget_s"}. Result (JSON): median/p90 ms, runs, warmup, the output, the thread count the pool
reported, executorch's version and the process's peak RSS.

Why a process of its own: ``executorch.runtime`` has no thread option. XNNPACK runs on the
global threadpool of the pybindings, which ``_unsafe_reset_threadpool(n)`` resizes; it must be
called before any program is loaded: a method loaded earlier keeps a pointer to the old pool
and crashes (SIGSEGV, seen with executorch 1.5.1) when executed after the reset. A fresh process
resizes first, then loads.
"""
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np


@contextlib.contextmanager
def _quiet_fds():
    """The runtime prints cpuinfo probing lines on fd 1/2 when it first loads."""
    saved = [(fd, os.dup(fd)) for fd in (1, 2)]
    try:
        with open(os.devnull, "w") as null:
            for fd, _ in saved:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def peak_rss_bytes():
    """VmHWM of this process."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def run(request):
    import torch

    with _quiet_fds():
        import executorch.extension.pybindings.portable_lib as pybind
        from executorch.runtime import Runtime

        pybind._unsafe_reset_threadpool(int(request.get("threads", 1)))
        method = Runtime.get().load_program(request["path"]).load_method("forward")
    x = torch.as_tensor(np.load(request["input"]).astype(np.float32))

    def call():
        return method.execute((x,))[0]

    warmup, runs, budget_s = int(request.get("warmup", 10)), int(request.get("runs", 100)), request.get("budget_s", 3.0)
    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):
        call()
    per_call = (time.perf_counter() - t0) / max(1, warmup)
    runs = int(max(min(runs, 10), min(runs, budget_s / per_call))) if per_call > 0 else runs
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1e3)
    try:
        from importlib.metadata import version
        et_version = version("executorch")
    except Exception:          # noqa: BLE001 - informative only
        et_version = None
    return {"median_ms": statistics.median(samples), "p90_ms": float(np.percentile(samples, 90)), "runs": runs,
            "warmup": warmup, "output": call().reshape(-1).tolist(), "threads": pybind._threadpool_get_thread_count(),
            "version": et_version, "peak_rss_bytes": peak_rss_bytes()}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        request = json.load(fh)
    result = run(request)
    with open(argv[1], "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
