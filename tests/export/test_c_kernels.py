"""Each native C kernel against TFLite's reference kernels (LiteRT BUILTIN_REF), exactly (0 LSB).

Two sources of single-op .tflite models:
- hand-built flatbuffers (random shapes, weights, per-channel scales and zero points; strides 1/2,
  SAME/VALID on odd sizes, dilation, depth multipliers 1/2, every fused activation), fast;
- tiny torch modules converted by litert-torch int8 (the graphs the real export produces: PAD +
  VALID conv, NCHW transposes, per-channel fully connected), converted once per session.
"""
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to compile the generated C", allow_module_level=True)

from ai_edge_litert import schema_py_generated as fb  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from firmware_export.targets.c import build_c, quantize_multiplier  # noqa: E402
from firmware_export.tflite_reader import read_tflite  # noqa: E402
from tflite_graph import Graph  # noqa: E402
from tflite_graph import options as _opts  # noqa: E402

N_INPUTS = 12
SAME, VALID = fb.Padding.SAME, fb.Padding.VALID
NONE, RELU, RELU6 = fb.ActivationFunctionType.NONE, fb.ActivationFunctionType.RELU, fb.ActivationFunctionType.RELU6


def _q_act(rng):
    return float(rng.uniform(0.01, 0.05)), int(rng.integers(-20, 21))


def conv_model(rng, ih, iw, ic, oc, k, stride, padding, act, depthwise=False, dil=1, per_channel=True, bias=True,
               out_scale=1.0, z_out=None):
    b = Graph()
    s_in, z_in = _q_act(rng)
    n_w = oc if per_channel else 1
    w_scale = rng.uniform(0.003, 0.012, size=n_w).astype(np.float32)
    kh, kw = (k, k) if np.isscalar(k) else k
    if depthwise:
        w = rng.integers(-127, 128, size=(1, kh, kw, oc), dtype=np.int8)
        fan_in = kh * kw
    else:
        w = rng.integers(-127, 128, size=(oc, kh, kw, ic), dtype=np.int8)
        fan_in = kh * kw * ic
    # output scale so that the outputs spread over the int8 range instead of saturating
    s_out = float(s_in * float(np.mean(w_scale)) * 75 * 73 * np.sqrt(fan_in) / 45) * out_scale
    z_out = int(rng.integers(-20, 21)) if z_out is None else z_out
    x = b.tensor((1, ih, iw, ic), fb.TensorType.INT8, s_in, z_in, name="input")
    wt = b.tensor(w.shape, fb.TensorType.INT8, w_scale, np.zeros(n_w, int), 3 if depthwise else 0, w, name="weights")
    ins = [x, wt]
    if bias:
        bias_scale = (np.float32(s_in) * w_scale).astype(np.float32)
        bias_vals = rng.integers(-3000, 3000, size=oc).astype(np.int32)
        ins.append(b.tensor((oc,), fb.TensorType.INT32, np.resize(bias_scale, oc), np.zeros(oc, int), 0, bias_vals))
    else:
        ins.append(-1)
    if padding == SAME:
        oh, ow = -(-ih // stride), -(-iw // stride)
    else:
        oh, ow = (ih - (kh - 1) * dil - 1) // stride + 1, (iw - (kw - 1) * dil - 1) // stride + 1
    y = b.tensor((1, oh, ow, oc), fb.TensorType.INT8, s_out, z_out, name="output")
    if depthwise:
        opts = _opts(fb.DepthwiseConv2DOptionsT, padding=padding, strideW=stride, strideH=stride,
                     depthMultiplier=oc // ic, fusedActivationFunction=act, dilationWFactor=dil, dilationHFactor=dil)
        return b.one_op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, ins, [y], fb.BuiltinOptions.DepthwiseConv2DOptions,
                        opts, [x], [y])
    opts = _opts(fb.Conv2DOptionsT, padding=padding, strideW=stride, strideH=stride, fusedActivationFunction=act,
                 dilationWFactor=dil, dilationHFactor=dil)
    return b.one_op(fb.BuiltinOperator.CONV_2D, ins, [y], fb.BuiltinOptions.Conv2DOptions, opts, [x], [y])


def fc_model(rng, n_in, n_out, act, per_channel=True, bias=True):
    b = Graph()
    s_in, z_in = _q_act(rng)
    n_w = n_out if per_channel else 1
    w_scale = rng.uniform(0.003, 0.012, size=n_w).astype(np.float32)
    w = rng.integers(-127, 128, size=(n_out, n_in), dtype=np.int8)
    s_out = float(s_in * float(np.mean(w_scale)) * 75 * 73 * np.sqrt(n_in) / 45)
    x = b.tensor((1, n_in), fb.TensorType.INT8, s_in, z_in)
    wt = b.tensor(w.shape, fb.TensorType.INT8, w_scale, np.zeros(n_w, int), 0, w)
    ins = [x, wt]
    if bias:
        ins.append(b.tensor((n_out,), fb.TensorType.INT32, np.resize(np.float32(s_in) * w_scale, n_out),
                            np.zeros(n_out, int), 0, rng.integers(-3000, 3000, size=n_out).astype(np.int32)))
    else:
        ins.append(-1)
    y = b.tensor((1, n_out), fb.TensorType.INT8, s_out, int(rng.integers(-20, 21)))
    opts = _opts(fb.FullyConnectedOptionsT, fusedActivationFunction=act, keepNumDims=True)
    return b.one_op(fb.BuiltinOperator.FULLY_CONNECTED, ins, [y], fb.BuiltinOptions.FullyConnectedOptions, opts, [x], [y])


def pool_model(rng, op, ih, iw, c, k, stride, padding, act=NONE):
    b = Graph()
    s, z = _q_act(rng)
    x = b.tensor((1, ih, iw, c), fb.TensorType.INT8, s, z)
    oh, ow = ((-(-ih // stride), -(-iw // stride)) if padding == SAME
              else ((ih - k) // stride + 1, (iw - k) // stride + 1))
    y = b.tensor((1, oh, ow, c), fb.TensorType.INT8, s, z)
    opts = _opts(fb.Pool2DOptionsT, padding=padding, strideW=stride, strideH=stride, filterWidth=k, filterHeight=k,
                 fusedActivationFunction=act)
    return b.one_op(op, [x], [y], fb.BuiltinOptions.Pool2DOptions, opts, [x], [y])


def add_model(rng, shape, act):
    b = Graph()
    (s1, z1), (s2, z2) = _q_act(rng), _q_act(rng)
    x1 = b.tensor(shape, fb.TensorType.INT8, s1, z1)
    x2 = b.tensor(shape, fb.TensorType.INT8, s2, z2)
    y = b.tensor(shape, fb.TensorType.INT8, (s1 + s2) * float(rng.uniform(0.8, 1.3)), int(rng.integers(-20, 21)))
    opts = _opts(fb.AddOptionsT, fusedActivationFunction=act)
    return b.one_op(fb.BuiltinOperator.ADD, [x1, x2], [y], fb.BuiltinOptions.AddOptions, opts, [x1, x2], [y])


def unary_model(rng, op, shape, same_q=False):
    b = Graph()
    s, z = _q_act(rng)
    x = b.tensor(shape, fb.TensorType.INT8, s, z)
    so, zo = (s, z) if same_q else (s * float(rng.uniform(0.4, 1.6)), int(rng.integers(-20, 21)))
    y = b.tensor(shape, fb.TensorType.INT8, so, zo)
    return b.one_op(op, [x], [y], fb.BuiltinOptions.NONE, None, [x], [y])


def transpose_model(rng, shape, perm):
    b = Graph()
    s, z = _q_act(rng)
    x = b.tensor(shape, fb.TensorType.INT8, s, z)
    p = b.tensor((len(perm),), fb.TensorType.INT32, data=np.asarray(perm, np.int32))
    y = b.tensor([shape[i] for i in perm], fb.TensorType.INT8, s, z)
    return b.one_op(fb.BuiltinOperator.TRANSPOSE, [x, p], [y], fb.BuiltinOptions.TransposeOptions,
                    fb.TransposeOptionsT(), [x], [y])


def pad_model(rng, shape, pads):
    b = Graph()
    s, z = _q_act(rng)
    x = b.tensor(shape, fb.TensorType.INT8, s, z)
    p = b.tensor((len(pads), 2), fb.TensorType.INT32, data=np.asarray(pads, np.int32))
    y = b.tensor([d + a + c for d, (a, c) in zip(shape, pads)], fb.TensorType.INT8, s, z)
    return b.one_op(fb.BuiltinOperator.PAD, [x, p], [y], fb.BuiltinOptions.PadOptions, fb.PadOptionsT(), [x], [y])


# ---- comparison --------------------------------------------------------------------------------

def reference_outputs(path, xs):
    """Run LiteRT's reference kernels on each int8 input (one or two graph inputs)."""
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ins, out = it.get_input_details(), it.get_output_details()[0]
    ys = []
    for x in xs:
        parts = x if isinstance(x, tuple) else (x,)
        for d, part in zip(ins, parts):
            it.set_tensor(d["index"], part.reshape(d["shape"]))
        it.invoke()
        ys.append(it.get_tensor(out["index"]).copy())
    return np.stack(ys)


def tflm_outputs(path, xs):
    """TFLite Micro on each int8 input (the input set before every invoke)."""
    from firmware_export.interp import run_tflm, tflm_module

    ys = run_tflm(tflm_module().Interpreter.from_file(str(path)), np.stack([x[0] for x in xs]))
    return ys[:, None]


def check_exact(tmp_path, model_bytes, rng, n=N_INPUTS, name="model", reference="litert"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model_bytes)
    g = read_tflite(path)
    shape = g.tensors[g.inputs[0]].shape
    x = rng.integers(-128, 128, size=(n,) + tuple(shape), dtype=np.int8)
    cm = build_c(path, tmp_path / "c", name=name)
    y_c = cm.predict_int8(x[:, 0])
    y_ref = (tflm_outputs if reference == "tflm" else reference_outputs)(path, list(x))
    assert y_ref.shape == (n,) + tuple(g.tensors[g.outputs[0]].shape)
    np.testing.assert_array_equal(y_c.reshape(y_ref.shape), y_ref)
    return y_ref, cm


def _not_trivial(y):
    """The comparison means something only when outputs are spread, not all clamped."""
    assert len(np.unique(y)) > 8, f"outputs nearly constant: {np.unique(y)}"


CONV_CASES = [  # ih, iw, ic, oc, k, stride, padding, act, dil, per_channel, bias
    (7, 9, 3, 5, 3, 1, SAME, NONE, 1, True, True),
    (8, 7, 4, 6, 3, 2, SAME, RELU, 1, True, True),
    (9, 9, 2, 4, 3, 2, VALID, RELU6, 1, True, True),
    (5, 6, 3, 3, 1, 1, VALID, NONE, 1, False, True),
    (9, 8, 2, 3, 3, 1, SAME, NONE, 2, True, True),
    (6, 6, 5, 4, 2, 2, SAME, NONE, 1, True, True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"conv{c[0]}x{c[1]}x{c[2]}-{c[3]}k{c[4]}s{c[5]}p{c[6]}a{c[7]}d{c[8]}")
def test_conv2d_exact(tmp_path, case):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    ih, iw, ic, oc, k, stride, padding, act, dil, pc, bias = case
    y, cm = check_exact(tmp_path, conv_model(rng, ih, iw, ic, oc, k, stride, padding, act, dil=dil,
                                             per_channel=pc, bias=bias), rng)
    _not_trivial(y)
    oh, ow = y.shape[-3:-1]
    assert cm.macs == oh * ow * oc * k * k * ic


DW_CASES = [  # ih, iw, ic, multiplier, k, stride, padding, act
    (7, 8, 3, 1, 3, 1, SAME, RELU),
    (9, 7, 4, 2, 3, 2, SAME, NONE),
    (8, 8, 2, 2, 5, 2, VALID, RELU6),
    (6, 5, 5, 1, 3, 2, VALID, NONE),
]


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: f"dw{c[0]}x{c[1]}x{c[2]}m{c[3]}k{c[4]}s{c[5]}p{c[6]}a{c[7]}")
def test_depthwise_exact(tmp_path, case):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    ih, iw, ic, mult, k, stride, padding, act = case
    y, _ = check_exact(tmp_path, conv_model(rng, ih, iw, ic, ic * mult, k, stride, padding, act, depthwise=True), rng)
    _not_trivial(y)


@pytest.mark.parametrize("n_in,n_out,act,per_channel,bias", [(37, 11, NONE, True, True), (64, 10, RELU, False, True),
                                                             (9, 7, RELU6, True, False)])
def test_fully_connected_exact(tmp_path, n_in, n_out, act, per_channel, bias):
    rng = np.random.default_rng(n_in * 100 + n_out)
    y, cm = check_exact(tmp_path, fc_model(rng, n_in, n_out, act, per_channel, bias), rng, n=24)
    _not_trivial(y)
    assert cm.macs == n_in * n_out


@pytest.mark.parametrize("op,ih,iw,c,k,stride,padding,act", [
    (fb.BuiltinOperator.AVERAGE_POOL_2D, 7, 9, 5, 3, 2, SAME, NONE),
    (fb.BuiltinOperator.AVERAGE_POOL_2D, 8, 8, 4, 2, 2, VALID, RELU6),
    (fb.BuiltinOperator.AVERAGE_POOL_2D, 5, 6, 3, 3, 1, SAME, NONE),
    (fb.BuiltinOperator.MAX_POOL_2D, 7, 7, 3, 3, 2, SAME, NONE),
    (fb.BuiltinOperator.MAX_POOL_2D, 6, 9, 4, 2, 1, VALID, RELU),
])
def test_pool_exact(tmp_path, op, ih, iw, c, k, stride, padding, act):
    rng = np.random.default_rng(op * 1000 + ih * 10 + k)
    y, _ = check_exact(tmp_path, pool_model(rng, op, ih, iw, c, k, stride, padding, act), rng)
    _not_trivial(y)


@pytest.mark.parametrize("act", [NONE, RELU])
def test_add_exact(tmp_path, act):
    rng = np.random.default_rng(7 + act)
    b = add_model(rng, (1, 5, 7, 3), act)
    path = tmp_path / "add.tflite"
    path.write_bytes(b)
    x1 = rng.integers(-128, 128, size=(16, 1, 5, 7, 3), dtype=np.int8)
    x2 = rng.integers(-128, 128, size=(16, 1, 5, 7, 3), dtype=np.int8)
    y_ref = reference_outputs(path, list(zip(x1, x2)))
    _not_trivial(y_ref)
    # the C ABI has one input: check the kernel through a two-input graph by building it inside a
    # graph whose second operand is derived from the first is not possible, so compile the model
    # with a small dedicated harness instead.
    y_c = _run_add_kernel(tmp_path, path, x1, x2)
    np.testing.assert_array_equal(y_c, y_ref.reshape(y_c.shape))


def _run_add_kernel(tmp_path, path, x1, x2):
    """Generate the ADD step's parameters with the C target's lowering and run ekd_add_s8 directly."""
    import subprocess

    from firmware_export.targets import c as ctarget

    g = read_tflite(path)
    steps = ctarget._Lowering(g).run()
    (step,) = steps
    n = x1[0].size
    src = ['#include <stdio.h>', '#include "edgekd_nn.h"', *step.decls,
           f"int main(void) {{ static int8_t a[{n}], b[{n}], o[{n}];",
           f"  while (fread(a, 1, {n}, stdin) == {n} && fread(b, 1, {n}, stdin) == {n}) {{",
           "    " + step.call.format(in0="a", in1="b", out="o"),
           f"    fwrite(o, 1, {n}, stdout); }}", "  return 0; }"]
    (tmp_path / "add_main.c").write_text("\n".join(src) + "\n")
    rt = ctarget.RUNTIME_DIR
    exe = tmp_path / "add_main"
    subprocess.run(["gcc", *ctarget.CFLAGS, "-I", str(rt), str(tmp_path / "add_main.c"), str(rt / "edgekd_nn.c"),
                    "-o", str(exe)], check=True)
    data = b"".join(a.tobytes() + b.tobytes() for a, b in zip(x1, x2))
    out = subprocess.run([str(exe)], input=data, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.int8).reshape(x1.shape)


@pytest.mark.parametrize("op,same_q", [(fb.BuiltinOperator.RELU6, False), (fb.BuiltinOperator.RELU, False),
                                       (fb.BuiltinOperator.RELU6, True), (fb.BuiltinOperator.QUANTIZE, False)])
def test_standalone_activation_and_requantize_exact(tmp_path, op, same_q):
    rng = np.random.default_rng(op * 3 + same_q)
    y, _ = check_exact(tmp_path, unary_model(rng, op, (1, 4, 5, 6), same_q=same_q), rng)
    _not_trivial(y)


def test_transpose_and_pad_exact(tmp_path):
    rng = np.random.default_rng(3)
    check_exact(tmp_path / "t", transpose_model(rng, (1, 3, 5, 4), (0, 2, 3, 1)), rng)
    check_exact(tmp_path / "p", pad_model(rng, (1, 5, 4, 3), [(0, 0), (1, 2), (2, 1), (0, 0)]), rng)


def test_quantize_multiplier_matches_definition():
    """m * 2^shift / 2^31 reproduces the real multiplier to Q31 precision; edge cases as in TFLite."""
    for real in [1e-6, 0.0123, 0.5, 0.99999999999, 1.0, 3.75, 2.0 ** -40]:
        m, s = quantize_multiplier(real)
        if real < 2.0 ** -32:
            assert (m, s) == (0, 0)
            continue
        assert 2**30 <= m < 2**31
        assert abs(m * 2.0**s / 2**31 - real) <= real * 2.0**-30
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1.0) == (2**30, 1)


def test_runtime_compiles_freestanding(tmp_path):
    """The runtime needs no libc: it compiles with -ffreestanding and links no external symbol."""
    import subprocess

    from firmware_export.targets import c as ctarget

    obj = tmp_path / "nn.o"
    subprocess.run(["gcc", *ctarget.CFLAGS, "-ffreestanding", "-c", str(ctarget.RUNTIME_DIR / "edgekd_nn.c"),
                    "-o", str(obj)], check=True)
    nm = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True)
    if nm.returncode == 0:
        assert nm.stdout.strip() == "", f"runtime references external symbols: {nm.stdout}"
    src = (ctarget.RUNTIME_DIR / "edgekd_nn.c").read_text() + (ctarget.RUNTIME_DIR / "edgekd_nn.h").read_text()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)  # code only, not comments
    for banned in ("malloc", "float ", "double ", "<string.h>", "<stdlib.h>", "<math.h>"):
        assert banned not in src, banned


# ---- the graphs litert-torch actually produces ---------------------------------------------------

def _convert_int8(module, shape, seed=0):
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(seed)
    module = module.eval()
    x = torch.randn(1, *shape)
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    g = prepare_pt2e(torch.export.export(module, (x,)).module(), q)
    for _ in range(16):
        g(torch.randn(1, *shape))
    g = convert_pt2e(g, fold_quantize=False)
    return litert_torch.convert(g, (x,), quant_config=QuantConfig(pt2e_quantizer=q))


@pytest.fixture(scope="session")
def litert_single_ops(tmp_path_factory):
    """Three tiny single-op modules converted by litert-torch int8 (once per session)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class ConvS2(nn.Module):  # stride 2, padding 1 on an odd size -> PAD + VALID conv, fused relu
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    class DwMult2(nn.Module):  # depthwise with depth multiplier 2
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(4, 8, 3, padding=1, groups=4)

        def forward(self, x):
            return self.dw(x)

    folder = tmp_path_factory.mktemp("litert_ops")
    out = {}
    for name, module, shape in [("conv_s2", ConvS2(), (3, 9, 11)), ("dw_m2", DwMult2(), (4, 7, 7)),
                                ("linear", nn.Sequential(nn.Linear(20, 9)), (20,))]:
        path = folder / f"{name}.tflite"
        _convert_int8(module, shape).export(str(path))
        out[name] = path
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conv_s2", "dw_m2", "linear"])
def test_litert_single_op_exact(tmp_path, litert_single_ops, name):
    """The C of what litert-torch really emits equals TFLite Micro bit for bit. (LiteRT's BUILTIN_REF
    FULLY_CONNECTED rounds 1 LSB off TFLM on ~0.1% of outputs, so TFLM is the reference here.)"""
    from firmware_export.interp import run_tflm, tflm_interpreter

    path = litert_single_ops[name]
    g = read_tflite(path)
    x = np.random.default_rng(1).integers(-128, 128, size=(20,) + tuple(g.tensors[g.inputs[0]].shape[1:]),
                                         dtype=np.int8)
    y_c = build_c(path, tmp_path / "c", name=name).predict_int8(x)
    y_tflm = run_tflm(tflm_interpreter(path), x)
    np.testing.assert_array_equal(y_c, y_tflm.reshape(y_c.shape))
    assert len(np.unique(y_tflm)) > 4


def test_srdhm_single_shift_equals_two_branch_definition(tmp_path):
    """ekd_srdhm's one-shift form equals TFLite's (ab + nudge) / 2^31 with a sign-dependent nudge,
    on edge values and 2 million random pairs (computed in C, compared in C)."""
    import subprocess

    from firmware_export.targets import c as ctarget

    src = r'''
#include <stdio.h>
#include "edgekd_nn.h"
static int32_t two_branch(int32_t a, int32_t b) {
    int64_t ab, nudge;
    if (a == b && a == INT32_MIN) return INT32_MAX;
    ab = (int64_t)a * b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}
static uint32_t s = 12345u;
static int32_t rnd(void) { s = s * 1664525u + 1013904223u; return (int32_t)s; }
int main(void) {
    static const int32_t edge[] = {0, 1, -1, 2, -2, 3, -3, INT32_MIN, INT32_MAX, INT32_MIN + 1,
                                   1 << 30, -(1 << 30), (1 << 30) + 1, -(1 << 30) - 1, 46341, -46341};
    long bad = 0, i, j, n = (long)(sizeof edge / sizeof edge[0]);
    for (i = 0; i < n; ++i) for (j = 0; j < n; ++j) bad += ekd_srdhm(edge[i], edge[j]) != two_branch(edge[i], edge[j]);
    for (i = 0; i < 2000000; ++i) {
        int32_t a = rnd(), b = rnd();
        if (i & 1) a >>= (i % 31);
        bad += ekd_srdhm(a, b) != two_branch(a, b);
    }
    printf("%ld\n", bad);
    return 0;
}
'''
    (tmp_path / "srdhm.c").write_text(src)
    exe = tmp_path / "srdhm"
    subprocess.run(["gcc", *ctarget.CFLAGS, "-I", str(ctarget.RUNTIME_DIR), str(tmp_path / "srdhm.c"), "-o", str(exe)],
                   check=True)
    assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip() == "0"
