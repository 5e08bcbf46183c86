"""Instruction classes (capstone) and per-core cycle cost models for emulated Cortex-M code.

The models are simple in-order tables after the Cortex-M technical reference manuals; the
cycle counts they give are ESTIMATES (no wait states, no bus contention, no flash accelerator):

Cortex-M4 (ARM DDI 0439, table 3-1; also used for the M33, whose pipeline is also 3 stages):
  data processing 1; MUL/MLA/SMLAD/SMULL... 1; SDIV/UDIV 2..12 (we take 7); LDR 2, or 1 when
  the previous instruction was a load (loads pipeline); STR 1 (write buffer); LDM/STM/PUSH/POP
  1+N; LDRD/STRD 1+2; a taken branch or a write to PC adds P = 2 (pipeline refill, 1..3 in the
  TRM); TBB/TBH 2+1+P; IT 1 (it is often folded to 0: our number is an upper bound); VFP 1,
  VDIV/VSQRT 14, VLDR 2, VLDM/VPUSH/VPOP 1+N.
Cortex-M0+ (ARM DDI 0484, ARMv6-M, 2-stage pipeline, fast single-cycle multiplier option):
  data processing 1; MULS 1; LDR/STR 2; LDM/STM/PUSH/POP 1+N; taken branch 2 (P = 1), BL 3,
  BX/BLX 2, POP {..,pc} 3+N.
Cortex-M7: dual issue with branch prediction; no simple table fits, so only instruction counts
  are reported.

The estimate ignores address-generation interlocks (a load whose address comes from the
previous instruction) and memory wait states; both make real cycles higher.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from capstone import arm as csarm

CLASSES = ("alu", "mul", "div", "load", "store", "ldm", "stm", "branch", "table_branch",
           "it", "fpu", "fpu_div", "fpu_load", "fpu_store", "fpu_ldm", "fpu_stm")

_MUL = re.compile(r"^(MUL|MLA|MLS|[SU]MULL|[SU]MLAL|UMAAL|SM(LA|LS|UA|US|UL|ML|MU)\w*)$")
_BRANCH = {"B", "BL", "BX", "BLX", "CBZ", "CBNZ"}
_ID_NAMES = {getattr(csarm, n): n[len("ARM_INS_"):] for n in dir(csarm) if n.startswith("ARM_INS_")}


@dataclass(frozen=True)
class Insn:
    """One decoded instruction: its class, register count (LDM/STM) and whether it writes PC."""

    cls: str
    nregs: int = 1
    writes_pc: bool = False
    text: str = ""
    name: str = ""


def _class_of(name: str) -> str:
    if name == "IT":
        return "it"
    if name.startswith("V"):
        if name in ("VLDR",):
            return "fpu_load"
        if name in ("VSTR",):
            return "fpu_store"
        if name.startswith("VLDM") or name == "VPOP":
            return "fpu_ldm"
        if name.startswith("VSTM") or name == "VPUSH":
            return "fpu_stm"
        if name in ("VDIV", "VSQRT"):
            return "fpu_div"
        return "fpu"
    if name in ("TBB", "TBH"):
        return "table_branch"
    if name in _BRANCH:
        return "branch"
    if name.startswith("LDM") or name == "POP" or name == "LDRD":
        return "ldm"
    if name.startswith("STM") or name == "PUSH" or name == "STRD":
        return "stm"
    if name.startswith("LDR") or name.startswith("LDA") or name == "PLD":
        return "load"
    if name.startswith("STR") or name.startswith("STL"):
        return "store"
    if name in ("UDIV", "SDIV"):
        return "div"
    if _MUL.match(name):
        return "mul"
    return "alu"


def classify(insn) -> Insn:
    """Class of a capstone instruction (detail mode on)."""
    name = _ID_NAMES.get(insn.id, insn.mnemonic.upper())
    cls = _class_of(name)
    regs = [op.reg for op in insn.operands if op.type == csarm.ARM_OP_REG]
    if cls in ("ldm", "stm", "fpu_ldm", "fpu_stm"):
        nregs = 2 if name in ("LDRD", "STRD") else max(1, len(regs) - (1 if name.startswith(("LDM", "STM", "VLDM", "VSTM")) else 0))
    else:
        nregs = 1
    if cls in ("branch", "table_branch"):
        writes_pc = True
    elif cls in ("ldm",):
        writes_pc = csarm.ARM_REG_PC in regs
    elif cls in ("load", "alu") and regs and not name.startswith(("CMP", "CMN", "TST", "TEQ")):
        writes_pc = insn.operands[0].type == csarm.ARM_OP_REG and insn.operands[0].reg == csarm.ARM_REG_PC
    else:
        writes_pc = False
    return Insn(cls, nregs, writes_pc, f"{insn.mnemonic} {insn.op_str}", name)


@dataclass(frozen=True)
class CostModel:
    """Cycle table of one core; ``taken`` is the refill penalty P added when control transfers."""

    core: str
    alu: int = 1
    mul: int = 1
    div: int = 7
    load: int = 2
    load_pipelined: int = 1      # load right after a load (Cortex-M4 TRM: loads pipeline)
    store: int = 1
    multiple_base: int = 1       # LDM/STM/PUSH/POP cost base + N
    taken: int = 2               # P
    pc_load_extra: int = 0       # extra when a load writes PC (M0+: POP {pc} is 3+N)
    table_branch: int = 3        # TBB/TBH before P
    bl: int = 1                  # BL before P (M0+: BL is 3 cycles in all)
    it: int = 1
    fpu: int = 1
    fpu_div: int = 14
    fpu_load: int = 2
    source: str = ""

    def insn_cost(self, insn: Insn, prev: Insn | None) -> int:
        """Cycles of one instruction, not counting the taken-branch penalty."""
        c = insn.cls
        if c == "alu":
            return self.alu
        if c == "mul":
            return self.mul
        if c == "div":
            return self.div
        if c == "load":
            cost = self.load_pipelined if prev is not None and prev.cls == "load" else self.load
            return cost + (self.pc_load_extra if insn.writes_pc else 0)
        if c == "store":
            return self.store
        if c in ("ldm", "stm"):
            return self.multiple_base + insn.nregs + (self.pc_load_extra if insn.writes_pc else 0)
        if c == "branch":
            return self.bl if insn.name == "BL" else 1
        if c == "table_branch":
            return self.table_branch
        if c == "it":
            return self.it
        if c == "fpu":
            return self.fpu
        if c == "fpu_div":
            return self.fpu_div
        if c in ("fpu_load", "fpu_store"):
            return self.fpu_load
        if c in ("fpu_ldm", "fpu_stm"):
            return self.multiple_base + insn.nregs
        raise ValueError(f"unknown instruction class {c!r}")

    def block_cost(self, insns) -> int:
        """Cycles of a straight-line block (every instruction issued, taken penalty excluded)."""
        total, prev = 0, None
        for insn in insns:
            total += self.insn_cost(insn, prev)
            prev = insn
        return total

    def taken_cost(self, last: Insn) -> int:
        """Extra cycles when the block's last instruction transferred control (pipeline refill)."""
        return self.taken if last.writes_pc else 0


CORTEX_M4 = CostModel("cortex-m4", source="ARM DDI 0439 (Cortex-M4 TRM) table 3-1, P=2")
CORTEX_M33 = CostModel("cortex-m33", source="as Cortex-M4 (3-stage in-order pipeline), P=2")
CORTEX_M0PLUS = CostModel("cortex-m0plus", load=2, load_pipelined=2, store=2, taken=1, pc_load_extra=1, bl=2,
                          source="ARM DDI 0484 (Cortex-M0+ TRM) 2-stage pipeline, fast multiplier, P=1")
COST_MODELS = {"cortex-m4": CORTEX_M4, "cortex-m33": CORTEX_M33, "cortex-m0plus": CORTEX_M0PLUS}


def cost_model(core: str) -> CostModel | None:
    """The cost model of a core, or None where only instruction counts are meaningful (M7)."""
    return COST_MODELS.get(core)
