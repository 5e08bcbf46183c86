"""The native C export built for the host (``cc -O2``) and called through ctypes.

A small generated C harness times the inference function in C (``clock_gettime``), so the
numbers carry no Python call overhead; ctypes only starts the loop and reads the samples back.
"""
from __future__ import annotations

import ctypes
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError

from ..mcu.toolchain import Entry, read_entry

_HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <time.h>
#include "{name}.h"

static double edgekd_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int edgekd_call(const void *input, void *output) { return {call}; }

int edgekd_bench(const void *input, void *output, int warmup, int runs, int inner, double *ns) {
    int status = 0;
    for (int i = 0; i < warmup; ++i) status |= edgekd_call(input, output);
    for (int r = 0; r < runs; ++r) {
        double t0 = edgekd_now_ns();
        for (int i = 0; i < inner; ++i) status |= edgekd_call(input, output);
        ns[r] = (edgekd_now_ns() - t0) / inner;
    }
    return status;
}
"""


def host_compiler() -> str | None:
    """The host C compiler (cc/gcc/clang), or None."""
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def host_compiler_version() -> str | None:
    cc = host_compiler()
    if not cc:
        return None
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else None


@dataclass
class HostModel:
    """A native C export loaded as a shared library."""

    entry: Entry
    library: Path
    flags: tuple[str, ...]

    def __post_init__(self):
        self._lib = ctypes.CDLL(str(self.library))
        self._lib.edgekd_call.restype = ctypes.c_int
        self._lib.edgekd_bench.restype = ctypes.c_int

    def _buffers(self, x):
        x = np.ascontiguousarray(x, dtype=np.int8 if self.entry.kind == "nn" else np.uint8).reshape(-1)
        if x.size != self.entry.input_size:
            raise EdgeKDError(f"{self.library}: input has {x.size} values, expected {self.entry.input_size}")
        out = np.zeros(max(self.entry.output_size, 1), dtype=np.int8)
        return x, out

    def predict(self, x) -> tuple[int, np.ndarray]:
        """(return value, output int8 array) for one raw input (int8 for nn, uint8 levels for ldc)."""
        x, out = self._buffers(x)
        status = self._lib.edgekd_call(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
        return status, out[: self.entry.output_size]

    def time(self, x, warmup=20, runs=200, min_run_us=50.0, budget_s=3.0) -> dict:
        """Median/p90 latency in ms over ``runs`` timed runs after ``warmup`` calls; fast calls are
        repeated ``inner`` times per run so that one run lasts at least ``min_run_us``; slow calls get
        fewer runs (about ``budget_s`` in all, at least 10)."""
        x, out = self._buffers(x)
        ns = np.zeros(runs, dtype=np.float64)
        args = (x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
        probe = np.zeros(5, dtype=np.float64)
        self._lib.edgekd_bench(*args, 2, 5, 1, probe.ctypes.data_as(ctypes.c_void_p))
        per_call_ns = max(float(np.median(probe)), 1.0)
        inner = max(1, int(np.ceil(min_run_us * 1e3 / per_call_ns)))
        runs = int(max(min(runs, 10), min(runs, budget_s * 1e9 / (per_call_ns * inner))))
        ns = ns[:runs]
        self._lib.edgekd_bench(*args, warmup, runs, inner, ns.ctypes.data_as(ctypes.c_void_p))
        ms = ns / 1e6
        return {"median_ms": float(statistics.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                "runs": runs, "warmup": warmup, "inner": inner}


def build_host(src_dir, name="model", kind=None, out_dir=None, opt="-O2") -> HostModel:
    """Compile the export folder + timing harness into a shared library and load it."""
    cc = host_compiler()
    if not cc:
        raise EdgeKDError("no host C compiler (cc/gcc/clang) found")
    src_dir = Path(src_dir)
    entry = read_entry(src_dir, name, kind)
    call = ("{f}((const int8_t *)input, (int8_t *)output)" if entry.kind == "nn"
            else "{f}((const uint8_t *)input)").format(f=entry.function)
    out_dir = Path(out_dir or src_dir / "build")
    out_dir.mkdir(parents=True, exist_ok=True)
    harness = out_dir / f"host_harness_{entry.name}.c"
    harness.write_text(_HARNESS.replace("{name}", entry.name).replace("{call}", call))
    lib = out_dir / f"lib{entry.name}_host{opt}.so"
    flags = (opt, "-std=c99", "-fPIC", "-shared", "-Wall")
    cmd = [cc, *flags, f"-I{src_dir}", *sorted(str(p) for p in src_dir.glob("*.c")), str(harness), "-o", str(lib)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise EdgeKDError(f"{src_dir}: host build failed:\n{res.stderr.strip()[-2000:]}")
    return HostModel(entry, lib, flags)
