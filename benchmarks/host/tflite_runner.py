"""Time .tflite files with whichever interpreter this Python has: LiteRT or tflite-runtime.

Standalone on purpose: it imports only numpy and the interpreter, so the same file runs in the
main venv (``ai_edge_litert``) and in the small ``numpy<2`` venv (``tflite_runtime``) that
``make bench`` creates. Request (JSON): {"models": [{"key", "path", "input", "threads": [1, N],
"resolver": "default"|"reference"}], "warmup", "runs"}; ``input`` is an .npy file of float32
values that the runner quantizes with the model's own input scale/zero point when the input is
int8; timed runs are capped so they last about ``budget_s`` (default 3). Result (JSON): per model and thread count, latency samples in ms, the raw output, the
interpreter's name and version, and the process's peak RSS.

    python tflite_runner.py request.json result.json
"""
import json
import resource
import statistics
import sys
import time

import numpy as np


def load_interpreter():
    """(Interpreter class, OpResolverType or None, runtime name, version)."""
    try:
        from ai_edge_litert import interpreter as lit
        import ai_edge_litert
        version = getattr(ai_edge_litert, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v
            version = _v("ai-edge-litert")
        return lit.Interpreter, getattr(lit, "OpResolverType", None), "litert", version
    except ImportError:
        from tflite_runtime import interpreter as tfr
        import tflite_runtime
        return tfr.Interpreter, getattr(tfr, "OpResolverType", None), "tflite-runtime", tflite_runtime.__version__


def quantize_input(x, detail):
    """Float input -> the model's input dtype (int8/uint8 with its scale and zero point)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def percentile(samples, q):
    """q-th percentile (linear interpolation, like numpy's default)."""
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def run_model(spec, warmup, runs, budget_s=3.0):
    Interpreter, Resolver, name, version = load_interpreter()
    x = np.load(spec["input"]).astype(np.float32)
    results = []
    for threads in spec.get("threads", [1]):
        kwargs = {"model_path": spec["path"], "num_threads": int(threads)}
        if spec.get("resolver") == "reference":
            if Resolver is None:
                raise RuntimeError(f"{name} {version} has no OpResolverType: cannot select reference kernels")
            kwargs["experimental_op_resolver_type"] = Resolver.BUILTIN_REF
        interp = Interpreter(**kwargs)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        xq = quantize_input(x.reshape(inp["shape"]), inp)
        t0 = time.perf_counter()
        for _ in range(max(1, warmup)):
            interp.set_tensor(inp["index"], xq)
            interp.invoke()
        per_call = (time.perf_counter() - t0) / max(1, warmup)
        n_runs = int(max(min(runs, 10), min(runs, budget_s / per_call))) if per_call > 0 else runs
        samples = []
        for _ in range(n_runs):
            t0 = time.perf_counter()
            interp.set_tensor(inp["index"], xq)
            interp.invoke()
            samples.append((time.perf_counter() - t0) * 1e3)
        y = interp.get_tensor(out["index"])
        scale, zero = out["quantization"]
        results.append({
            "key": spec["key"], "threads": int(threads), "resolver": spec.get("resolver", "default"),
            "runtime": name, "version": version, "runs": n_runs, "warmup": warmup,
            "median_ms": statistics.median(samples), "p90_ms": percentile(samples, 90),
            "output": y.reshape(-1).tolist(), "output_dtype": str(y.dtype),
            "output_scale": float(scale), "output_zero_point": int(zero),
            "input_dtype": str(np.dtype(inp["dtype"])),
        })
    return results


def peak_rss_bytes():
    """This process's peak resident set (VmHWM; ru_maxrss is inherited across exec on Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        request = json.load(fh)
    rows = []
    for spec in request["models"]:
        rows += run_model(spec, int(request.get("warmup", 10)), int(request.get("runs", 100)),
                          float(request.get("budget_s", 3.0)))
    peak = peak_rss_bytes()
    with open(argv[1], "w") as fh:
        json.dump({"results": rows, "peak_rss_bytes": peak, "python": sys.version.split()[0],
                   "numpy": np.__version__}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
