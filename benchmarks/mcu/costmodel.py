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
Cortex-M7 (ARM DDI 0489, section 1.2: "an in-order, superscalar pipeline", "many instructions
  can be dual-issued, including load/load and load/store pairs", branch prediction): the TRM
  gives no cycle table, so :class:`DualIssueModel` schedules each basic block in order, two
  instructions per cycle, with the resources and latencies of LLVM's Cortex-M7 machine model
  (``llvm/lib/Target/ARM/ARMScheduleM7.td``, written by Arm): two ALUs, two load pipes and one
  store pipe, one MAC, one branch, one shifter for shifted operands, one DSP/SIMD unit whose
  instruction must be the older of a pair; loads deliver after 2 cycles, multiplies and MACs
  after 2 (the accumulator is read a cycle later, so MAC chains do not stall), shifted and
  address operands are read a cycle early; LDM/STM/PUSH/POP, LDRD/STRD, TBB/TBH and divides
  issue alone. Simplifications: LDM/STM move two registers per cycle (the 64-bit data side);
  every block starts with all registers ready and an empty issue slot (dependencies and pairs
  across a taken branch are not seen); a conditional branch mispredicts min(taken, not taken)
  times (the fewest any per-branch predictor can), an indirect branch (BX, POP {pc}, TBB) every
  time, a direct one never, each misprediction costing 4 cycles (LLVM's MispredictPenalty; its
  comment gives 6 for forward branches).

The estimates ignore memory wait states and bus contention (real cycles are higher); the M4
model also ignores address-generation interlocks (a load whose address comes from the
previous instruction).
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
    """One decoded instruction: its class, register count (LDM/STM), whether it writes PC, and
    the operand facts the M7's dual-issue model needs."""

    cls: str
    nregs: int = 1
    writes_pc: bool = False
    text: str = ""
    name: str = ""
    reads: tuple = ()          # registers read (flags as "cpsr" for conditional instructions)
    writes: tuple = ()         # registers written
    early: tuple = ()          # read a cycle early: shifted operands, load/store addresses
    late: tuple = ()           # read a cycle late: a MAC's accumulator, a store's data
    conditional: bool = False  # a conditional branch
    simd: bool = False         # DSP / extend / bit-field unit (one per cycle, older of a pair on the M7)
    shifted: bool = False      # uses the shifter for an operand (one per cycle on the M7)


# DSP, extend and bit-field instructions: LLVM's M7 model puts them on the single SIMD unit with
# BeginGroup (or on slot 0 only: BFC/BFI/CLZ)
_SIMD = re.compile(r"^([SU]XT(A?)(B|H|B16)|[SU]H?(ADD|SUB)(8|16)|[SU]Q?(ASX|SAX)|U?Q(ADD|SUB)(8|16)?|QD(ADD|SUB)|SEL"
                   r"|[SU]SAT(16)?|PKH(BT|TB)|REV(16|SH)?|RBIT|CLZ|[SU]BFX|BF[CI]|USADA?8)$")
_SINGLE_CYCLE_2 = re.compile(r"^([SU]SAT(16)?|U?Q(ADD|SUB)(8|16)?|QD(ADD|SUB)|[SU]Q?(ASX|SAX)|USADA?8)$")
_MAC_ACC = re.compile(r"^(MLA|MLS|SM(LA|LS)\w*|[SU]MLAL\w*|UMAAL)$")


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
    reads, writes = (tuple(insn.reg_name(r) for r in rs) for rs in insn.regs_access())
    if insn.update_flags and "cpsr" not in writes:   # capstone leaves the flags out of some 16-bit forms
        writes += ("cpsr",)
    cond = insn.cc not in (csarm.ARM_CC_AL, csarm.ARM_CC_INVALID)
    if cond or name in ("CBZ", "CBNZ"):
        reads += ("cpsr",) if cond else ()
    early = tuple(insn.reg_name(op.reg) for op in insn.operands if op.type == csarm.ARM_OP_REG and op.shift.type)
    late: tuple = ()
    if cls in ("load", "store", "ldm", "stm", "fpu_load", "fpu_store"):
        early += tuple(insn.reg_name(r) for op in insn.operands if op.type == csarm.ARM_OP_MEM
                       for r in (op.mem.base, op.mem.index) if r)
        if cls == "store":
            late = tuple(r for r in reads if r not in early)
    if cls == "mul" and _MAC_ACC.match(name) and insn.operands:
        late = (insn.reg_name(insn.operands[-1].reg),)
    return Insn(cls, nregs, writes_pc, f"{insn.mnemonic} {insn.op_str}", name, reads, writes, early, late,
                conditional=(cls == "branch" and (cond or name in ("CBZ", "CBNZ"))),
                simd=bool(_SIMD.match(name)), shifted=bool(early) and cls == "alu")


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

    def cycles_of(self, insns, count: int, taken: int) -> int:
        """Cycles of a block executed ``count`` times, ``taken`` of them leaving by a taken branch."""
        return count * self.block_cost(insns) + (taken * self.taken_cost(insns[-1]) if insns else 0)


_SINGLE_ISSUE = ("div", "ldm", "stm", "table_branch", "fpu_div", "fpu_ldm", "fpu_stm")
_INDIRECT = ("BX", "BLX")


@dataclass(frozen=True)
class DualIssueModel:
    """In-order dual-issue schedule of each basic block (Cortex-M7; see the module docstring)."""

    core: str
    load_latency: int = 2
    mac_latency: int = 2
    div: int = 7
    fpu_latency: int = 3
    fpu_div: int = 14
    mispredict: int = 4
    source: str = ""

    def _latency(self, insn: Insn) -> int:
        c = insn.cls
        if c in ("load", "fpu_load"):
            return self.load_latency
        if c == "mul":
            return self.mac_latency
        if c == "fpu":
            return self.fpu_latency
        if insn.simd and _SINGLE_CYCLE_2.match(insn.name):
            return 2
        return 1

    def _issue_cycles(self, insn: Insn) -> int:
        c = insn.cls
        if c in ("ldm", "stm", "fpu_ldm", "fpu_stm"):
            return max(1, -(-insn.nregs // 2))
        if c == "div":
            return self.div
        if c == "fpu_div":
            return self.fpu_div
        if c == "table_branch":
            return 2
        return 1

    @staticmethod
    def _pairs(a: Insn, b: Insn) -> bool:
        """Can ``b`` issue in the same cycle as the older ``a``?"""
        if set(b.reads) & set(a.writes) or set(b.writes) & set(a.writes):
            return False
        if b.simd or (a.shifted and b.shifted):
            return False
        loads = sum(i.cls in ("load", "fpu_load") for i in (a, b))
        stores = sum(i.cls in ("store", "fpu_store") for i in (a, b))
        if stores > 1 or loads + stores > 2:
            return False
        if a.cls == b.cls and a.cls in ("mul", "branch", "fpu"):
            return False
        return True

    def block_cost(self, insns) -> int:
        """Issue cycles of a straight-line block (mispredictions excluded)."""
        ready: dict = {}           # register -> cycle its value can be read; older values: long ready
        cur, group = -1, None      # cycle of the open issue group; its slot-0 instruction if slot 1 is free
        for insn in insns:
            t = 0
            for r in insn.reads:
                need = ready.get(r, -2) + (1 if r in insn.early else 0) - (1 if r in insn.late else 0)
                t = max(t, need)
            if insn.cls in _SINGLE_ISSUE:
                issue = max(t, cur + 1)
                cur, group = issue + self._issue_cycles(insn) - 1, None
            elif group is not None and t <= cur and self._pairs(group, insn):
                issue, group = cur, None
            else:
                issue = max(t, cur + 1)
                cur, group = issue, insn
            done = issue + (self._issue_cycles(insn) if insn.cls in _SINGLE_ISSUE else 0) + self._latency(insn)
            for r in insn.writes:
                ready[r] = done
        return cur + 1

    def taken_cost(self, last: Insn) -> int:
        """A predicted taken branch costs nothing beyond its issue slot."""
        return 0

    def mispredictions(self, last: Insn, count: int, taken: int) -> int:
        if last.cls == "table_branch" or (last.writes_pc and (last.name in _INDIRECT or last.cls != "branch")):
            return taken       # indirect: BX, BLX reg, POP {pc}, LDR pc, TBB/TBH
        if last.conditional:
            return min(taken, count - taken)
        return 0

    def cycles_of(self, insns, count: int, taken: int) -> int:
        if not insns:
            return 0
        return count * self.block_cost(insns) + self.mispredict * self.mispredictions(insns[-1], count, taken)


CORTEX_M4 = CostModel("cortex-m4", source="ARM DDI 0439 (Cortex-M4 TRM) table 3-1, P=2")
CORTEX_M33 = CostModel("cortex-m33", source="as Cortex-M4 (3-stage in-order pipeline), P=2")
CORTEX_M0PLUS = CostModel("cortex-m0plus", load=2, load_pipelined=2, store=2, taken=1, pc_load_extra=1, bl=2,
                          source="ARM DDI 0484 (Cortex-M0+ TRM) 2-stage pipeline, fast multiplier, P=1")
CORTEX_M7 = DualIssueModel("cortex-m7", source="ARM DDI 0489 (Cortex-M7 TRM) 1.2 dual issue + LLVM "
                                              "ARMScheduleM7.td resources/latencies, mispredict 4")
COST_MODELS = {"cortex-m4": CORTEX_M4, "cortex-m33": CORTEX_M33, "cortex-m0plus": CORTEX_M0PLUS,
               "cortex-m7": CORTEX_M7}


def cost_model(core: str) -> CostModel | DualIssueModel | None:
    """The cost model of a core (None for a core without one)."""
    return COST_MODELS.get(core)
