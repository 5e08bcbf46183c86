"""Measure the deploy generator (runs/generators/<dataset>/deploy_mlp.pt) as int8 native C.

Exports it with ``firmware_export.export(target="c")`` (calibrated on 256 Gaussian noise inputs, the
generator's input distribution), reads the parity record (C vs TFLite Micro must be 0 LSB), scores
FD-LeNet of the C outputs (dequantized) on the run's 2,000 evaluation noises next to the float
model, and cross-builds + emulates one call on Cortex-M4/M7 (instruction-set emulator with the
bench's cost model: the cycles are ESTIMATES). Writes one JSON.

Needs ``arm-none-eabi-gcc``:

    python -m benchmarks.generators_deploy runs/generators/digits8/deploy_mlp.pt reports/generators_deploy_c.json
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CLOCK_MHZ = {"cortex-m4": 120.0, "cortex-m7": 280.0}   # the boards benchmarks/mlperf.py reports against


def main(checkpoint, out_json, dataset="digits8"):
    from benchmarks.mcu.costmodel import cost_model
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf
    from edgekd.commands.generators import export_deploy_generator, score_export
    from edgekd.generative.run import evaluation_context, preset, to_image

    work = Path(tempfile.mkdtemp(prefix="deploy-c-"))
    t0 = time.perf_counter()
    art = export_deploy_generator(checkpoint, work / "c", target="c")
    res = {"checkpoint": str(checkpoint), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
           "export_s": round(time.perf_counter() - t0, 1), "parity": art.parity,
           "arena_bytes": art.config.get("arena_bytes"), "tflm_arena_bytes": art.config.get("tflm_arena_bytes"),
           "tflite_ops": art.config.get("tflite_ops"),
           "file_bytes": {f: (art.path / f).stat().st_size for f in art.config.get("files", [])
                          if (art.path / f).is_file()}}
    config = preset(dataset)
    scorer, noise = evaluation_context(config)
    shape = tuple(noise.shape[1:])
    res["c_int8"] = score_export(art, noise, scorer, shape)
    from edgekd.checkpoint import load_trained_model

    model, _ = load_trained_model(checkpoint)
    with torch.no_grad():
        res["float"] = scorer(to_image(model(noise).reshape(len(noise), *shape)))
    res["params"] = sum(p.numel() for p in model.parameters())
    # the emulated call takes an int8 input: the first evaluation noise, quantized with the export's scale
    scale, zero = art.config["input_quant"][:2]
    x0 = np.clip(np.round(noise[0].numpy().reshape(-1) / scale) + zero, -128, 127).astype(np.int8)
    name = art.config["name"]
    n_out = int(np.prod(shape))
    # the host C's int8 output on the same input (from its dequantized output: exact round trip)
    oscale, ozero = art.config["output_quant"][:2]
    host_q = np.round(np.asarray(art.predict(noise[:1].numpy())).reshape(-1) / oscale + ozero).astype(np.int8)
    res["cores"] = {}
    for core in ("cortex-m4", "cortex-m7"):
        b = build_elf(art.path, core, "-O2", name=name, variant="native-c-dsp", out_dir=work / f"{core}-O2")
        em = Emulator.from_elf(b.elf, core)
        t = em.call(f"{name}_invoke", x0.tobytes(), bytes(n_out), outputs=[(1, n_out)], timeout_s=1800.0)
        model_c = cost_model(core)
        cycles = t.cycles(model_c) if model_c is not None else None
        res["cores"][core] = {"flash_bytes": b.flash_bytes, "static_ram_bytes": b.ram_bytes,
                              "stack_bytes": t.stack_bytes, "instructions": t.instructions, "cycles": cycles,
                              "clock_mhz": CLOCK_MHZ[core], "estimate": True,
                              "ms": cycles / (CLOCK_MHZ[core] * 1e3) if cycles else None,
                              "cost_model": model_c.source if model_c is not None else None,
                              "output_equals_host_c": bool(np.array_equal(np.frombuffer(t.outputs[0], np.int8),
                                                                          host_q))}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: res[k] for k in ("arena_bytes", "tflm_arena_bytes", "file_bytes", "c_int8", "float",
                                           "cores")}, indent=1, default=str))
    print("parity:", {k: (v.get("max_lsb_diff"), v.get("exact_fraction"), v["passed"])
                      for k, v in art.parity["checks"].items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
