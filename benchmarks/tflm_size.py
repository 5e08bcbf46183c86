"""TFLite Micro on Cortex-M from its sources: the flash of a whole TFLM image (interpreter, the op
resolver with exactly the model's ops, the kernels, the model array) and one emulated inference.

The ``tflite-micro`` pip package ships the interpreter only as an x86-64 Python extension, so TFLM's
Cortex-M code size needs a source checkout: ``git clone https://github.com/tensorflow/tflite-micro``
then ``make -f tensorflow/lite/micro/tools/make/Makefile third_party_downloads`` (flatbuffers and
gemmlowp land in ``tensorflow/lite/micro/tools/make/downloads``). The C++ library needs newlib and
libstdc++ for arm-none-eabi (Debian: ``libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib``).

    python -m benchmarks.tflm_size model.tflite --tflm-src ~/tflite-micro [--core cortex-m4]

Flags follow TFLM's own ``cortex_m_generic`` release build (``-Os`` core, ``-O2`` kernels,
``-DTF_LITE_STATIC_MEMORY -DTF_LITE_STRIP_ERROR_STRINGS -DNDEBUG``, no RTTI or exceptions,
``--gc-sections``, newlib-nano), with the reference kernels (no CMSIS-NN). The emulated cycles use
the same cost model as the native C rows, so the two are compared on equal terms (both ESTIMATES).
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError

from .mcu.toolchain import CORES, elf_sizes, find_compiler

DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")
CXXFLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-fno-unwind-tables",
            "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections", "-fmessage-length=0",
            "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DNDEBUG", "-DTF_LITE_STRIP_ERROR_STRINGS",
            "-DTF_LITE_MCU_DEBUG_LOG", "-fomit-frame-pointer", "-fsigned-char", "-w")
# a runnable image: vector table, .data copy, .bss zero, C++ constructors, then the benchmark entry
STARTUP = r"""
#include <stdint.h>
extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
void bench_main(void);
void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
    bench_main();
    for (;;) {}
}
__attribute__((section(".isr_vector"), used)) void *const vectors[2] = {(void *)&_estack, (void *)Reset_Handler};
"""
LINKER = """ENTRY(Reset_Handler)
MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 4M  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 1M }
_estack = ORIGIN(RAM) + LENGTH(RAM);
SECTIONS {
  .isr_vector : { . = ALIGN(4); KEEP(*(.isr_vector)) . = ALIGN(4); } > FLASH
  .text : { . = ALIGN(4); *(.text .text.*) . = ALIGN(4); } > FLASH
  .rodata : { . = ALIGN(4); *(.rodata .rodata.*) . = ALIGN(4); } > FLASH
  .init_array : { __init_array_start = .; KEEP(*(SORT(.init_array.*))) KEEP(*(.init_array)) __init_array_end = .; } > FLASH
  .ARM.exidx : { *(.ARM.exidx* .gnu.linkonce.armexidx.*) } > FLASH
  _sidata = LOADADDR(.data);
  .data : { . = ALIGN(4); _sdata = .; *(.data .data.*) . = ALIGN(4); _edata = .; } > RAM AT > FLASH
  .bss (NOLOAD) : { . = ALIGN(4); _sbss = .; *(.bss .bss.* COMMON) . = ALIGN(4); _ebss = .; end = .; _end = .; } > RAM
  /DISCARD/ : { *(.comment) *(.ARM.attributes) *(.note*) }
}
"""
MAIN = r"""
#include <new>
#include <stdint.h>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

alignas(16) const uint8_t edgekd_model[] = {@MODEL@};
alignas(16) static uint8_t tensor_arena[@ARENA@];
alignas(8) static uint8_t resolver_mem[sizeof(tflite::MicroMutableOpResolver<@NOPS@>)];
alignas(8) static uint8_t interp_mem[sizeof(tflite::MicroInterpreter)];
static tflite::MicroInterpreter *interp;
int8_t bench_input[@IN@] __attribute__((aligned(4)));
int8_t bench_output[@OUT@] __attribute__((aligned(4)));
volatile int bench_status = -1;

extern "C" int tflm_setup(void) {
    auto *resolver = new (resolver_mem) tflite::MicroMutableOpResolver<@NOPS@>();
@ADDS@
    interp = new (interp_mem) tflite::MicroInterpreter(tflite::GetModel(edgekd_model), *resolver, tensor_arena,
                                                       sizeof(tensor_arena));
    return interp->AllocateTensors() == kTfLiteOk ? 0 : 1;
}

extern "C" int tflm_invoke(const int8_t *in, int8_t *out) {
    TfLiteTensor *x = interp->input(0);
    for (int i = 0; i < @IN@; ++i) x->data.int8[i] = in[i];
    if (interp->Invoke() != kTfLiteOk) return 2;
    TfLiteTensor *y = interp->output(0);
    for (int i = 0; i < @OUT@; ++i) out[i] = y->data.int8[i];
    return 0;
}

extern "C" int tflm_run(const int8_t *in, int8_t *out) {
    int status = tflm_setup();
    return status ? status : tflm_invoke(in, out);
}

extern "C" void bench_main(void) { bench_status = tflm_run(bench_input, bench_output); }

// a firmware without an OS: nothing is ever freed or exits
extern "C" void __cxa_pure_virtual() { for (;;) {} }
void operator delete(void *) noexcept {}
void operator delete(void *, unsigned int) noexcept {}
"""


# op -> the kernel file that registers it, where the name does not say (CONV_2D -> conv.cc does)
KERNEL_FILES = {"AVERAGE_POOL_2D": "pooling", "MAX_POOL_2D": "pooling", "MEAN": "reduce", "SUM": "reduce",
                "REDUCE_MAX": "reduce", "RELU": "activations", "RELU6": "activations", "LEAKY_RELU": "leaky_relu"}
KERNEL_HELPERS = ("kernel_util", "micro_tensor_utils", "conv_common")   # depthwise conv uses conv_common


def kernel_stems(ops) -> set[str]:
    """Kernel file stems for ``ops`` (their ``*_common.cc`` come along)."""
    return {KERNEL_FILES.get(op, op.lower().replace("_2d", "")) for op in ops} | set(KERNEL_HELPERS)


def library_sources(src: Path, ops=None) -> list[Path]:
    """TFLM's microlite sources (as its Makefile lists them), reference kernels, no tests; with
    ``ops``, only the kernels of those ops (the resolver references no others)."""
    src = Path(src)
    tf = src / "tensorflow"
    files = [p for p in tf.rglob("*.cc") if not str(p.relative_to(tf)).startswith(("lite/micro", "lite/experimental"))]
    files += [p for p in tf.rglob("*.c") if not str(p.relative_to(tf)).startswith(("lite/micro", "lite/experimental"))]
    micro = tf / "lite" / "micro"
    for sub in ("", "arena_allocator", "memory_planner", "tflite_bridge", "kernels"):
        files += sorted((micro / sub).glob("*.cc"))
    drop = ("_test.cc", "test_helpers.cc", "test_helper_custom_ops.cc", "fake_micro_context.cc", "mock_micro_graph.cc",
            "array.cc")
    files = [p for p in files if not p.name.endswith(drop) and "testing" not in p.parts]
    if ops is not None:
        stems = kernel_stems(ops)
        files = [p for p in files if p.parent.name != "kernels" or p.parent.parent.name != "micro"
                 or p.stem in stems or p.stem.removesuffix("_common") in stems]
    return sorted(files)


def _includes(src: Path) -> list[str]:
    d = Path(src) / DOWNLOADS
    for need in (d / "flatbuffers" / "include", d / "gemmlowp" / "fixedpoint"):
        if not need.exists():
            raise EdgeKDError(f"{need}: missing; run `make -f tensorflow/lite/micro/tools/make/Makefile "
                              "third_party_downloads` in the TFLM checkout first")
    return [f"-I{src}", f"-I{d / 'flatbuffers' / 'include'}", f"-I{d / 'gemmlowp'}", f"-I{d / 'ruy'}"]


def _cxx():
    cc = find_compiler()
    if not cc:
        raise EdgeKDError("arm-none-eabi-gcc not found (make toolchain)")
    return cc.replace("gcc", "g++")


def compile_library(src, core, out_dir, jobs=2, ops=None) -> list[Path]:
    """Object files of the TFLM library for ``core`` (cached: a second call compiles nothing); with
    ``ops``, only those ops' kernels."""
    src, out_dir = Path(src).resolve(), Path(out_dir)
    flags = [*CXXFLAGS, *CORES[core].flags, "-mthumb", *_includes(src)]
    key = hashlib.sha1(repr([f for f in flags if not f.startswith("-I")]).encode()).hexdigest()[:8]
    obj_dir = out_dir / f"obj-{core}-{key}"
    obj_dir.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> Path:
        rel = path.relative_to(src)
        obj = obj_dir / (str(rel).replace("/", "__") + ".o")
        if obj.exists():
            return obj
        opt = "-O2" if "kernels" in rel.parts else "-Os"           # TFLM: -Os core, -O2 kernels
        lang = ["-x", "c", "-std=c17"] if path.suffix == ".c" else []
        cmd = [_cxx() if not lang else find_compiler(), *[f for f in flags if not (lang and f.startswith(
            ("-std=c++", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe")))], opt, *lang, "-c", str(path),
            "-o", str(obj) + ".tmp"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise EdgeKDError(f"TFLM source {rel} did not build for {core}:\n{res.stderr.strip()[-1500:]}")
        Path(str(obj) + ".tmp").rename(obj)
        return obj

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, library_sources(src, ops)))


def _op_method(op: str) -> str:
    """TFLite builtin op name -> the MicroMutableOpResolver method (CONV_2D -> AddConv2D)."""
    return "Add" + "".join(part.capitalize() if not part[0].isdigit() else part.upper() for part in op.split("_"))


def build_image(tflite, src, core="cortex-m4", out_dir="build/tflm", arena_bytes=None, jobs=2, lib_dir=None) -> dict:
    """Link a TFLM firmware image for one .tflite; its sizes and the ELF path. The library's objects
    are cached in ``lib_dir`` (default ``out_dir``): share it between models."""
    from firmware_export.interp import tflm_module  # noqa: F401 - the tflite-micro package must be importable
    from firmware_export.targets.tflite import ops_in

    tflite, out_dir = Path(tflite), Path(out_dir)
    ops = ops_in(tflite)
    objs = compile_library(src, core, lib_dir or out_dir, jobs, ops)
    data = tflite.read_bytes()
    shapes = _io_sizes(tflite)
    arena = int(arena_bytes or _measured_arena(data)) + 1024        # the 32-bit target's own bookkeeping
    work = out_dir / f"{tflite.stem}-{core}"
    work.mkdir(parents=True, exist_ok=True)
    main = (MAIN.replace("@MODEL@", ",".join(str(b) for b in data)).replace("@ARENA@", str(arena))
            .replace("@NOPS@", str(len(ops))).replace("@IN@", str(shapes[0])).replace("@OUT@", str(shapes[1]))
            .replace("@ADDS@", "\n".join(f"    resolver->{_op_method(op)}();" for op in ops)))
    (work / "main.cc").write_text(main)
    (work / "startup.c").write_text(STARTUP)
    (work / "link.ld").write_text(LINKER)
    flags = [*CXXFLAGS, *CORES[core].flags, "-mthumb", *_includes(Path(src).resolve())]
    elf = work / f"tflm-{core}.elf"
    cmd = [_cxx(), *flags, "-Os", str(work / "main.cc"), "-x", "c", str(work / "startup.c"), "-x", "none", *map(str, objs),
           f"-T{work / 'link.ld'}", "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
           "-Wl,--gc-sections", "-o", str(elf), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise EdgeKDError(f"TFLM image for {tflite.name} did not link for {core}:\n{res.stderr.strip()[-2000:]}")
    sections, flash, ram = elf_sizes(elf)
    return {"elf": elf, "core": core, "flash_bytes": flash, "static_ram_bytes": ram, "model_array_bytes": len(data),
            "code_bytes": flash - len(data), "arena_bytes": arena, "ops": ops, "sections": sections,
            "input_size": shapes[0], "output_size": shapes[1]}


def _io_sizes(tflite) -> tuple[int, int]:
    from firmware_export.interp import tflm_module

    interp = tflm_module().Interpreter.from_file(str(tflite))
    return (int(np.prod(interp.get_input_details(0)["shape"])), int(np.prod(interp.get_output_details(0)["shape"])))


def _measured_arena(data: bytes) -> int:
    from firmware_export.targets.tflm import measure_arena

    from firmware_export.interp import tflm_module
    interp = tflm_module().Interpreter.from_bytes(data)
    shape = tuple(interp.get_input_details(0)["shape"])
    return measure_arena(data, np.zeros((1, *shape[1:]), np.int8))


def emulate(image: dict, x_q, timeout_s=1800.0) -> dict:
    """One TFLM inference in unicorn on int8 input codes ``x_q``: the output and the ESTIMATED cycles of
    the invoke alone (set-up + invoke minus set-up, both deterministic runs of the same code)."""
    from .mcu.costmodel import cost_model
    from .mcu.emulate import Emulator

    em = Emulator.from_elf(image["elf"], image["core"])
    if image["sections"].get(".init_array"):
        raise EdgeKDError(f"{image['elf']}: has C++ constructors ({image['sections']['.init_array']} B of .init_array)"
                          "; the emulation calls functions directly and would skip them")
    n_out = image["output_size"]
    data = np.ascontiguousarray(x_q, np.int8).reshape(-1).tobytes()
    setup = em.call("tflm_setup", timeout_s=timeout_s)
    if setup.returned != 0:
        raise EdgeKDError(f"{image['elf']}: TFLM AllocateTensors failed in emulation (status {setup.returned})")
    run = em.call("tflm_run", data, bytes(n_out), outputs=[(1, n_out)], timeout_s=timeout_s)
    if run.returned != 0:
        raise EdgeKDError(f"{image['elf']}: TFLM Invoke failed in emulation (status {run.returned})")
    model = cost_model(image["core"])
    out = {"output": np.frombuffer(run.outputs[0], np.int8).copy(),
           "instructions": run.instructions - setup.instructions, "stack_bytes": run.stack_bytes}
    if model is not None:
        out["cycles"] = run.cycles(model) - setup.cycles(model)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tflm_size", description=__doc__.splitlines()[0])
    p.add_argument("tflite", nargs="+")
    p.add_argument("--tflm-src", required=True, help="a tflite-micro checkout after its third_party_downloads")
    p.add_argument("--core", default="cortex-m4", choices=sorted(CORES))
    p.add_argument("--out", default="build/tflm")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    for path in args.tflite:
        img = build_image(path, args.tflm_src, args.core, args.out, jobs=args.jobs)
        print(f"{path}: flash {img['flash_bytes']:,} B (model array {img['model_array_bytes']:,} B, code and "
              f"constants {img['code_bytes']:,} B), static RAM {img['static_ram_bytes']:,} B, ops {', '.join(img['ops'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
