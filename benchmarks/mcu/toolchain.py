"""Cross-compile a generated C export for Cortex-M cores and read flash/RAM from the linked ELF.

The compiler is ``arm-none-eabi-gcc`` (Debian ``gcc-arm-none-eabi``, ``make toolchain``). Code is
freestanding (``-ffreestanding -nostdlib ... -lgcc``); ``startup.c`` here gives the vector table,
the reset handler and memset/memcpy. A small harness per export calls the inference function on
static buffers, so the image is what a firmware would link: model data, code, buffers, arena.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError
from edgekd.log import logger

HERE = Path(__file__).resolve().parent
LINKER_SCRIPT = HERE / "cortexm.ld"
STARTUP = HERE / "startup.c"
FLASH_BASE, RAM_BASE = 0x08000000, 0x20000000

COMMON_FLAGS = ("-mthumb", "-std=c99", "-ffreestanding", "-nostdlib", "-ffunction-sections",
                "-fdata-sections", "-fno-tree-loop-distribute-patterns", "-Wall")


@dataclass(frozen=True)
class Core:
    """One Cortex-M core: compiler flags, the unicorn CPU model and the clock used for latency."""

    name: str
    flags: tuple[str, ...]
    unicorn_model: str          # name of the UC_CPU_ARM_* constant
    clock_mhz: float            # stated clock for latency (a typical part; see docs/benchmarks.md)
    dsp: bool                   # has the DSP extension (SMLAD: 2 int8 MACs per cycle)
    part: str = ""


CORES = {
    # Unicorn has no M0+ model; the M0 runs the same ARMv6-M instruction set.
    "cortex-m0plus": Core("cortex-m0plus", ("-mcpu=cortex-m0plus", "-mfloat-abi=soft"),
                          "UC_CPU_ARM_CORTEX_M0", 48.0, False, "e.g. STM32G0/RP2040 class"),
    "cortex-m4": Core("cortex-m4", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                      "UC_CPU_ARM_CORTEX_M4", 80.0, True, "e.g. STM32L4 at 80 MHz"),
    "cortex-m7": Core("cortex-m7", ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                      "UC_CPU_ARM_CORTEX_M7", 216.0, True, "e.g. STM32F7 at 216 MHz"),
    "cortex-m33": Core("cortex-m33", ("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
                       "UC_CPU_ARM_CORTEX_M33", 110.0, True, "e.g. STM32L5 at 110 MHz"),
}
OPT_LEVELS = ("-O2", "-Os")
# Plain C on a DSP core: hide the feature macro so the export's `#if __ARM_FEATURE_DSP` path is off.
NO_DSP_FLAGS = ("-U__ARM_FEATURE_DSP",)


def find_compiler(name="arm-none-eabi-gcc") -> str | None:
    """Path of the cross compiler, or None where it is not installed."""
    return shutil.which(name)


def compiler_version(compiler=None) -> str | None:
    """First line of ``--version`` (instruction counts change with it, so every record carries it)."""
    compiler = compiler or find_compiler()
    if not compiler:
        return None
    out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0].strip() if out.stdout else None


def header_constants(header: Path) -> dict[str, int]:
    """Integer ``#define NAME value`` constants of a generated header (e.g. MODEL_INPUT_SIZE)."""
    text = Path(header).read_text()
    pattern = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)\s+\(?\s*(-?(?:0x[0-9a-fA-F]+|\d+))[uUlL]*\s*\)?\s*$", re.M)
    return {m.group(1): int(m.group(2), 0) for m in pattern.finditer(text)}


@dataclass(frozen=True)
class Entry:
    """How a generated model is called: ``kind`` "nn" (``{name}_invoke(in..., out...)``, one pointer per
    graph input and output) or "ldc" (``{name}_predict(levels)``), with the buffer sizes read from ``{name}.h``.
    ``input_size`` / ``output_size``: the first input's and the first output's; ``input_sizes`` /
    ``output_sizes``: every one, in the header's order."""

    name: str
    kind: str
    input_size: int
    output_size: int = 0
    input_ctype: str = "int8_t"
    constants: dict = field(default_factory=dict, compare=False, hash=False)
    input_sizes: tuple = ()
    output_sizes: tuple = ()

    def __post_init__(self):
        if not self.input_sizes:
            object.__setattr__(self, "input_sizes", (self.input_size,))
        if not self.output_sizes and self.output_size:
            object.__setattr__(self, "output_sizes", (self.output_size,))

    @property
    def function(self) -> str:
        return f"{self.name}_invoke" if self.kind == "nn" else f"{self.name}_predict"

    def buffers(self, kind: str) -> list[str]:
        """Names of the harness's static buffers: ``bench_input`` / ``bench_output``, indexed when several."""
        sizes = self.input_sizes if kind == "input" else self.output_sizes
        return [f"bench_{kind}"] if len(sizes) == 1 else [f"bench_{kind}{k}" for k in range(len(sizes))]

    def harness(self) -> str:
        """C source of ``bench_main``: the call a firmware would make, on static buffers."""
        if self.kind == "nn":
            decls = [f"int8_t {b}[{n}] __attribute__((aligned(4)));\n"
                     for kind, sizes in (("input", self.input_sizes), ("output", self.output_sizes))
                     for b, n in zip(self.buffers(kind), sizes)]
            args = ", ".join(self.buffers("input") + self.buffers("output"))
            return (f'#include <stdint.h>\n#include "{self.name}.h"\n' + "".join(decls)
                    + f"volatile int bench_status;\n"
                    f"void bench_main(void) {{ bench_status = {self.function}({args}); }}\n")
        return (f'#include <stdint.h>\n#include "{self.name}.h"\n'
                f"uint8_t bench_input[{self.input_size}] __attribute__((aligned(4)));\n"
                f"volatile int bench_status;\n"
                f"void bench_main(void) {{ bench_status = {self.function}(bench_input); }}\n")

    def call_args(self, inputs) -> tuple[list, list]:
        """(arguments, outputs) for ``Emulator.call(entry.function, *arguments, outputs=outputs)``: each
        input's bytes, then a zeroed buffer per output, read back after the call (one array per input)."""
        inputs = [bytes(x) if isinstance(x, (bytes, bytearray)) else np.ascontiguousarray(x, np.int8).tobytes()
                  for x in inputs]
        if [len(x) for x in inputs] != list(self.input_sizes):
            raise EdgeKDError(f"{self.function}: inputs of {[len(x) for x in inputs]} bytes, expected "
                              f"{list(self.input_sizes)}")
        if len(inputs) + len(self.output_sizes) > 4:
            raise EdgeKDError(f"{self.function} takes {len(inputs) + len(self.output_sizes)} pointers; the emulator "
                              "passes at most 4 register arguments (call bench_main instead)")
        args = inputs + [bytes(n) for n in self.output_sizes]
        return args, [(len(inputs) + k, n) for k, n in enumerate(self.output_sizes)]


def _sizes(consts, up, kind) -> tuple:
    """Sizes of the header's inputs or outputs: {UP}_{KIND}_SIZE, or {UP}_{KIND}0_SIZE, ... for several."""
    n = consts.get(f"{up}_NUM_{kind}S", 1)
    if n == 1 and f"{up}_{kind}_SIZE" in consts:
        return (consts[f"{up}_{kind}_SIZE"],)
    return tuple(consts[f"{up}_{kind}{k}_SIZE"] for k in range(n) if f"{up}_{kind}{k}_SIZE" in consts)


def read_entry(src_dir, name="model", kind=None) -> Entry:
    """Entry of an export folder from its header: nn if it has ``{NAME}_INPUT_SIZE`` (or ``{NAME}_INPUT0_SIZE``
    for several inputs), ldc if ``{NAME}_NUM_FEATURES``."""
    header = Path(src_dir) / f"{name}.h"
    if not header.is_file():
        raise EdgeKDError(f"{header}: missing header of the C export (expected {name}.h in {src_dir})")
    consts = header_constants(header)
    up = name.upper()
    ins, outs = _sizes(consts, up, "INPUT"), _sizes(consts, up, "OUTPUT")
    if kind in (None, "nn") and ins:
        return Entry(name, "nn", ins[0], outs[0] if outs else 0, "int8_t", consts, ins, outs)
    if kind in (None, "ldc") and f"{up}_NUM_FEATURES" in consts:
        return Entry(name, "ldc", consts[f"{up}_NUM_FEATURES"], 0, "uint8_t", consts)
    raise EdgeKDError(f"{header}: expected #define {up}_INPUT_SIZE (nn) or {up}_NUM_FEATURES (ldc)")


@dataclass
class Build:
    """A linked ELF and its sizes (bytes)."""

    elf: Path
    core: str
    opt: str
    variant: str
    sections: dict[str, int]
    flash_bytes: int
    ram_bytes: int          # .data + .bss (static buffers, arena if static); stack measured separately
    command: list[str]


def elf_sizes(elf) -> tuple[dict[str, int], int, int]:
    """Section sizes of a linked ELF and (flash, static RAM) the way arm-none-eabi-size adds them."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    sections, flash, ram = {}, 0, 0
    with open(elf, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            if not sec["sh_flags"] & SH_FLAGS.SHF_ALLOC or sec["sh_size"] == 0:
                continue
            size, addr = sec["sh_size"], sec["sh_addr"]
            sections[sec.name] = size
            in_ram = addr >= RAM_BASE
            if sec["sh_type"] != "SHT_NOBITS":
                flash += size           # code, constants, and the .data initial values
            if in_ram:
                ram += size
    return sections, flash, ram


def build_elf(src_dir, core: str, opt="-O2", *, name="model", kind=None, variant="native-c-dsp",
              out_dir=None, compiler=None, extra_flags=(), verbose=None) -> Build:
    """Compile every ``*.c`` of an export folder + startup + harness into a bare-metal ELF."""
    compiler = compiler or find_compiler()
    if not compiler:
        raise EdgeKDError("arm-none-eabi-gcc not found: run `make toolchain` (apt gcc-arm-none-eabi)")
    if core not in CORES:
        raise EdgeKDError(f"Invalid value for the 'core' parameter. Allowed values are {sorted(CORES)}, "
                          f"but got {core!r} instead.")
    src_dir = Path(src_dir)
    entry = read_entry(src_dir, name, kind)
    flags = list(COMMON_FLAGS) + list(CORES[core].flags) + [opt] + list(extra_flags)
    if variant == "native-c" and CORES[core].dsp:
        flags += NO_DSP_FLAGS
    key = hashlib.sha1(repr((sorted(str(p) for p in src_dir.glob("*.c")), flags)).encode()).hexdigest()[:8]
    out_dir = Path(out_dir or src_dir / "build")
    out_dir.mkdir(parents=True, exist_ok=True)
    harness = out_dir / f"harness_{entry.name}.c"
    harness.write_text(entry.harness())
    elf = out_dir / f"{entry.name}-{core}{opt}-{variant}-{key}.elf"
    sources = sorted(str(p) for p in src_dir.glob("*.c"))
    cmd = [compiler, *flags, f"-I{src_dir}", *sources, str(STARTUP), str(harness),
           f"-T{LINKER_SCRIPT}", "-Wl,--gc-sections", "-o", str(elf), "-lgcc"]
    logger.info(" ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise EdgeKDError(f"{src_dir}: cross build for {core} {opt} failed:\n{res.stderr.strip()[-2000:]}")
    sections, flash, ram = elf_sizes(elf)
    return Build(elf, core, opt, variant, sections, flash, ram, cmd)
