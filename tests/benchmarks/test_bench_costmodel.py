"""Cost model and block-hook counting on hand-encoded Thumb sequences (no compiler needed).

Each sequence is checked against capstone's disassembly first, so a wrong hand encoding fails
loudly instead of silently testing something else.
"""
import struct

import numpy as np
import pytest

pytest.importorskip("unicorn")
pytest.importorskip("capstone")

from benchmarks.mcu.costmodel import CORTEX_M0PLUS, CORTEX_M4, classify  # noqa: E402
from benchmarks.mcu.emulate import Emulator  # noqa: E402

BASE = 0x08000000


def _code(halfwords):
    return b"".join(struct.pack("<H", h) for h in halfwords)


# r0, r1: pointers to int32 words; r3: count. Returns the accumulated dot product in r0.
#   0: movs r2, #0 | 2: ldr r4,[r0] | 4: ldr r5,[r1] | 6: adds r0,#4 | 8: adds r1,#4
#   a: <mac, 4 bytes> | e: subs r3,#1 | 10: bne 2 | 12: mov r0,r2 | 14: bx lr
SMLAD = (0xFB24, 0x2205)            # smlad r2, r4, r5, r2
MULS_ADDS = (0x436C, 0x1912)        # muls r4, r5, r4 ; adds r2, r2, r4


def _loop(mac):
    return _code([0x2200, 0x6804, 0x680D, 0x3004, 0x3104, *mac, 0x3B01, 0xD1F7, 0x4610, 0x4770])


def _disasm(code):
    from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs

    cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    return [f"{i.mnemonic} {i.op_str}".strip() for i in cs.disasm(code, BASE)]


def test_hand_encoding_is_what_we_think():
    assert _disasm(_loop(SMLAD)) == ["movs r2, #0", "ldr r4, [r0]", "ldr r5, [r1]", "adds r0, #4", "adds r1, #4",
                                     "smlad r2, r4, r5, r2", "subs r3, #1", f"bne #{BASE + 2:#x}", "mov r0, r2", "bx lr"]
    assert _disasm(_loop(MULS_ADDS))[5:7] == ["muls r4, r5, r4", "adds r2, r2, r4"]


def _run(code, core, a, b):
    em = Emulator([(BASE, code, 0x1000)], {"f": BASE}, core)
    return em.call("f", a.astype("<i4").tobytes(), b.astype("<i4").tobytes(), 0, len(a))


def test_smlad_loop_counts_and_m4_cycles():
    rng = np.random.default_rng(0)
    a, b = rng.integers(-100, 100, (2, 4, 2)).astype(np.int16)       # 4 words of two int16 each
    wa, wb = a.view("<i4").reshape(-1), b.view("<i4").reshape(-1)
    trace = _run(_loop(SMLAD), "cortex-m4", wa, wb)
    assert np.int32(np.uint32(trace.returned)) == int((a.astype(np.int64) * b).sum())
    # 1 + 4 iterations x 7 + 2
    assert trace.instructions == 31
    assert trace.mix["alu"] == 14 and trace.mix["load"] == 8 and trace.mix["mul"] == 4 and trace.mix["branch"] == 5
    assert (trace.taken_branches, trace.not_taken_branches) == (4, 1)      # bne 3 taken + bx, bne 1 falls through
    # movs 1 + 4 x (ldr 2 + ldr 1 pipelined + adds 1 + adds 1 + smlad 1 + subs 1 + bne 1) + 3 taken x P=2
    # + mov 1 + bx (1 + P=2)
    assert trace.cycles(CORTEX_M4) == 1 + 4 * 8 + 3 * 2 + 1 + 3 == 43


def test_muls_loop_m0plus_cycles():
    wa, wb = np.array([3, -7, 11, 5]), np.array([2, 4, -6, 8])
    trace = _run(_loop(MULS_ADDS), "cortex-m0plus", wa, wb)
    assert np.int32(np.uint32(trace.returned)) == int(wa @ wb)
    assert trace.instructions == 1 + 4 * 8 + 2
    # M0+: movs 1 + 4 x (ldr 2 + ldr 2 + adds + adds + muls + adds + subs + bne: 1 each) + 3 taken x P=1
    # + mov 1 + bx (1 + P=1)
    assert trace.cycles(CORTEX_M0PLUS) == 1 + 4 * 10 + 3 * 1 + 1 + 2 == 47
    assert trace.cycles(CORTEX_M4) == 1 + 4 * 9 + 3 * 2 + 1 + 3


@pytest.mark.parametrize("r0, expected", [(0, 5), (1, 1)])
def test_skipped_it_instruction_is_still_counted(r0, expected):
    # cmp r0, #0 ; it eq ; moveq r0, #5 ; bx lr  -- the mov is executed or skipped, 4 instructions either way
    code = _code([0x2800, 0xBF08, 0x2005, 0x4770])
    assert _disasm(code) == ["cmp r0, #0", "it eq", "moveq r0, #5", "bx lr"]
    trace = Emulator([(BASE, code, 0x1000)], {"f": BASE}, "cortex-m4").call("f", r0)
    assert trace.returned == expected
    assert trace.instructions == 4
    assert trace.mix["it"] == 1
    assert trace.cycles(CORTEX_M4) == 1 + 1 + 1 + 3


def test_push_pop_classes_and_costs():
    from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs

    cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    cs.detail = True
    push, pop = (classify(i) for i in cs.disasm(_code([0xB530, 0xBD30]), BASE))   # push/pop {r4, r5, lr/pc}
    assert (push.cls, push.nregs, push.writes_pc) == ("stm", 3, False)
    assert (pop.cls, pop.nregs, pop.writes_pc) == ("ldm", 3, True)
    assert CORTEX_M4.block_cost([push, pop]) == 4 + 4
    assert CORTEX_M4.taken_cost(pop) == 2
    assert CORTEX_M0PLUS.block_cost([pop]) + CORTEX_M0PLUS.taken_cost(pop) == 3 + 3     # POP {..,pc}: 3+N


def test_repeated_runs_give_identical_counts():
    wa, wb = np.arange(4), np.arange(4)
    em = Emulator([(BASE, _loop(SMLAD), 0x1000)], {"f": BASE}, "cortex-m4")
    t1 = em.call("f", wa.astype("<i4").tobytes(), wb.astype("<i4").tobytes(), 0, 4)
    t2 = em.call("f", wa.astype("<i4").tobytes(), wb.astype("<i4").tobytes(), 0, 4)
    assert (t1.instructions, t1.cycles(CORTEX_M4), t1.mix) == (t2.instructions, t2.cycles(CORTEX_M4), t2.mix)


# ---- Cortex-M7: in-order dual issue, counted by hand from the rules in costmodel.py -------------

SXTB16 = (0xFA2F, 0xF182)          # sxtb16 r1, r2            (DSP unit: older of a pair only)
ADD_W = (0xEB04, 0x0305)           # add.w r3, r4, r5
SMLAD_0 = (0xFB21, 0x0002)         # smlad r0, r1, r2, r0     (one MAC unit)
SMLAD_3 = (0xFB21, 0x3302)         # smlad r3, r1, r2, r3
SMLAD_0B = (0xFB24, 0x0005)        # smlad r0, r4, r5, r0     (accumulates into r0 again)
LDR_R1 = (0x6801,)                 # ldr r1, [r0]
ADD_R2_R1 = (0xF101, 0x0201)       # add.w r2, r1, #1          (uses the load: 2-cycle latency)
LDR_R2 = (0x6842,)                 # ldr r2, [r0, #4]
STR_R3 = (0x6023,)                 # str r3, [r4]
STR_R5 = (0x6065,)                 # str r5, [r4, #4]
ADD_LSL2 = (0xEB01, 0x0082)        # add.w r0, r1, r2, lsl #2  (one shifter)
ADD_LSL1 = (0xEB04, 0x0345)        # add.w r3, r4, r5, lsl #1
PUSH4 = (0xB4F0,)                  # push {r4-r7}             (alone, two registers per cycle)
LDRD = (0xE9D2, 0x0100)            # ldrd r0, r1, [r2]         (alone)
ADD_R0 = (0xF101, 0x0001)          # add.w r0, r1, #1


def _m7_block(*parts):
    from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs

    cs = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    cs.detail = True
    return [classify(i) for i in cs.disasm(_code([h for p in parts for h in p]), BASE)]


def test_m7_hand_encodings():
    assert [i.text for i in _m7_block(SXTB16, ADD_W, SMLAD_0, SMLAD_3, SMLAD_0B, LDR_R1, ADD_R2_R1, LDR_R2, STR_R3,
                                      STR_R5, ADD_LSL2, ADD_LSL1, PUSH4, LDRD, ADD_R0)] == [
        "sxtb16 r1, r2", "add.w r3, r4, r5", "smlad r0, r1, r2, r0", "smlad r3, r1, r2, r3", "smlad r0, r4, r5, r0",
        "ldr r1, [r0]", "add.w r2, r1, #1", "ldr r2, [r0, #4]", "str r3, [r4]", "str r5, [r4, #4]",
        "add.w r0, r1, r2, lsl #2", "add.w r3, r4, r5, lsl #1", "push {r4, r5, r6, r7}", "ldrd r0, r1, [r2]",
        "add.w r0, r1, #1"]


@pytest.mark.parametrize("parts, cycles", [
    ((SXTB16, ADD_W), 1),              # DSP op first, ALU second: one cycle
    ((ADD_W, SXTB16), 2),              # a DSP op cannot be the younger of a pair
    ((SMLAD_0, SMLAD_3), 2),           # one MAC unit
    ((SMLAD_0, SMLAD_0B), 2),          # the chain: the accumulator is read a cycle late, no extra stall
    ((LDR_R1, ADD_R2_R1), 3),          # load-use: the value arrives 2 cycles after the load issues
    ((LDR_R1, LDR_R2, STR_R3, STR_R5), 3),   # two loads pair; one store pipe: the stores go one per cycle
    ((ADD_LSL2, ADD_LSL1), 2),         # one shifter for shifted operands
    ((PUSH4, ADD_W), 3),               # PUSH of 4 registers alone for 2 cycles, then the add
    ((LDRD, ADD_W), 2),                # LDRD issues alone
    ((ADD_R0, LDR_R2), 3),             # an address is read a cycle early: add (ready at 1) -> ldr at 2
])
def test_m7_dual_issue_hand_counted(parts, cycles):
    from benchmarks.mcu.costmodel import CORTEX_M7

    assert CORTEX_M7.block_cost(_m7_block(*parts)) == cycles


def test_m7_smlad_loop_cycles():
    """The SMLAD loop above on the M7, by hand: first block (movs + iteration 1) 5 cycles:
    c0 movs | ldr r4, c1 ldr r5 | adds r0, c2 adds r1 (flags: no pair with adds r0), c3 smlad
    (r5 loaded at c1 arrives at c3) | subs, c4 bne (flags from c3). Loop block 5 cycles: c0 ldr r4 |
    ldr r5, c1 adds r0, c2 adds r1 | smlad (loads arrived), c3 subs, c4 bne. Exit block: mov | bx.
    The loop's bne is taken 2 of 3 times: 1 misprediction; the bx is indirect: 1; 4 cycles each."""
    from benchmarks.mcu.costmodel import CORTEX_M7

    wa, wb = np.array([3, -7, 11, 5]), np.array([2, 4, -6, 8])
    trace = _run(_loop(SMLAD), "cortex-m7", wa, wb)
    assert np.int32(np.uint32(trace.returned)) == int(wa @ wb)
    assert trace.cycles(CORTEX_M7) == 5 + 3 * 5 + 1 + 4 * (1 + 1) == 29
