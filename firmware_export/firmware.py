"""What a firmware engineer needs beside the model: C float<->int8 helpers, an example ``main.c``,
the TFLite Micro op resolver, the 32-bit arena rule and the NHWC ("channels last") input option.

The C helpers are ``static inline`` in ``{name}.h``: a translation unit that never calls them
(``{name}.c``, the runtime) emits no float code, so the int8 path stays float-free, and a firmware
that does call them needs no extra source file. They round like :func:`firmware_export.interp.quantize`
(half to even, float32 division), so a device and ``Artifact.predict`` give the same codes.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from . import cgen
from .errors import ExportError

INPUT_LAYOUTS = ("nchw", "nhwc")
LAYOUT_TARGETS = ("tflite", "tflm", "c")   # targets whose graph input can be converted channels-last
EXAMPLE_MAIN = "example/main.c"
EXAMPLE_STDIO_MACRO = "EDGEKD_EXAMPLE_STDIO"   # host build of the example: reads stdin, prints results

# Builtin operator -> MicroMutableOpResolver method, read from tflite-micro's
# tensorflow/lite/micro/micro_mutable_op_resolver.h (commit 90b983c2, 2026-08-20): every builtin
# TFLM registers, so whatever the C target or TFLM may meet has its name here.
TFLM_ADD_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill",
    "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish", "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MIRROR_PAD": "AddMirrorPad", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQUEEZE": "AddSqueeze", "SQRT": "AddSqrt",
    "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh",
    "TRANSPOSE_CONV": "AddTransposeConv", "TRANSPOSE": "AddTranspose", "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# TFLM aligns the arena start up to 16 bytes (kBufferAlignment); an unaligned buffer loses up to 15.
TFLM_ARENA_ALIGN = 16
# Why the measured arena also fits a 32-bit MCU (stated in the data header and the README).
TFLM_ARENA_RULE = (
    "measured with TFLite Micro's host interpreter on a 64-bit machine; enough on a 32-bit MCU too: "
    "tensor data and kernel scratch (the head) are the same size there, and every interpreter "
    "structure in the tail (TfLiteEvalTensor, node and registration records, op data, quantization "
    "records, the allocator itself) is the same size or smaller with 4-byte pointers and no stricter "
    "alignment, so each allocation ends no lower than on the host. Declare the arena 16-byte aligned.")


# ---- input layout ---------------------------------------------------------------------------------

def check_input_layout(layout, target, example_shape) -> str:
    """``None`` -> "nchw"; "nhwc" only for targets with a .tflite graph and an image input (1, C, H, W)."""
    layout = "nchw" if layout is None else str(layout).lower()
    if layout not in INPUT_LAYOUTS:
        raise ExportError(f"Invalid value for the 'input_layout' parameter. Allowed values are "
                          f"{', '.join(INPUT_LAYOUTS)}, but got {layout!r} instead.")
    if layout == "nhwc":
        if target not in LAYOUT_TARGETS:
            raise ExportError(f"input_layout 'nhwc' applies to the {', '.join(LAYOUT_TARGETS)} targets; "
                              f"target {target!r} keeps the torch model's NCHW input")
        if example_shape is not None and len(example_shape) != 4:
            raise ExportError(f"input_layout 'nhwc' needs an image input (1, C, H, W); the model's input is "
                              f"{tuple(example_shape)}")
    return layout


def to_layout(x, layout: str):
    """A float batch (N, C, H, W) in ``layout``: unchanged for "nchw", (N, H, W, C) for "nhwc"."""
    return x.permute(0, 2, 3, 1).contiguous() if layout == "nhwc" else x


def for_layout(model, layout: str):
    """The torch model to convert for ``layout``: as it is for "nchw", :func:`channels_last_input` for "nhwc"."""
    return model if layout == "nchw" else channels_last_input(model)


def channels_last_input(model):
    """``model`` (NCHW input) wrapped to take NHWC: litert-torch's converter cancels the wrapper's
    permute against the NHWC transpose it inserts itself, so the .tflite starts at the first layer
    with an (1, H, W, C) int8 input and no leading TRANSPOSE (checked in the tests)."""
    import litert_torch

    return litert_torch.to_channel_last_io(model, args=[0]).eval()


# ---- native C: header helpers and the example ------------------------------------------------------

def _io_names(kind: str, n: int) -> list:
    return [kind] if n == 1 else [f"{kind}{k}" for k in range(n)]


def c_io_helpers(name: str, n_inputs: int, n_outputs: int) -> str:
    """``static inline`` quantize/dequantize helpers for ``{name}.h`` (one per graph input/output)."""
    up = name.upper()
    out = [cgen.comment("float <-> int8 at the model's edges. static inline: nothing here is compiled into a "
                        "translation unit that does not call it, so the int8 path stays float-free. Rounding "
                        "is half to even after a float32 division, as firmware_export's Artifact.predict does."),
           f"static inline int8_t {name}_quantize_value(float x, float scale, int32_t zero_point)\n{{\n"
           "    float v = x / scale;\n    float frac;\n    int32_t r;\n"
           "    if (!(v > -1024.0f)) {  /* saturates anyway; also maps NaN to the lowest code */\n"
           "        v = -1024.0f;\n    }\n    if (v > 1024.0f) {\n        v = 1024.0f;\n    }\n"
           "    r = (int32_t)v;           /* toward zero */\n"
           "    frac = v - (float)r;      /* exact for |v| < 2^23 */\n"
           "    if (frac > 0.5f || (frac == 0.5f && (r & 1))) {\n        r += 1;\n"
           "    } else if (frac < -0.5f || (frac == -0.5f && (r & 1))) {\n        r -= 1;\n    }\n"
           "    r += zero_point;\n    return (int8_t)(r < -128 ? -128 : (r > 127 ? 127 : r));\n}\n\n"]
    for n in _io_names("input", n_inputs):
        m = f"{up}_{n.upper()}"
        out.append(cgen.comment(f"q[i] = clamp(round_half_even(x[i] / {m}_SCALE) + {m}_ZERO_POINT, -128, 127), "
                                f"i < {m}_SIZE"))
        out.append(f"static inline void {name}_quantize_{n}(const float *x, int8_t *q)\n{{\n    int32_t i;\n"
                   f"    for (i = 0; i < {m}_SIZE; ++i) {{\n"
                   f"        q[i] = {name}_quantize_value(x[i], {m}_SCALE, {m}_ZERO_POINT);\n    }}\n}}\n\n")
    for n in _io_names("output", n_outputs):
        m = f"{up}_{n.upper()}"
        out.append(cgen.comment(f"y[i] = (q[i] - {m}_ZERO_POINT) * {m}_SCALE, i < {m}_SIZE"))
        out.append(f"static inline void {name}_dequantize_{n}(const int8_t *q, float *y)\n{{\n    int32_t i;\n"
                   f"    for (i = 0; i < {m}_SIZE; ++i) {{\n"
                   f"        y[i] = (float)((int32_t)q[i] - {m}_ZERO_POINT) * {m}_SCALE;\n    }}\n}}\n\n")
    return "".join(out)


def c_abi_doc(name: str, n_inputs: int, n_outputs: int) -> str:
    """The usage block at the top of ``{name}.h``."""
    import textwrap

    up = name.upper()
    ins, outs = _io_names("input", n_inputs), _io_names("output", n_outputs)
    xs = ["x"] if n_inputs == 1 else [f"x{k}" for k in range(n_inputs)]
    ys = ["y"] if n_outputs == 1 else [f"y{k}" for k in range(n_outputs)]
    code = [
        *[f"int8_t {n}_q[{up}_{n.upper()}_SIZE];" for n in ins + outs],
        *[(f"{name}_quantize_{n}({x}, {n}_q);", "float -> int8 (optional)") for n, x in zip(ins, xs)],
        (f"status = {name}_invoke({', '.join(f'{n}_q' for n in ins + outs)});", "0 ok, -1 NULL pointer"),
        *[(f"{name}_dequantize_{n}({n}_q, {y});", "int8 -> float (optional)") for n, y in zip(outs, ys)],
    ]
    width = max(len(c if isinstance(c, str) else c[0]) for c in code) + 2
    text = ("Every graph tensor has SIZE, ZERO_POINT and SCALE macros. With one input and one output they "
            f"are {up}_INPUT_* and {up}_OUTPUT_*; with several ({up}_NUM_INPUTS, {up}_NUM_OUTPUTS) they "
            f"are indexed in the .tflite graph's order, {up}_INPUT0_SIZE, {up}_INPUT1_SIZE, ..., and "
            f"{name}_invoke takes one pointer per tensor, inputs first. Buffers hold the tensors row-major "
            "in the .tflite's layout (an NHWC export takes HWC pixels as a camera writes them). "
            f"{up}_ARENA_SIZE bytes of static RAM are used inside {name}.c; {name}_invoke is not reentrant.")
    lines = ["How to call (C99 or C++; one static arena inside, no malloc, no float in the int8 path):",
             *["    " + (c if isinstance(c, str) else c[0].ljust(width) + c[1]) for c in code],
             *textwrap.wrap(text, 100)]
    return "/*\n" + "".join(f" * {cgen.comment_text(line)}".rstrip() + "\n" for line in lines) + " */\n"


def c_example_main(name: str, n_inputs: int = 1, n_outputs: int = 1) -> str:
    """``example/main.c``: static buffers, quantize -> invoke -> dequantize -> argmax; stdio only in the
    host build (``-D EDGEKD_EXAMPLE_STDIO``), where it reads float32 inputs from stdin."""
    up = name.upper()
    ins, outs = _io_names("input", n_inputs), _io_names("output", n_outputs)
    sizes = {n: f"{up}_{n.upper()}_SIZE" for n in ins + outs}
    params = ", ".join([f"const float *{n}" for n in ins] + [f"float *{n}" for n in outs])
    first = outs[0]
    buffers = "".join(f"static int8_t {n}_q[{sizes[n]}];\n" for n in ins + outs)
    floats = "".join(f"static float {n}_f[{sizes[n]}];\n" for n in ins + outs)
    quantize = "".join(f"    {name}_quantize_{n}({n}, {n}_q);\n" for n in ins)
    dequantize = "".join(f"    {name}_dequantize_{n}({n}_q, {n});\n" for n in outs)
    invoke = f"{name}_invoke({', '.join(f'{n}_q' for n in ins + outs)})"
    reads = "".join(f"    if (fread({n}_f, sizeof(float), {sizes[n]}, stdin) != (size_t){sizes[n]}) {{\n"
                    "        return -1;\n    }\n" for n in ins)
    prints = "".join(
        f"    printf(\"{n}\");\n    for (i = 0; i < {sizes[n]}; ++i) {{\n"
        f"        printf(\" %d\", (int){n}_q[i]);\n    }}\n    printf(\"\\n{n}_float\");\n"
        f"    for (i = 0; i < {sizes[n]}; ++i) {{\n        printf(\" %.9g\", (double){n}_f[i]);\n    }}\n"
        "    printf(\"\\n\");\n" for n in outs)
    fills = "".join(f"    for (i = 0; i < {sizes[n]}; ++i) {{\n        {n}_f[i] = 0.0f;\n    }}\n" for n in ins)
    args = ", ".join(f"{n}_f" for n in ins + outs)
    return f"""{cgen.banner(f"example firmware main for the native C model '{name}'")}\
/* Build on the host: gcc -std=c99 -I. {name}.c edgekd_nn.c edgekd_nn_ops.c example/main.c -D{EXAMPLE_STDIO_MACRO}
 * (reads {' then '.join(sizes[n] for n in ins)} float32 values from stdin, prints the class and the outputs).
 * On a device: add example/main.c to the firmware beside the model sources and replace read_input. */
#include <stddef.h>
#include <stdint.h>
#include "{name}.h"

{buffers}{floats}
/* The part that matters: float in, quantize -> invoke -> dequantize, argmax of {first}.
 * Static buffers only: no malloc, no printf. Returns the class index, or -1 if the model refused a pointer. */
int {name}_classify({params})
{{
    int k, best = 0;
{quantize}    if ({invoke} != 0) {{
        return -1;
    }}
{dequantize}    for (k = 1; k < {sizes[first]}; ++k) {{
        if ({first}[k] > {first}[best]) {{
            best = k;
        }}
    }}
    return best;
}}

#ifdef {EXAMPLE_STDIO_MACRO}
#include <stdio.h>

static int read_input(void)
{{
{reads}    return 0;
}}

static void report(int cls)
{{
    int i;
    printf("class %d\\n", cls);
{prints}}}
#else
/* Replace with the sensor or camera read: fill each input with {', '.join(sizes[n] for n in ins)} floats in the
 * layout of {name}.h. */
static int read_input(void)
{{
    int i;
{fills}    return 0;
}}

volatile int {name}_last_class;

static void report(int cls)
{{
    {name}_last_class = cls;
}}
#endif

int main(void)
{{
    int cls;
    if (read_input() != 0) {{
        return 2;
    }}
    cls = {name}_classify({args});
    report(cls);
    return cls < 0;
}}
"""


def write_c_example(folder, name: str, n_inputs: int = 1, n_outputs: int = 1) -> list:
    """Write ``example/main.c`` into an export folder; return its relative path in a list."""
    path = Path(folder) / EXAMPLE_MAIN
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(c_example_main(name, n_inputs, n_outputs))
    return [EXAMPLE_MAIN]


# ---- TFLite Micro: op resolver and arena ----------------------------------------------------------

def resolver_methods(ops) -> list:
    """``MicroMutableOpResolver`` method names for builtin op names, in sorted op order."""
    unknown = sorted(set(ops) - set(TFLM_ADD_METHODS))
    if unknown:
        raise ExportError(f"TFLite Micro has no builtin kernel registration for {', '.join(unknown)}; "
                          f"its MicroMutableOpResolver knows {len(TFLM_ADD_METHODS)} builtins")
    return [TFLM_ADD_METHODS[op] for op in sorted(set(ops))]


def resolver_header(name: str, ops, config: dict | None = None) -> str:
    """``{name}_ops.h``: a ``MicroMutableOpResolver<N>`` type and the function that adds exactly ``ops``."""
    ident = cgen.c_identifier(name)
    up = ident.upper()
    ops = sorted(set(ops))
    methods = resolver_methods(ops)
    adds = "".join(f"    if (resolver.{m}() != kTfLiteOk) {{  // {op}\n        return kTfLiteError;\n    }}\n"
                   for op, m in zip(ops, methods))
    body = (cgen.banner(f"TFLite Micro op resolver for {name!r} (C++)", config)
            + "#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n\n"
            + f"// The {len(ops)} builtin operators {name}.tflite uses: {', '.join(ops)}.\n"
            + cgen.constant(f"{up}_NUM_OPS", len(ops))
            + f"typedef tflite::MicroMutableOpResolver<{up}_NUM_OPS> {ident}_op_resolver_t;\n\n"
            + f"// Registers exactly those operators; call once before building the MicroInterpreter.\n"
            + f"inline TfLiteStatus {ident}_register_ops({ident}_op_resolver_t &resolver)\n{{\n"
            + adds + "    return kTfLiteOk;\n}\n")
    return cgen.include_guard(f"{ident}_ops", body)


def tflm_arena_split(model_bytes: bytes, arena: int, x_q) -> dict:
    """``{"head": bytes, "tail": bytes}`` of a TFLM run in ``arena`` bytes, read from the recording
    allocator's report: the head holds tensor data and scratch, the tail the interpreter's structures."""
    import numpy as np

    from .interp import tflm_module

    interp = tflm_module().Interpreter.from_bytes(model_bytes, arena_size=int(arena))
    interp.set_input(np.ascontiguousarray(np.asarray(x_q)[:1]), 0)
    interp.invoke()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)  # TFLM's MicroPrintf writes to fd 2 (stderr) on the host
        try:
            os.dup2(sink.fileno(), 2)
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode(errors="replace")
    found = {k: int(v) for k, v in re.findall(r"Arena allocation (head|tail) (\d+) bytes", text)}
    if set(found) != {"head", "tail"}:
        raise ExportError("TFLite Micro's allocation report has no head/tail sizes "
                          f"(got {text.strip().splitlines()[:2]})")
    return found
