"""Measurements quoted in docs/native_c.md: arena vs TFLM, host latency, Cortex-M4 emulated cycles.

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/native_c_measure.py  (about 1-2 minutes)
Needs litert-torch, ai-edge-litert, tflite-micro, gcc, arm-none-eabi-gcc, unicorn (make toolchain).
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
torch.set_num_threads(1)


class EveryOpNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c6 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, padding=1)
        self.dw, self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 1)
        self.fc, self.fc2 = nn.Linear(8 * 3 * 3, 12), nn.Linear(12, 5)

    def forward(self, x):
        x = F.relu6(self.c6(F.relu(self.c1(x))))
        y = F.relu(self.dw(x))
        z = F.adaptive_avg_pool2d(F.max_pool2d(F.relu(self.c2(y) + y), 3, stride=2, padding=1), 3)
        return self.fc2(F.relu(self.fc(torch.flatten(z, 1))))


def convert(model, shape, path):
    import litert_torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    x = torch.randn(1, *shape)
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    g = prepare_pt2e(torch.export.export(model.eval(), (x,)).module(), q)
    for _ in range(16):
        g(torch.randn(1, *shape))
    g = convert_pt2e(g, fold_quantize=False)
    litert_torch.convert(g, (x,), quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
    return path


def median_us(fn, n=300):
    for _ in range(20):
        fn()
    ts = []
    for _ in range(n):
        a = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - a)
    return float(np.median(ts)) * 1e6


def main():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    from benchmarks.mcu.costmodel import cost_model
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf, compiler_version
    from firmware_export.targets.c import build_c, compile_harness
    from firmware_export.targets.tflm import measure_arena
    from toys import AllOpsNet

    tmp = Path(tempfile.mkdtemp(prefix="native_c_measure_"))
    print("arm-none-eabi-gcc:", compiler_version())
    for name, model, shape in [("everyop", EveryOpNet(), (3, 13, 13)), ("allopsnet", AllOpsNet(), (1, 12, 12))]:
        path = convert(model, shape, tmp / f"{name}.tflite")
        cm = build_c(path, tmp / name, name=name)
        x = np.random.default_rng(0).integers(-128, 128, size=(1,) + tuple(cm.input_shape), dtype=np.int8)
        host = {opt: cm.time_invoke(x, 3000) * 1e6 if opt == "-O2" else None for opt in ("-O2", "-O3")}
        import subprocess
        exe = compile_harness(cm.out_dir, name, ("-O3",))
        (tmp / "x.bin").write_bytes(x.tobytes())
        out = subprocess.run([str(exe), str(tmp / "x.bin"), str(tmp / "y.bin"), "1", "3000"], capture_output=True,
                             text=True, check=True).stdout
        host["-O3"] = float(out.split()[-1]) / 1e3
        buf = path.read_bytes()
        arena = measure_arena(buf, x)
        tflm = runtime.Interpreter.from_bytes(buf, arena_size=arena)

        def run_tflm():
            tflm.set_input(x, 0)
            tflm.invoke()

        lite = {}
        for kind, kw in [("ref", dict(experimental_op_resolver_type=OpResolverType.BUILTIN_REF)), ("xnnpack", {})]:
            it = Interpreter(model_path=str(path), num_threads=1, **kw)
            it.allocate_tensors()
            idx = it.get_input_details()[0]["index"]
            lite[kind] = median_us(lambda: (it.set_tensor(idx, x), it.invoke()))
        t_tflm = median_us(run_tflm)
        print(f"{name}: {cm.macs} MACs; arena C {cm.arena_bytes} B vs TFLM {arena} B ({cm.arena_bytes / arena:.2f}x); "
              f"host us: C -O2 {host['-O2']:.1f}, C -O3 {host['-O3']:.1f}, TFLM {t_tflm:.1f}, "
              f"LiteRT ref {lite['ref']:.1f}, XNNPACK {lite['xnnpack']:.1f}")
        for variant in ("native-c-dsp", "native-c"):
            b = build_elf(cm.out_dir, "cortex-m4", "-O2", name=name, variant=variant, out_dir=tmp / f"{name}-{variant}")
            t = Emulator.from_elf(b.elf, "cortex-m4").call(f"{name}_invoke", x.tobytes(), bytes(cm.output_size),
                                                           outputs=[(1, cm.output_size)])
            assert np.array_equal(np.frombuffer(t.outputs[0], np.int8), cm.predict_int8(x).reshape(-1))
            cyc = t.cycles(cost_model("cortex-m4"))
            print(f"   cortex-m4 -O2 {variant}: flash {b.flash_bytes} B, RAM {b.ram_bytes} B, {t.instructions} "
                  f"instructions, ~{cyc} cycles ({cyc / cm.macs:.2f}/MAC; SMLAD bound 0.5), {cyc / 80e3:.2f} ms @ 80 MHz")


if __name__ == "__main__":
    main()
