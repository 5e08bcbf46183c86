"""The native C export folder as a firmware engineer uses it: the README's build line, the example
``main.c`` on the host and cross-compiled for Cortex-M (run in the emulator), ``model.h`` from C++,
the float<->int8 helpers against numpy, and the NHWC input option.

References are independent of the code under test: numpy's quantize/dequantize, TFLite Micro run
on the exported .tflite, the NCHW export of the same int8 graph, and a hand-written C++ caller.
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytest.importorskip("litert_torch")
pytest.importorskip("tflite_micro")
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to compile the generated C", allow_module_level=True)

import firmware_export as fe  # noqa: E402
from firmware_export.errors import ExportError  # noqa: E402
from firmware_export.interp import dequantize, quantize, run_tflm, tflm_module  # noqa: E402
from firmware_export.targets.tflite import quantize_pt2e  # noqa: E402
from firmware_export.tflite_reader import read_tflite  # noqa: E402

SHAPE = (1, 3, 8, 8)
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
BENCH_MCU = Path(__file__).resolve().parents[2] / "benchmarks" / "mcu"


class CamNet(nn.Module):
    """conv, depthwise, max pool, flatten of a 2x2 map (its order depends on the layout), linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        x = F.relu(self.dw(F.relu(self.conv(x))))
        return self.fc(torch.flatten(F.max_pool2d(x, 4), 1))


@pytest.fixture(scope="module")
def int8_graph():
    torch.manual_seed(0)
    model = CamNet().eval()
    calibration = torch.randn(64, *SHAPE[1:])
    return model, quantize_pt2e(model, torch.zeros(SHAPE), calibration), calibration


@pytest.fixture(scope="module")
def c_art(int8_graph, tmp_path_factory):
    model, graph, calibration = int8_graph
    return fe.export(graph, "c", example_input=torch.zeros(SHAPE), calibration_data=calibration,
                     float_reference=model, out_dir=tmp_path_factory.mktemp("c") / "nchw")


@pytest.fixture(scope="module")
def nhwc_art(int8_graph, tmp_path_factory):
    model, graph, calibration = int8_graph
    return fe.export(graph, "c", example_input=torch.zeros(SHAPE), calibration_data=calibration,
                     float_reference=model, input_layout="nhwc",
                     out_dir=tmp_path_factory.mktemp("c") / "nhwc")


def _inputs(art, n=3, seed=1):
    """Float inputs whose x / scale hits exact .5 steps in some places, where rounding modes differ."""
    scale, zero = art.input_quant
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(n, *art.config["input_shape"][1:])).astype(np.float32)
    halves = _half_steps(scale)
    flat = x.reshape(n, -1)
    flat[:, : len(halves)] = halves[: flat.shape[1]]
    return x


def _half_steps(scale):
    """float32 values v with v / scale == k + 0.5 exactly in float32 (ties: half-even and half-away differ)."""
    s = np.float32(scale)
    out = []
    for k in range(-60, 60):
        v = np.float32((k + 0.5) * float(s))
        if np.float32(v) / s == np.float32(k + 0.5):
            out.append(v)
    assert len(out) >= 10, "too few exact half steps for this scale to test rounding"
    return np.array(out, np.float32)


def _code_blocks(readme: str, lang: str) -> list:
    return re.findall(rf"```{lang}\n(.*?)```", readme, flags=re.S)


def _readme_command(art, prefix):
    lines = [ln for block in _code_blocks((art.path / "README.md").read_text(), "sh") for ln in block.splitlines()]
    found = [ln for ln in lines if ln.startswith(prefix)]
    assert found, f"no '{prefix} ...' line in the README"
    return found[0].split()


def _run_example(exe, x, n_out):
    res = subprocess.run([str(exe)], input=np.ascontiguousarray(x, np.float32).tobytes(), capture_output=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    cls = int(lines[0].split()[1])
    codes = np.array([int(v) for v in lines[1].split()[1:]], np.int8)
    floats = np.array([float(v) for v in lines[2].split()[1:]], np.float32)
    assert len(codes) == len(floats) == n_out
    return cls, codes, floats


def test_example_main_on_the_host_equals_tflm_and_predict_int8(c_art, tmp_path):
    """The README's own gcc line builds example/main.c; its int8 outputs equal TFLite Micro's and the
    C model's (CModel.predict_int8) on inputs quantized by numpy, its floats equal numpy's dequantize."""
    work = tmp_path / "folder"
    shutil.copytree(c_art.path, work)
    cmd = _readme_command(c_art, "gcc ")
    done = subprocess.run(cmd + ["-Wall", "-Wextra", "-Werror", "-pedantic"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    exe = work / cmd[cmd.index("-o") + 1]
    x = _inputs(c_art)
    x_q = quantize(x, *c_art.input_quant)
    y_c = c_art.predict_raw(x_q, runtime="c")        # CModel.predict_int8 on a fresh host build
    interp = tflm_module().Interpreter.from_bytes(c_art.file(".tflite").read_bytes(),
                                                   arena_size=c_art.config["tflm_arena_bytes"])
    y_tflm = run_tflm(interp, x_q)
    np.testing.assert_array_equal(y_c, y_tflm)
    for k in range(len(x)):
        cls, codes, floats = _run_example(exe, x[k], y_c.shape[-1])
        np.testing.assert_array_equal(codes, y_tflm[k].reshape(-1))
        np.testing.assert_array_equal(floats, dequantize(y_tflm[k], *c_art.output_quant).reshape(-1))
        assert cls == int(np.argmax(y_tflm[k]))


QUANTIZE_PROBE = r"""
#include <stdio.h>
#include "model.h"
static float x[MODEL_INPUT_SIZE];
static int8_t q[MODEL_INPUT_SIZE];
int main(void)
{
    int i;
    int8_t codes[MODEL_OUTPUT_SIZE];
    float y[MODEL_OUTPUT_SIZE];
    if (fread(x, sizeof(float), MODEL_INPUT_SIZE, stdin) != (size_t)MODEL_INPUT_SIZE) return 2;
    model_quantize_input(x, q);
    for (i = 0; i < MODEL_INPUT_SIZE; ++i) printf("%d ", q[i]);
    printf("\n");
    for (i = 0; i < MODEL_OUTPUT_SIZE; ++i) codes[i] = (int8_t)(i * 53 - 128);
    model_dequantize_output(codes, y);
    for (i = 0; i < MODEL_OUTPUT_SIZE; ++i) printf("%.9g ", (double)y[i]);
    printf("\n");
    return 0;
}
"""


def test_quantize_helpers_round_like_numpy(c_art, tmp_path):
    """model_quantize_input / model_dequantize_output against numpy on ties, saturation and ordinary values."""
    (tmp_path / "probe.c").write_text(QUANTIZE_PROBE)
    exe = tmp_path / "probe"
    done = subprocess.run(["gcc", *CFLAGS, "-I", str(c_art.path), str(tmp_path / "probe.c"), "-o", str(exe)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scale, zero = c_art.input_quant
    n = int(np.prod(c_art.config["input_shape"]))
    halves = _half_steps(scale)
    x = np.concatenate([halves, np.float32([1e6, -1e6, 200 * scale, -200 * scale, 0.0]),
                        np.random.default_rng(0).uniform(-5, 5, n)]).astype(np.float32)[:n]
    res = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
    assert res.returncode == 0
    lines = res.stdout.decode().splitlines()
    q_c = np.array(lines[0].split(), dtype=np.int64)
    np.testing.assert_array_equal(q_c, quantize(x, scale, zero))
    away = np.clip(np.trunc(x / np.float32(scale) + np.copysign(0.5, x)) + zero, -128, 127)
    assert np.any(q_c != away), "no input tells half-to-even from half-away rounding"
    out_n = int(np.prod(c_art.config["output_shape"]))
    codes = (np.arange(out_n) * 53 - 128).astype(np.int8)
    np.testing.assert_array_equal(np.array(lines[1].split(), dtype=np.float32),
                                  dequantize(codes, *c_art.output_quant))


CPP_CALLER = r"""
#include <cstdio>
#include "model.h"

int main()
{
    static float x[MODEL_INPUT_SIZE];
    static int8_t q[MODEL_INPUT_SIZE];
    static int8_t out[MODEL_OUTPUT_SIZE];
    if (std::fread(x, sizeof(float), MODEL_INPUT_SIZE, stdin) != static_cast<std::size_t>(MODEL_INPUT_SIZE)) return 2;
    model_quantize_input(x, q);
    if (model_invoke(q, out) != 0) return 3;
    for (int i = 0; i < MODEL_OUTPUT_SIZE; ++i) std::printf("%d ", static_cast<int>(out[i]));
    std::printf("\n");
    return 0;
}
"""


def _cpp_link(src_dir, tmp_path, header_text=None):
    gxx = shutil.which("g++")
    build = tmp_path / "cpp"
    shutil.copytree(src_dir, build)
    if header_text is not None:
        (build / "model.h").write_text(header_text)
    objs = []
    for c in ["model.c", "edgekd_nn.c", "edgekd_nn_ops.c"]:
        obj = build / (c[:-2] + ".o")
        done = subprocess.run(["gcc", *CFLAGS, "-O2", "-c", str(build / c), "-o", str(obj)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        objs.append(str(obj))
    (build / "caller.cpp").write_text(CPP_CALLER)
    exe = build / "caller"
    done = subprocess.run([gxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(build),
                           str(build / "caller.cpp"), *objs, "-o", str(exe)], capture_output=True, text=True)
    return done, exe


@pytest.mark.skipif(shutil.which("g++") is None,
                    reason="g++ missing: `apt-get install -y --no-install-recommends g++` (about 40 MB) adds it")
def test_model_h_links_from_cpp(c_art, tmp_path):
    """A C++11 translation unit includes model.h, calls the inline helper and model_invoke, links against
    the C objects and computes what the C model does; without the extern "C" guards the link fails."""
    done, exe = _cpp_link(c_art.path, tmp_path)
    assert done.returncode == 0, done.stderr
    x = _inputs(c_art, n=2)
    for sample in x:
        res = subprocess.run([str(exe)], input=sample.tobytes(), capture_output=True)
        assert res.returncode == 0
        expected = c_art.predict_raw(quantize(sample[None], *c_art.input_quant), runtime="c").reshape(-1)
        np.testing.assert_array_equal(np.array(res.stdout.split(), dtype=np.int64), expected)
    # the same caller against a header without the guards: C++ looks for a mangled model_invoke
    header = (c_art.path / "model.h").read_text()
    unguarded = re.sub(r'#ifdef __cplusplus\n(extern "C" \{|\})\n#endif\n', "", header)
    assert unguarded != header
    done, _ = _cpp_link(c_art.path, tmp_path / "unguarded", unguarded)
    assert done.returncode != 0 and "model_invoke(" in done.stderr


def _emulate_classify(core, elf, x, n_out):
    from benchmarks.mcu.emulate import emulate_elf

    trace = emulate_elf(elf, core, "model_classify", np.ascontiguousarray(x, np.float32).tobytes(),
                        bytes(4 * n_out), outputs=[(1, 4 * n_out)])
    return trace.returned, np.frombuffer(trace.outputs[0], np.float32)


@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m0plus"])
def test_example_main_cross_compiles_and_runs_on_cortex_m(c_art, tmp_path, core):
    """example/main.c with the model and runtime, freestanding (no libc: the device path of main needs
    none), linked for the core; in the emulator model_classify returns TFLM's class and floats."""
    from benchmarks.mcu.toolchain import COMMON_FLAGS, CORES, LINKER_SCRIPT, STARTUP, find_compiler

    cc = find_compiler()
    if cc is None:
        pytest.skip("arm-none-eabi-gcc not installed (`make toolchain`: apt gcc-arm-none-eabi)")
    shim = tmp_path / "shim.c"
    shim.write_text("int main(void);\nvoid bench_main(void);\nvoid bench_main(void) { (void)main(); }\n")
    elf = tmp_path / "example.elf"
    sources = [c_art.path / f for f in ("model.c", "edgekd_nn.c", "edgekd_nn_ops.c", "example/main.c")]
    cmd = [cc, *COMMON_FLAGS, *CORES[core].flags, "-O2", "-Werror", f"-I{c_art.path}", *map(str, sources),
           str(STARTUP), str(shim), f"-T{LINKER_SCRIPT}", "-Wl,--gc-sections", "-o", str(elf), "-lgcc"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pytest.importorskip("unicorn")
    pytest.importorskip("elftools")
    x = _inputs(c_art, n=2, seed=3)
    x_q = quantize(x, *c_art.input_quant)
    interp = tflm_module().Interpreter.from_bytes(c_art.file(".tflite").read_bytes(),
                                                   arena_size=c_art.config["tflm_arena_bytes"])
    y_tflm = run_tflm(interp, x_q)
    for k in range(len(x)):
        cls, floats = _emulate_classify(core, elf, x[k], y_tflm.shape[-1])
        np.testing.assert_array_equal(floats, dequantize(y_tflm[k], *c_art.output_quant).reshape(-1))
        assert cls == int(np.argmax(y_tflm[k]))


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_readme_cross_compile_line_builds_objects(c_art, tmp_path):
    work = tmp_path / "folder"
    shutil.copytree(c_art.path, work)
    cmd = _readme_command(c_art, "arm-none-eabi-gcc ")
    done = subprocess.run(cmd + ["-Wall", "-Wextra", "-Werror", "-pedantic"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in work.glob("*.o")} == {"model.o", "edgekd_nn.o", "edgekd_nn_ops.o"}


def _table_row(readme, kind):
    row = next(line for line in readme.splitlines() if line.startswith(f"| {kind} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_readme_numbers_are_export_json(c_art):
    readme = (c_art.path / "README.md").read_text()
    config = c_art.config
    for kind in ("input", "output"):
        _, shape, dtype, _, scale, zero = _table_row(readme, kind)
        assert shape == str(config[f"{kind}_shape"]) and dtype == "int8"
        assert float(scale) == config[f"{kind}_quant"][0] and int(zero) == config[f"{kind}_quant"][1]
    arena = int(re.search(r"static arena: (\d+) bytes", readme).group(1))
    assert arena == config["arena_bytes"] > 0
    header = (c_art.path / "model.h").read_text()
    assert f"#define MODEL_ARENA_SIZE ({arena})" in header
    assert int(re.search(r"TFLite Micro needs a (\d+)-byte arena", readme).group(1)) == config["tflm_arena_bytes"]
    listed = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M)
    assert listed == config["files"] and "README.md" in listed and "example/main.c" in listed
    assert all((c_art.path / f).is_file() for f in listed)
    n = c_art.parity["n_inputs"]
    assert f"passed on {n} inputs" in readme
    for name in c_art.parity["checks"]:
        assert f"| c/int8 | {name} |" in readme
    assert "int model_invoke(const int8_t *input, int8_t *output);" in header
    assert "int  model_invoke(const int8_t *input, int8_t *output);" in readme


# ---- NHWC input ---------------------------------------------------------------------------------

def _steps(c_source):
    body = c_source[c_source.index("int model_invoke("):]
    return re.findall(r"/\* step \d+: (\w+) ", body)


def test_nhwc_c_model_equals_nchw_bit_for_bit_without_the_leading_transpose(c_art, nhwc_art):
    """The same int8 graph exported with NHWC input: same quantization, the C model on x.permute(0,2,3,1)
    gives the NCHW C model's outputs on x exactly, and the first step reads the input directly."""
    assert nhwc_art.config["input_shape"] == [1, 8, 8, 3] and nhwc_art.config["input_layout"] == "nhwc"
    assert c_art.config["input_layout"] == "nchw"
    assert nhwc_art.input_quant == c_art.input_quant
    x = torch.randn(24, *SHAPE[1:]) * 1.5
    x_q = quantize(x.numpy(), *c_art.input_quant)
    x_q_hwc = quantize(x.permute(0, 2, 3, 1).numpy(), *nhwc_art.input_quant)
    np.testing.assert_array_equal(x_q_hwc, x_q.transpose(0, 2, 3, 1))
    y_nchw = c_art.predict_raw(x_q, runtime="c")
    y_nhwc = nhwc_art.predict_raw(x_q_hwc, runtime="c")
    np.testing.assert_array_equal(y_nhwc, y_nchw)
    assert len(np.unique(y_nchw)) > 10
    np.testing.assert_array_equal(nhwc_art.predict(x.permute(0, 2, 3, 1)), c_art.predict(x))
    nchw_steps = _steps((c_art.path / "model.c").read_text())
    nhwc_steps = _steps((nhwc_art.path / "model.c").read_text())
    # the NCHW model's input TRANSPOSE is folded into its first convolution's offset table; the NHWC
    # model has none to fold: both start with the convolution, neither transposes its input at run time
    assert nchw_steps[0] == "CONV_2D" and nhwc_steps == nchw_steps
    nchw_ops = [op.op for op in read_tflite(c_art.file(".tflite")).operators]
    assert nchw_ops[0] == "TRANSPOSE"  # the fold is in the C, not in the graph
    graph = read_tflite(nhwc_art.file(".tflite"))
    assert graph.tensors[graph.inputs[0]].shape == (1, 8, 8, 3)
    assert graph.operators[0].op == "CONV_2D"
    readme = (nhwc_art.path / "README.md").read_text()
    assert _table_row(readme, "input")[1:4] == ["[1, 8, 8, 3]", "int8", "NHWC (channels last: HWC pixels)"]


def test_input_layout_errors(int8_graph, tmp_path):
    model, graph, calibration = int8_graph
    x = torch.zeros(SHAPE)
    with pytest.raises(ExportError, match="'input_layout' parameter. Allowed values are nchw, nhwc"):
        fe.export(model, "c", example_input=x, calibration_data=calibration, out_dir=tmp_path / "a",
                  input_layout="hwc")
    with pytest.raises(ExportError, match="target 'onnx' keeps the torch model's NCHW input"):
        fe.export(model, "onnx", example_input=x, out_dir=tmp_path / "b", input_layout="nhwc")
    mlp = nn.Sequential(nn.Linear(6, 3)).eval()
    with pytest.raises(ExportError, match=r"needs an image input \(1, C, H, W\); the model's input is \(1, 6\)"):
        fe.export(mlp, "c", example_input=torch.zeros(1, 6), calibration_data=torch.rand(8, 6),
                  out_dir=tmp_path / "c", input_layout="nhwc")
    assert list(tmp_path.iterdir()) == []
