"""Cycles per element of the native C target's newer int8 kernels (edgekd_nn_ops.c), quoted in
docs/native_c.md: single-op graphs, cross-compiled, run in the unicorn emulator (benchmarks/mcu),
cycles from its per-core cost model (an estimate, not a board). Each result is also checked
against TFLite Micro on the host.

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/native_c_ops_measure.py  (about 1 minute)
Needs ai-edge-litert, tflite-micro, gcc, arm-none-eabi-gcc, unicorn, capstone, pyelftools.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "export")]

import test_c_ops as T  # noqa: E402  (its .tflite writer and TFLM runner)

SHAPE = (1, 16, 16, 16)   # 4,096 elements
OP, OPT, fb = T.OP, T.OPT, T.fb


def graphs():
    """(label, model bytes, elements counted) per kernel."""
    q, q2 = (0.04, 3), (0.03, -5)
    # LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU: one table lookup per element (ekd_lut_s8)
    yield "LOGISTIC", T.unary_graph(OP.LOGISTIC, SHAPE, q, (1 / 256, -128)), 4096
    yield "TANH", T.unary_graph(OP.TANH, SHAPE, q, (1 / 128, 0)), 4096
    yield "HARD_SWISH", T.unary_graph(OP.HARD_SWISH, SHAPE, q, (0.03, -100)), 4096
    yield "LEAKY_RELU", T.unary_graph(OP.LEAKY_RELU, SHAPE, q, (0.03, -30), OPT.LeakyReluOptions,
                                      T.opts(fb.LeakyReluOptionsT, alpha=0.1)), 4096
    yield "RELU (requantize, for comparison)", T.unary_graph(OP.RELU, SHAPE, q, (0.02, -128)), 4096
    # binary ops with a constant second operand: the benchmark harness calls single-input models
    c_full = np.random.default_rng(1).integers(-128, 128, size=SHAPE, dtype=np.int8)
    c_vec = np.random.default_rng(2).integers(-128, 128, size=(1, 1, 1, 16), dtype=np.int8)
    yield "MUL same shape", T.binary_graph([(OP.MUL, (0.05, 2))], SHAPE, SHAPE, SHAPE, q, q2, const_b=c_full), 4096
    yield "MUL [1,H,W,C] x [1,1,1,C]", T.binary_graph([(OP.MUL, (0.05, 2))], SHAPE, (1, 1, 1, 16), SHAPE, q, q2,
                                                                  const_b=c_vec), 4096
    yield "ADD same shape", T.binary_graph([(OP.ADD, (0.07, 2))], SHAPE, SHAPE, SHAPE, q, q2, const_b=c_full), 4096
    yield "ADD [1,H,W,C] + [1,1,1,C]", T.binary_graph([(OP.ADD, (0.07, 2))], SHAPE, (1, 1, 1, 16), SHAPE, q, q2,
                                                                  const_b=c_vec), 4096
    yield "SUB [1,H,W,C] - [1,1,1,C]", T.binary_graph([(OP.SUB, (0.07, 2))], SHAPE, (1, 1, 1, 16), SHAPE, q, q2,
                                                                  const_b=c_vec), 4096
    yield "MEAN over H, W (per input element)", T.mean_graph(SHAPE, [1, 2], True, q, (0.01, 0)), 4096
    yield "SOFTMAX rows of 10", T.unary_graph(OP.SOFTMAX, (1, 400, 10), q, (1 / 256, -128), OPT.SoftmaxOptions,
                                              T.opts(fb.SoftmaxOptionsT, beta=1.0)), 4000
    yield "SOFTMAX one row of 100", T.unary_graph(OP.SOFTMAX, (1, 100), q, (1 / 256, -128), OPT.SoftmaxOptions,
                                                  T.opts(fb.SoftmaxOptionsT, beta=1.0)), 100
    yield "CONCATENATION on channels (per output element)", T.concat_graph([(1, 16, 16, 8), (1, 16, 16, 8)], 3,
                                                                            const_index=1), 4096


def main():
    from benchmarks.mcu.costmodel import cost_model
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf, compiler_version
    from firmware_export.targets.c import build_c

    tmp = Path(tempfile.mkdtemp(prefix="ops_measure_"))
    rng = np.random.default_rng(0)
    cores = ["cortex-m4", "cortex-m0plus"]
    print(compiler_version())
    print("| kernel | " + " | ".join(f"{c} -O2 cycles/element" for c in cores) + " |")
    print("|---|" + "---|" * len(cores))
    for k, (label, model, n) in enumerate(graphs()):
        path = tmp / f"m{k}.tflite"
        path.write_bytes(model)
        cm = build_c(path, tmp / f"c{k}", name=f"m{k}")
        xs = T.inputs_for(path, rng, n=1)
        x = [xk[0] for xk in xs]
        ref = T.tflm_outputs(path, [xk[:1] for xk in xs])[0][0]
        row = []
        for core in cores:
            build = build_elf(cm.out_dir, core, "-O2", name=cm.name, out_dir=tmp / f"elf{k}")
            emu = Emulator.from_elf(build.elf, core)
            args = [xi.tobytes() for xi in x] + [bytes(cm.output_size)]
            t = emu.call(f"{cm.name}_invoke", *args, outputs=[(len(x), cm.output_size)])
            assert t.returned == 0
            assert np.array_equal(np.frombuffer(t.outputs[0], np.int8), ref.reshape(-1)), (label, core)
            row.append(f"{t.cycles(cost_model(core)) / n:.1f}")
        print(f"| {label} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
