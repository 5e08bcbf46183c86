"""Run a bare-metal Cortex-M function in the unicorn emulator and count what it executes.

A BLOCK hook counts executions of each translated block (a per-instruction hook would miss the
conditional instructions skipped inside IT blocks, which still take a cycle). Each block is
disassembled once with capstone and cached by (address, size); after the run, counts x classes
give the instruction mix and a :class:`~benchmarks.mcu.costmodel.CostModel` turns it into cycles.
A block whose successor is not its fall-through address ended in a taken branch.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from edgekd.errors import EdgeKDError

from .costmodel import CLASSES, CostModel, Insn, classify
from .toolchain import CORES

SCRATCH_BASE = 0x2F000000        # arguments and stack (outside the image's own RAM)
SCRATCH_SIZE = 0x40000
STACK_PAINT = 0xA5
STOP_ADDRESS = SCRATCH_BASE + 0x100   # LR points here: reaching it ends the call
PAGE = 0x1000


def _align(n, a=PAGE):
    return (n + a - 1) // a * a


@dataclass
class Trace:
    """What one emulated call did."""

    returned: int
    outputs: list[bytes]
    instructions: int
    mix: dict[str, int]
    taken_branches: int
    not_taken_branches: int
    stack_bytes: int
    seconds: float
    blocks: dict = field(repr=False, default_factory=dict)   # (addr, size) -> [insns, count, taken]

    def cycles(self, model: CostModel) -> int:
        """Estimated cycles under a per-core cost model (see costmodel.py: an estimate)."""
        return sum(model.cycles_of(insns, count, taken) for insns, count, taken in self.blocks.values())


class Emulator:
    """Memory image (segments) + symbols for one core; :meth:`call` runs a function in it."""

    def __init__(self, segments, symbols, core="cortex-m4"):
        if core not in CORES:
            raise EdgeKDError(f"Invalid value for the 'core' parameter. Allowed values are {sorted(CORES)}, "
                              f"but got {core!r} instead.")
        self.segments = [(int(a), bytes(d), int(m)) for a, d, m in segments]   # (addr, data, memsz)
        self.symbols = dict(symbols)
        self.functions: list[tuple[int, int, str]] = []     # (start, end, name), Thumb bit cleared
        self.core = core
        self._decoded: dict = {}
        from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs
        self._cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
        self._cs.detail = True

    @classmethod
    def from_elf(cls, elf, core="cortex-m4"):
        """Load the allocated sections of a linked ELF (addresses as linked) and its symbols."""
        from elftools.elf.constants import SH_FLAGS
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        segments, symbols, functions = [], {}, []
        with open(elf, "rb") as fh:
            f = ELFFile(fh)
            for sec in f.iter_sections():
                if sec["sh_flags"] & SH_FLAGS.SHF_ALLOC and sec["sh_size"]:
                    data = b"" if sec["sh_type"] == "SHT_NOBITS" else sec.data()
                    segments.append((sec["sh_addr"], data, sec["sh_size"]))
                if isinstance(sec, SymbolTableSection):
                    for sym in sec.iter_symbols():
                        if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                            symbols[sym.name] = sym["st_value"]
                        if sym.name and sym["st_info"]["type"] == "STT_FUNC" and sym["st_size"]:
                            start = sym["st_value"] & ~1
                            functions.append((start, start + sym["st_size"], sym.name))
        if not segments:
            raise EdgeKDError(f"{elf}: no loadable sections")
        em = cls(segments, symbols, core)
        em.functions = sorted(functions)
        return em

    def profile(self, trace: "Trace", model: CostModel | None = None) -> dict[str, int]:
        """Cycles (or instructions without a cost model) per function, largest first."""
        import bisect

        starts = [f[0] for f in self.functions]
        totals: dict[str, int] = defaultdict(int)
        for (addr, _), (insns, count, taken) in trace.blocks.items():
            i = bisect.bisect_right(starts, addr) - 1
            name = self.functions[i][2] if i >= 0 and addr < self.functions[i][1] else f"0x{addr:08x}"
            if model is None:
                totals[name] += count * len(insns)
            else:
                totals[name] += model.cycles_of(insns, count, taken)
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def _new_uc(self):
        from unicorn import UC_ARCH_ARM, UC_MODE_MCLASS, UC_MODE_THUMB, Uc, arm_const

        uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(getattr(arm_const, CORES[self.core].unicorn_model))
        regions = []
        for addr, _, memsz in self.segments:
            lo, hi = addr // PAGE * PAGE, _align(addr + memsz)
            regions.append([lo, hi])
        regions.sort()
        merged = []
        for lo, hi in regions:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            uc.mem_map(lo, hi - lo)
        for addr, data, _ in self.segments:
            if data:
                uc.mem_write(addr, data)
        uc.mem_map(SCRATCH_BASE, SCRATCH_SIZE)
        return uc

    def _decode(self, uc, address, size):
        code = bytes(uc.mem_read(address, size))
        insns, used = [], 0
        for ins in self._cs.disasm(code, address):
            insns.append(classify(ins))
            used += ins.size
        if used < size:          # undecodable tail: count halfwords as ALU so nothing is lost
            insns += [Insn("alu", text="?")] * ((size - used) // 2)
        return tuple(insns)

    def call(self, function, *args, outputs=(), timeout_s=120.0) -> "Trace":
        """Call ``function`` (symbol or address) with int or bytes arguments (bytes are copied to
        scratch RAM and passed by pointer). ``outputs``: list of (arg index, nbytes) to read back
        after the call. Returns a :class:`Trace`."""
        from unicorn import UC_HOOK_BLOCK, UcError, arm_const

        addr = self.symbols.get(function) if isinstance(function, str) else function
        if addr is None:
            raise EdgeKDError(f"symbol {function!r} not found in the image (have: {sorted(self.symbols)[:20]}...)")
        if len(args) > 4:
            raise EdgeKDError("at most 4 register arguments are supported")
        uc = self._new_uc()
        cursor, values, pointers = SCRATCH_BASE + 0x200, [], {}
        for i, arg in enumerate(args):
            if isinstance(arg, (bytes, bytearray, memoryview)):
                data = bytes(arg)
                uc.mem_write(cursor, data)
                values.append(cursor)
                pointers[i] = cursor
                cursor = _align(cursor + len(data), 8)
            else:
                values.append(int(arg) & 0xFFFFFFFF)
        stack_lo, stack_top = _align(cursor, 16), SCRATCH_BASE + SCRATCH_SIZE
        if stack_top - stack_lo < 4096:
            raise EdgeKDError("arguments leave too little scratch RAM for the stack")
        uc.mem_write(stack_lo, bytes([STACK_PAINT]) * (stack_top - stack_lo))
        for reg, value in zip((arm_const.UC_ARM_REG_R0, arm_const.UC_ARM_REG_R1,
                               arm_const.UC_ARM_REG_R2, arm_const.UC_ARM_REG_R3), values):
            uc.reg_write(reg, value)
        uc.reg_write(arm_const.UC_ARM_REG_SP, stack_top - 8)
        uc.reg_write(arm_const.UC_ARM_REG_LR, STOP_ADDRESS | 1)

        counts, taken = defaultdict(int), defaultdict(int)
        last = [None, None]      # key of the previous block, its fall-through address

        def on_block(_uc, address, size, _data):
            key = (address, size)
            counts[key] += 1
            prev = last[0]
            if prev is not None and address != last[1]:
                taken[prev] += 1
            last[0], last[1] = key, address + size

        uc.hook_add(UC_HOOK_BLOCK, on_block)
        t0 = time.perf_counter()
        try:
            uc.emu_start(addr | 1, STOP_ADDRESS, timeout=int(timeout_s * 1e6))
        except UcError as err:
            pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
            raise EdgeKDError(f"emulation of {function} on {self.core} failed at pc=0x{pc:08x}: {err}") from err
        seconds = time.perf_counter() - t0
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
        if pc & ~1 != STOP_ADDRESS:
            raise EdgeKDError(f"emulation of {function} on {self.core} stopped at pc=0x{pc:08x} "
                              f"(timeout {timeout_s} s?) instead of returning")
        if last[0] is not None:
            taken[last[0]] += 1      # the final return jumped to the stop address

        blocks, mix = {}, dict.fromkeys(CLASSES, 0)
        n_insn = n_taken = n_not = 0
        for key, count in counts.items():
            insns = self._decoded.get(key)
            if insns is None:
                insns = self._decoded[key] = self._decode(uc, *key)
            blocks[key] = [insns, count, taken.get(key, 0)]
            n_insn += count * len(insns)
            for ins in insns:
                mix[ins.cls] += count
            if insns and insns[-1].writes_pc:
                n_taken += taken.get(key, 0)
                n_not += count - taken.get(key, 0)
        stack = bytes(uc.mem_read(stack_lo, stack_top - stack_lo))
        untouched = len(stack) - len(stack.lstrip(bytes([STACK_PAINT])))
        outs = [bytes(uc.mem_read(pointers[i], n)) for i, n in outputs]
        stack_bytes = max(0, (stack_top - 8) - (stack_lo + untouched))
        return Trace(uc.reg_read(arm_const.UC_ARM_REG_R0), outs, n_insn, mix, n_taken, n_not,
                     stack_bytes, seconds, blocks)


def emulate_elf(elf: Path, core: str, function: str, *args, outputs=()) -> Trace:
    """One call of ``function`` in a freshly loaded ELF."""
    return Emulator.from_elf(elf, core).call(function, *args, outputs=outputs)
