"""Latency of one model in each host runtime: torch eager, onnxruntime, TFLite Micro, and in
subprocesses the .tflite runner (LiteRT in this venv, tflite-runtime in a numpy<2 venv) and the
ExecuTorch runner (its threadpool can only be sized before a program loads).

Every function returns plain dicts (median_ms, p90_ms, runs, warmup, ...) so run.py can turn
them into records. Peak memory: the runner subprocess reports its own peak RSS; TFLM reports its
arena from the allocation recorder.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError
from edgekd.log import logger

RUNNER = Path(__file__).resolve().parent / "tflite_runner.py"
EXECUTORCH_RUNNER = Path(__file__).resolve().parent / "executorch_runner.py"
TFLITE_RUNTIME_VENV = Path(".venv-tflite-runtime")


BUDGET_S = 3.0          # timed runs per runtime are capped so that they take about this long
MIN_RUNS = 10


def capped_runs(runs, seconds_per_call, budget_s=BUDGET_S, min_runs=MIN_RUNS) -> int:
    """``runs``, reduced for slow models so the timed loop lasts about ``budget_s`` (never below min_runs)."""
    if seconds_per_call <= 0:
        return runs
    return int(max(min(runs, min_runs), min(runs, budget_s / seconds_per_call)))


def time_calls(fn, warmup=10, runs=100, budget_s=BUDGET_S) -> dict:
    """Median and p90 in ms of ``fn()`` over ``runs`` timed calls after ``warmup`` untimed ones
    (fewer runs when they would exceed ``budget_s``; the count used is returned)."""
    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):
        fn()
    runs = capped_runs(runs, (time.perf_counter() - t0) / max(1, warmup), budget_s)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(statistics.median(samples)), "p90_ms": float(np.percentile(samples, 90)),
            "runs": runs, "warmup": warmup}


def torch_latency(model, x, threads=1, warmup=10, runs=100) -> dict:
    """PyTorch eager, no grad, ``threads`` intra-op threads."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval()
        xt = torch.as_tensor(x, dtype=torch.float32)
        with torch.inference_mode():
            res = time_calls(lambda: model(xt), warmup, runs)
            res["output"] = model(xt).reshape(-1).tolist()
    finally:
        torch.set_num_threads(old)
    return {**res, "threads": threads, "version": torch.__version__}


def onnxruntime_latency(path, x, threads=1, warmup=10, runs=100) -> dict:
    """onnxruntime CPU provider with ``threads`` intra-op threads (sequential execution)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feed = {name: np.asarray(x, dtype=np.float32)}
    res = time_calls(lambda: sess.run(None, feed), warmup, runs)
    res["output"] = np.asarray(sess.run(None, feed)[0]).reshape(-1).tolist()
    return {**res, "threads": threads, "version": ort.__version__}


def _quantize(x, scale, zero, dtype=np.int8):
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero, info.min, info.max).astype(dtype)


def tflm_arena_bytes(interp) -> int | None:
    """Arena bytes TFLM planned, from ``print_allocations()`` (C++ stdout, captured at fd level)."""
    import sys as _sys

    _sys.stdout.flush()
    _sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        try:
            for fd in saved:
                os.dup2(tmp.fileno(), fd)
            interp.print_allocations()
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    logger.debug(text)
    match = re.search(r"\[RecordingMicroAllocator\]\s*Arena allocation total\s+(\d+)\s+bytes", text)
    if match:
        return int(match.group(1))
    totals = [int(m) for m in re.findall(r"total\s+(\d+)\s+bytes", text)]
    return max(totals) if totals else None


def tflm_latency(path, x, warmup=3, runs=30) -> dict:
    """The TFLite Micro interpreter from the ``tflite-micro`` package (reference kernels).
    The input is set before every invoke: TFLM reuses the input tensor's memory."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(path))
    detail = interp.get_input_details(0)
    scale, zero = detail["quantization_parameters"]["scales"], detail["quantization_parameters"]["zero_points"]
    dtype = np.dtype(detail["dtype"])
    shape = tuple(detail["shape"])
    if np.issubdtype(dtype, np.integer) and len(scale):
        xq = _quantize(np.reshape(x, shape), float(scale[0]), int(zero[0]), dtype)
    else:
        xq = np.reshape(x, shape).astype(dtype)

    def call():
        interp.set_input(xq, 0)
        interp.invoke()

    res = time_calls(call, warmup, runs)
    call()
    res["output"] = np.asarray(interp.get_output(0)).reshape(-1).tolist()
    res["arena_bytes"] = tflm_arena_bytes(interp)
    try:
        from importlib.metadata import version
        res["version"] = version("tflite-micro")
    except Exception:        # noqa: BLE001 - version is informative only
        res["version"] = None
    return res


def _run_script(python, script, request: dict, timeout=300) -> dict:
    """Run a standalone runner ``script request.json result.json`` under ``python``; its result JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        req, out = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps(request))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        env.setdefault("OMP_NUM_THREADS", "1")
        res = subprocess.run([str(python), str(script), str(req), str(out)], capture_output=True,
                             text=True, timeout=timeout, env=env, check=False)
        if res.returncode != 0:
            why = res.stderr.strip()[-1500:] or f"exit status {res.returncode}"
            raise EdgeKDError(f"{Path(script).name} under {python} failed: {why}")
        return json.loads(out.read_text())


def run_tflite_runner(python, models, warmup=10, runs=100, timeout=300) -> dict:
    """Run ``tflite_runner.py`` under ``python`` (a venv's interpreter) on ``models`` (list of
    dicts with key, path, input, threads, resolver). Returns its result JSON."""
    return _run_script(python, RUNNER, {"models": models, "warmup": warmup, "runs": runs}, timeout)


def executorch_latency(path, input_npy, threads=1, warmup=10, runs=100, timeout=300) -> dict:
    """An ExecuTorch ``.pte`` (float in, float out) timed in a fresh process whose XNNPACK threadpool
    is set to ``threads`` before the program loads (see ``executorch_runner.py`` for why)."""
    request = {"path": str(path), "input": str(input_npy), "threads": threads, "warmup": warmup, "runs": runs}
    res = _run_script(sys.executable, EXECUTORCH_RUNNER, request, timeout)
    if res.get("threads") != threads:
        raise EdgeKDError(f"{path}: ExecuTorch threadpool has {res.get('threads')} threads, asked for {threads}")
    return res


def ensure_tflite_runtime_venv(venv=TFLITE_RUNTIME_VENV, base_python=None) -> Path:
    """Create ``.venv-tflite-runtime`` (numpy<2 + tflite-runtime: 2.14 needs numpy<2) if it is
    missing; returns its python. Raises EdgeKDError if pip cannot install it."""
    venv = Path(venv)
    py = venv / "bin" / "python"
    stamp = venv / ".edgekd-ok"
    if py.exists() and stamp.exists():
        return py
    base_python = base_python or _system_python()
    logger.info(f"creating {venv} (numpy<2, tflite-runtime)")
    steps = [[base_python, "-m", "venv", str(venv)],
             [str(py), "-m", "pip", "install", "-q", "numpy<2", "tflite-runtime"]]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        if res.returncode != 0:
            raise EdgeKDError(f"`{' '.join(cmd)}` failed: {res.stderr.strip()[-800:]}")
    stamp.write_text("ok\n")
    return py


def _system_python() -> str:
    """A Python to create the side venv from (the one this venv was made from)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base
