"""``README.md`` of every export folder, written from the export's own records.

Every number in it (shapes, scales, zero points, arena bytes, parity results) is read from the
``export.json`` config and the ``parity.json`` record the same export writes, so the README cannot
disagree with them. One section per target says what the files are, how to call the model and how
to build it.
"""
from __future__ import annotations

from pathlib import Path

from . import firmware
from .parity import table

README = "README.md"

QUANT_FORMULA = ("q = clamp(round_half_even(x / scale) + zero_point, -128, 127) to quantize, "
                 "x = (q - zero_point) * scale to dequantize")

# the cross-compiler flags per core (the ones benchmarks/mcu builds with)
CORTEX_M_FLAGS = {
    "cortex-m0plus": "-mcpu=cortex-m0plus -mthumb -mfloat-abi=soft",
    "cortex-m4": "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard",
    "cortex-m7": "-mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard",
    "cortex-m33": "-mcpu=cortex-m33 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard",
}
C_RUNTIME_SOURCES = ("edgekd_nn.c", "edgekd_nn_ops.c")

_FILE_ROLES = {
    ".onnx": "the float model (ONNX)",
    ".pte": "the ExecuTorch program (XNNPACK delegate)",
    ".tflite": "the model as a TFLite flatbuffer",
    "export.json": "how the export was made: target, shapes, quantization, versions (this README's facts)",
    "parity.json": "the parity record: each runtime against its reference on the same inputs",
    README: "this file",
    firmware.EXAMPLE_MAIN: "example firmware main: quantize -> invoke -> dequantize -> argmax, static buffers",
    "edgekd_nn.h": "runtime kernels (conv, fully connected, pooling): int8, no malloc, no float",
    "edgekd_nn.c": "runtime kernels (conv, fully connected, pooling): int8, no malloc, no float",
    "edgekd_nn_ops.h": "runtime kernels (softmax, activations, mean, add/sub/mul, concatenation, ...)",
    "edgekd_nn_ops.c": "runtime kernels (softmax, activations, mean, add/sub/mul, concatenation, ...)",
}


def _role(config, f: str) -> str:
    name = config["name"]
    roles = {f"{name}.h": "the C API: size/scale/zero-point macros, `_invoke`, quantize/dequantize helpers",
             f"{name}.c": "the model: weights as `static const` arrays, the static arena, `_invoke`",
             f"{name}_data.h": "the flatbuffer's declaration and the arena size macro",
             f"{name}_data.cc": "the .tflite as a 16-byte aligned C array (flash)",
             f"{name}_ops.h": "a MicroMutableOpResolver with exactly the model's operators (C++)"}
    if config["target"] == "c" and f.endswith(".tflite"):
        return "the int8 graph the C was generated from (and the TFLite Micro reference it is checked against)"
    return roles.get(f) or _FILE_ROLES.get(f) or _FILE_ROLES.get(Path(f).suffix, "")


def _int8(config) -> bool:
    return bool(config.get("input_quant"))


def _layout(config) -> str:
    layout = config.get("input_layout")
    return {"nchw": "NCHW (channels first)", "nhwc": "NHWC (channels last: HWC pixels)"}.get(layout, "as the shape")


def _io_table(config) -> list:
    rows = ["| tensor | shape | dtype | layout | scale | zero point |", "|---|---|---|---|---|---|"]
    shapes = config.get("output_shapes") or [config["output_shape"]]
    quants = config.get("output_quants") or [config.get("output_quant")]
    outputs = [(f"output{k}" if len(shapes) > 1 else "output", shape, quant, "as the shape")
               for k, (shape, quant) in enumerate(zip(shapes, quants))]  # several: in the order the model returns
    for kind, shape, quant, layout in [("input", config["input_shape"], config.get("input_quant"), _layout(config)),
                                       *outputs]:
        if quant:
            rows.append(f"| {kind} | {list(shape)} | int8 | {layout} | {float(quant[0])!r} | {int(quant[1])} |")
        else:
            rows.append(f"| {kind} | {list(shape)} | float32 | {layout} | - | - |")
    return rows


# ---- per target: API, memory, build -----------------------------------------------------------------

def _c_outputs(config) -> str:
    n = len(config.get("output_shapes") or [0])
    return "int8_t *output" if n == 1 else ", ".join(f"int8_t *output{k}" for k in range(n))


def _c(config) -> list:
    name, up = config["name"], config["name"].upper()
    sources = " ".join([f"{name}.c", *C_RUNTIME_SOURCES])
    host = f"gcc -std=c99 -O2 -I. {sources} {firmware.EXAMPLE_MAIN} -D{firmware.EXAMPLE_STDIO_MACRO} -o example_host"
    cross = (f"arm-none-eabi-gcc {CORTEX_M_FLAGS['cortex-m4']} -std=c99 -O2 -ffunction-sections -fdata-sections "
             f"-I. -c {sources}")
    return [
        "## C API", "",
        f"```c\n#include \"{name}.h\"\n"
        f"int  {name}_invoke(const int8_t *input, {_c_outputs(config)});      /* 0 ok, -1 on a NULL pointer */\n"
        f"void {name}_quantize_input(const float *x, int8_t *q);       /* static inline, {up}_INPUT_SIZE values */\n"
        f"void {name}_dequantize_output(const int8_t *q, float *y);    /* static inline, {up}_OUTPUT_SIZE values */\n"
        "```", "",
        f"Buffers are `int8_t[{up}_INPUT_SIZE]` and `int8_t[{up}_OUTPUT_SIZE]`, row-major in the layout above. "
        f"`{name}_invoke` uses one static arena, so it is not reentrant; it never allocates and never uses float. "
        f"The quantize/dequantize helpers are `static inline` in `{name}.h`: only code that calls them contains "
        f"float. `{firmware.EXAMPLE_MAIN}` shows the whole path on static buffers.", "",
        "## Memory", "",
        f"- static arena: {config['arena_bytes']} bytes of RAM (`{up}_ARENA_SIZE`, in `{name}.c`'s .bss), "
        "activations and kernel scratch, planned at export time",
        *([f"- the same graph in TFLite Micro needs a {config['tflm_arena_bytes']}-byte arena (measured)"]
          if config.get("tflm_arena_bytes") else []),
        "- weights and requantization constants are `static const` (flash)", "",
        "## Build", "",
        "Host (runs the example; it reads the float32 input from stdin and prints the class and outputs):", "",
        f"```sh\n{host}\n```", "",
        "Cortex-M4 objects to link into a firmware (other cores: "
        + "; ".join(f"{core} `{flags}`" for core, flags in CORTEX_M_FLAGS.items() if core != "cortex-m4") + "):",
        "", f"```sh\n{cross}\n```", "",
        f"Any C99 compiler works; the sources need only `<stdint.h>` and `<stddef.h>`. From C++, include "
        f"`{name}.h` as it is (it has `extern \"C\"` guards) and link the C objects.",
    ]


def _tflm(config) -> list:
    name, up = config["name"], config["name"].upper()
    ident = name
    ops = sorted(config.get("tflite_ops") or [])
    split = config.get("arena_split") or {}
    parts = (f" ({split['head']} bytes tensor data and kernel scratch, {split['tail']} bytes interpreter "
             "structures)") if split else ""
    return [
        "## C++ API (TensorFlow Lite Micro)", "",
        "```cpp\n" + tflm_usage(name) + "```", "",
        f"`{name}_ops.h` registers exactly the {len(ops)} operators the model uses: {', '.join(ops)} "
        f"(`MicroMutableOpResolver<{len(ops)}>`).", "",
        "## Memory", "",
        f"- tensor arena: {config['arena_bytes']} bytes (`{up}_ARENA_BYTES`){parts}: the smallest 16-byte "
        f"multiple TFLite Micro allocated and ran the model in, {firmware.TFLM_ARENA_RULE}",
        f"- the flatbuffer: {config.get('tflite_bytes', 'see')} bytes of flash (`{name}_data.cc`)"
        if config.get("tflite_bytes") else f"- the flatbuffer lives in flash (`{name}_data.cc`)", "",
        "## Build", "",
        "Compile `" + f"{name}_data.cc" + "` and your code with TensorFlow Lite Micro. From a tflite-micro "
        "checkout, either build the library for the core:", "",
        "```sh\nmake -f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp "
        "OPTIMIZED_KERNEL_DIR=cmsis_nn microlite\n```", "",
        "(it writes `gen/cortex_m_generic_cortex-m4+fp_default_cmsis_nn_gcc/lib/libtensorflow-microlite.a`; "
        "compile with `-DTF_LITE_STATIC_MEMORY` and `-I` the checkout and its "
        "`tensorflow/lite/micro/tools/make/downloads/{flatbuffers/include,gemmlowp}`), or copy the sources "
        "into your project tree:", "",
        "```sh\npython3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py "
        "--makefile_options=\"TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp OPTIMIZED_KERNEL_DIR=cmsis_nn\" "
        "tflm_tree\n```",
    ]


def tflm_usage(name: str) -> str:
    """C++ that sets up a MicroInterpreter with the folder's resolver and arena and runs one inference
    (the README shows it; a test compiles it against the TFLite Micro headers when they are at hand)."""
    up = name.upper()
    return (
        "#include <string.h>\n"
        "#include \"tensorflow/lite/micro/micro_interpreter.h\"\n"
        "#include \"tensorflow/lite/schema/schema_generated.h\"\n"
        f"#include \"{name}_data.h\"\n#include \"{name}_ops.h\"\n\n"
        f"alignas(16) static uint8_t tensor_arena[{up}_ARENA_BYTES];\n"
        "static tflite::MicroInterpreter *interpreter = nullptr;\n\n"
        f"int {name}_setup()\n{{\n"
        f"    static {name}_op_resolver_t resolver;\n"
        f"    if ({name}_register_ops(resolver) != kTfLiteOk) return -1;\n"
        f"    static tflite::MicroInterpreter instance(tflite::GetModel({name}_tflite), resolver,\n"
        f"                                             tensor_arena, {up}_ARENA_BYTES);\n"
        "    if (instance.AllocateTensors() != kTfLiteOk) return -1;\n"
        "    interpreter = &instance;\n    return 0;\n}\n\n"
        f"int {name}_run(const int8_t *input, int8_t *output)  // int8 tensors as in the table above\n{{\n"
        "    // set the input before EVERY Invoke: TFLite Micro reuses the input tensor's memory\n"
        "    memcpy(interpreter->input(0)->data.int8, input, interpreter->input(0)->bytes);\n"
        "    if (interpreter->Invoke() != kTfLiteOk) return -1;\n"
        "    memcpy(output, interpreter->output(0)->data.int8, interpreter->output(0)->bytes);\n"
        "    return 0;\n}\n")


def _tflite(config) -> list:
    name = config["name"]
    lines = ["## Python API (LiteRT)", "",
             "```python\nimport numpy as np\nfrom ai_edge_litert.interpreter import Interpreter\n"
             f"interp = Interpreter(model_path=\"{name}.tflite\")\ninterp.allocate_tensors()\n"
             "inp, out = interp.get_input_details()[0], interp.get_output_details()[0]\n"]
    if _int8(config):
        s, z = config["input_quant"]
        so, zo = config["output_quant"]
        lines[-1] += (f"q = np.clip(np.round(x / np.float32({float(s)!r})) + {int(z)}, -128, 127).astype(np.int8)\n"
                      "interp.set_tensor(inp[\"index\"], q)\ninterp.invoke()\n"
                      f"y = (interp.get_tensor(out[\"index\"]).astype(np.int32) - {int(zo)}) * np.float32({float(so)!r})\n```")
        lines += ["", "`OpResolverType.BUILTIN_REF` (from `ai_edge_litert.interpreter`) runs TFLite's reference "
                      "kernels, the ones TFLite Micro and the native C match bit for bit; the default (XNNPACK) "
                      "kernels round differently by a few LSB (see Parity)."]
    else:
        lines[-1] += ("interp.set_tensor(inp[\"index\"], x.astype(np.float32))\ninterp.invoke()\n"
                      "y = interp.get_tensor(out[\"index\"])\n```")
    lines += ["", "## Build", "", "Nothing to build: load the .tflite with LiteRT (Python, Android, iOS, Linux). "
              "For a microcontroller use the tflm or c export of the same model."]
    return lines


def _onnx(config) -> list:
    name = config["name"]
    return ["## Python API (onnxruntime)", "",
            "```python\nimport numpy as np, onnxruntime as ort\n"
            f"sess = ort.InferenceSession(\"{name}.onnx\", providers=[\"CPUExecutionProvider\"])\n"
            "y = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]\n```", "",
            "## Build", "", "Nothing to build: any ONNX runtime loads the file (opset as written by "
            "`torch.onnx.export(..., dynamo=True)`)."]


def _executorch(config) -> list:
    name = config["name"]
    inside = config.get("internal_output_quant")
    lines = ["## Python API (ExecuTorch runtime)", "",
             "```python\nimport torch\nfrom executorch.runtime import Runtime\n"
             f"method = Runtime.get().load_program(\"{name}.pte\").load_method(\"forward\")\n"
             "y = method.execute((x,))[0]      # x: a float32 torch tensor of the input shape\n```", "",
             "Input and output are float32: quantize/dequantize run inside the XNNPACK delegate."]
    if inside:
        lines.append(f"Inside, the int8 output is quantized with scale {float(inside[0])!r}, zero point "
                     f"{int(inside[1])}.")
    lines += ["", "## Build", "", f"The `.pte` ({config.get('pte_bytes', '?')} bytes) runs in the ExecuTorch C++ "
              "runtime (`executorch::extension::Module`) linked with the XNNPACK backend."]
    return lines


_TARGET_SECTIONS = {"c": _c, "tflm": _tflm, "tflite": _tflite, "onnx": _onnx, "executorch": _executorch}


def readme_text(config: dict, parity: dict) -> str:
    """The README of an export folder, from its ``export.json`` config and ``parity.json`` record."""
    target, name = config["target"], config["name"]
    files = ["| file | what it is |", "|---|---|"] + [f"| `{f}` | {_role(config, f)} |" for f in config["files"]]
    lines = [
        f"# {name}: {target} export ({config['precision']})", "",
        f"Written by edgekd {config.get('edgekd_version', '?')} on {config.get('created', '?')} from "
        f"`{config.get('model_class', '?')}`. Every number here comes from `export.json` and `parity.json` "
        "of this folder.", "",
        "## Files", "", *files, "",
        "## Input and output", "", *_io_table(config), "",
    ]
    if _int8(config):
        lines += [f"Quantization (per tensor): {QUANT_FORMULA}, rounding half to even after a float32 "
                  "division (what `Artifact.predict` and the C helpers do).", ""]
    lines += [line for line in _TARGET_SECTIONS[target](config)]
    verdict = "passed" if parity.get("passed") else "FAILED"
    lines += ["", "## Parity", "",
              f"{verdict} on {parity.get('n_inputs')} inputs ({parity.get('inputs')}):", "",
              table({f"{target}/{config['precision']}": parity}), ""]
    return "\n".join(lines)


def write_readme(folder, config: dict, parity: dict) -> Path:
    path = Path(folder) / README
    path.write_text(readme_text(config, parity))
    return path
