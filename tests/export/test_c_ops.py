"""The native C target's softmax, logistic, tanh, hard swish, leaky relu, mean, broadcasting
mul/add/sub and concatenation, and models with several inputs/outputs, against TFLite Micro bit for
bit (0 LSB).

Hand-built .tflite graphs give many shapes and quantizations fast (elementwise ops see all 256 int8
input values at once); tiny torch modules through litert-torch int8 check the graphs the converter
really emits for the PyTorch idioms (x * sigmoid(x), squeeze-excite, torch.cat, x.mean((2, 3)), ...).
"""
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite_micro")
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to compile the generated C", allow_module_level=True)

from ai_edge_litert import schema_py_generated as fb  # noqa: E402

from firmware_export.errors import ExportError  # noqa: E402
from firmware_export.interp import tflm_interpreter  # noqa: E402
from firmware_export.targets import c as ctarget  # noqa: E402
from firmware_export.targets.c import build_c  # noqa: E402
from firmware_export.tflite_reader import read_tflite  # noqa: E402

from tflite_graph import INT8, INT32, Graph  # noqa: E402
from tflite_graph import options as opts  # noqa: E402

OP = fb.BuiltinOperator
OPT = fb.BuiltinOptions


def unary_graph(code, shape, q_in, q_out, options_type=OPT.NONE, options=None) -> bytes:
    g = Graph()
    x = g.tensor(shape, scale=q_in[0], zp=q_in[1], name="x")
    y = g.tensor(shape, scale=q_out[0], zp=q_out[1], name="y")
    g.op(code, [x], [y], options_type, options)
    return g.finish([x], [y])


# ---- running: TFLite Micro and the generated C -----------------------------------------------------

def tflm_outputs(path, xs):
    """TFLite Micro on each sample; xs: list (one array per graph input) of (N, ...) int8 arrays."""
    g = read_tflite(path)
    interp = tflm_interpreter(path, arena_size=65536 + 4 * sum(t.size * 4 for t in g.tensors))
    n_out = len(g.outputs)
    outs = [[] for _ in range(n_out)]
    for i in range(len(xs[0])):
        for k, x in enumerate(xs):  # set every input before every invoke (TFLM reuses input memory)
            interp.set_input(np.ascontiguousarray(x[i][None]), k)
        interp.invoke()
        for k in range(n_out):
            outs[k].append(np.array(interp.get_output(k))[0].copy())
    return [np.stack(o) for o in outs]


def inputs_for(path, rng, n=10):
    """Random int8 samples for every graph input, plus all -128 and all 127 (saturation)."""
    g = read_tflite(path)
    xs = []
    for i in g.inputs:
        shape = g.tensors[i].shape[1:]
        x = rng.integers(-128, 128, size=(n,) + tuple(shape), dtype=np.int8)
        xs.append(np.concatenate([x, np.full((1,) + tuple(shape), -128, np.int8),
                                  np.full((1,) + tuple(shape), 127, np.int8)]))
    return xs


def check_exact(tmp_path, model, rng=None, xs=None, name="m"):
    """Build C for the model bytes (or path), run it and TFLM on the same inputs, assert 0 LSB."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if isinstance(model, bytes):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(model)
    else:
        path = model
    if xs is None:
        xs = inputs_for(path, rng if rng is not None else np.random.default_rng(0))
    cm = build_c(path, tmp_path / f"c_{name}", name=name)
    y_c = cm.predict_int8(xs if len(xs) > 1 else xs[0])
    y_c = list(y_c) if isinstance(y_c, tuple) else [y_c]
    y_ref = tflm_outputs(path, xs)
    assert len(y_c) == len(y_ref)
    for a, b in zip(y_c, y_ref):
        np.testing.assert_array_equal(a.reshape(b.shape), b)
    return y_ref, cm


ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)  # one sample: every int8 value


def spread(y):
    assert len(np.unique(y)) > 8, f"outputs nearly constant: {np.unique(y)}"


def test_ops_runtime_is_freestanding(tmp_path):
    """edgekd_nn_ops.c needs no libc and no float: compiles -ffreestanding, links no external symbol."""
    import re

    obj = tmp_path / "ops.o"
    subprocess.run(["gcc", *ctarget.CFLAGS, "-ffreestanding", "-c", str(ctarget.RUNTIME_DIR / "edgekd_nn_ops.c"),
                    "-o", str(obj)], check=True)
    nm = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True)
    if nm.returncode == 0:
        assert nm.stdout.strip() == "", f"runtime references external symbols: {nm.stdout}"
    src = "".join((ctarget.RUNTIME_DIR / f).read_text() for f in ("edgekd_nn_ops.c", "edgekd_nn_ops.h"))
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    for banned in ("malloc", "float ", "double ", "<string.h>", "<stdlib.h>", "<math.h>"):
        assert banned not in src, banned


# ---- elementwise activations: the whole int8 input domain per quantization ------------------------

def sweep(tmp_path, code, cases, options_type=OPT.NONE, make_options=None):
    """One graph with a branch per (q_in, q_out[, option]) case, each fed every int8 value; returns
    the TFLM (= C) outputs per case. Also exercises models with many inputs and outputs."""
    g = Graph()
    ins, outs = [], []
    for j, case in enumerate(cases):
        q_in, q_out = case[0], case[1]
        ins.append(g.tensor((1, 256), scale=q_in[0], zp=q_in[1], name=f"x{j}"))
        outs.append(g.tensor((1, 256), scale=q_out[0], zp=q_out[1], name=f"y{j}"))
        g.op(code, [ins[-1]], [outs[-1]], options_type, make_options(*case[2:]) if make_options else None)
    y, _ = check_exact(tmp_path, g.finish(ins, outs), xs=[ALL_INT8] * len(cases), name="sweep")
    return [o.reshape(-1) for o in y]


SIGMOID_SCALES = [(0.004, -128), (0.02, 3), (0.0625, 17), (0.1, -40), (0.3, 0)]


@pytest.mark.parametrize("code,q_out", [(OP.LOGISTIC, (1 / 256, -128)), (OP.TANH, (1 / 128, 0))],
                         ids=["logistic", "tanh"])
def test_sigmoid_tanh_every_input_value(tmp_path, code, q_out):
    for y in sweep(tmp_path, code, [(q, q_out) for q in SIGMOID_SCALES]):
        spread(y)
        assert np.all(np.diff(y.astype(int)) >= 0)  # monotone


# the last two: a float32 and a double preparation give different outputs (found by search)
HARDSWISH_Q = [((0.03, 5), (0.02, -100)), ((0.05, -20), (0.05, -20)), ((0.01, 0), (0.004, -120)),
               ((0.2, 40), (0.1, -128)), ((0.004, 127), (0.06, 100)),
               ((0.00844641774892807, -16), (0.05604520067572594, -7)),
               ((0.07512427866458893, -15), (0.0492265559732914, -4))]


def test_hard_swish_every_input_value(tmp_path):
    for y in sweep(tmp_path, OP.HARD_SWISH, HARDSWISH_Q):
        assert len(np.unique(y)) > 2


LEAKY_CASES = [((0.03, 5), (0.02, -30), a) for a in (0.01, 0.1, 0.2, 1.7, -0.3, 0.0)] + [
    ((0.05, -20), (0.05, -20), 0.2),
    # float32 and double preparations of the identity multiplier give different outputs here
    ((0.031308311969041824, -128), (0.06919502466917038, -128), 0.1)]


def test_leaky_relu_every_input_value(tmp_path):
    for y in sweep(tmp_path, OP.LEAKY_RELU, LEAKY_CASES, OPT.LeakyReluOptions,
                   lambda alpha: opts(fb.LeakyReluOptionsT, alpha=alpha)):
        spread(y)


# ---- broadcasting binary operators -----------------------------------------------------------------

# one sample of every (a, b) int8 pair: a[i, j] = i - 128, b[i, j] = j - 128
ALL_PAIRS = (np.repeat(ALL_INT8.reshape(-1), 256).reshape(1, 256, 256), np.tile(ALL_INT8.reshape(-1), 256).reshape(1, 256, 256))


BINARY = {OP.ADD: (OPT.AddOptions, fb.AddOptionsT), OP.SUB: (OPT.SubOptions, fb.SubOptionsT),
          OP.MUL: (OPT.MulOptions, fb.MulOptionsT)}


def binary_graph(outs, shape_a, shape_b, shape_out, q_a, q_b, act=0, const_b=None) -> bytes:
    """ADD / SUB / MUL of the same two operands, one graph output each: outs = [(code, q_out), ...]."""
    g = Graph()
    a = g.tensor(shape_a, scale=q_a[0], zp=q_a[1], name="a")
    data = None if const_b is None else np.asarray(const_b, np.int8).reshape(shape_b)
    b = g.tensor(shape_b, scale=q_b[0], zp=q_b[1], data=data, name="b")
    ys = []
    for code, q_out in outs:
        ys.append(g.tensor(shape_out, scale=q_out[0], zp=q_out[1], name=f"y{len(ys)}"))
        g.op(code, [a, b], [ys[-1]], BINARY[code][0], opts(BINARY[code][1], fusedActivationFunction=act))
    return g.finish([a] if const_b is not None else [a, b], ys)


def add_sub_mul(q_a, q_b, z_out=0):
    """Output quantizations for ADD, SUB and MUL of operands so quantized (outputs spread, few clamp)."""
    return [(OP.ADD, (q_a[0] + q_b[0], z_out)), (OP.SUB, (q_a[0] + q_b[0], z_out)),
            (OP.MUL, (q_a[0] * q_b[0] * 40, z_out))]


# scales where a float32 and a double preparation of SUB (1) and MUL (2) give different outputs on
# some pair (found by search): exactness there shows the preparation is TFLite Micro's
PAIR_Q = [((0.0299, 3), (0.0334, -7), (0.0823, 11)),
          ((0.058862898498773575, 17), (0.02454862929880619, 16), (0.08583560585975647, 3)),
          ((0.030471064150333405, -17), (0.06819748878479004, 1), (0.05154269561171532, 3)),
          ((0.01, -128), (0.2, 127), (0.05, 0))]


@pytest.mark.parametrize("q", PAIR_Q, ids=range(len(PAIR_Q)))
def test_binary_every_input_pair(tmp_path, q):
    """ADD, SUB and MUL on all 65,536 (a, b) int8 pairs (one sample); the given output scale for
    ADD / SUB (the discriminating cases need exactly it), a spread one for MUL unless given fits."""
    q_a, q_b, q_out = q
    outs = [(OP.ADD, q_out), (OP.SUB, q_out)]
    outs.append((OP.MUL, q_out if q_out[0] <= 0.5 * q_a[0] * q_b[0] * 60 else (q_a[0] * q_b[0] * 40, q_out[1])))
    y, _ = check_exact(tmp_path, binary_graph(outs, (1, 256, 256), (1, 256, 256), (1, 256, 256), q_a, q_b),
                       xs=list(ALL_PAIRS), name="pairs")
    for part in y:
        spread(part[0])


BCAST_CASES = [  # shape a, shape b, output shape
    ((1, 4, 5, 3), (1, 1, 1, 3), (1, 4, 5, 3)),    # squeeze-excite: a channel vector over H x W
    ((1, 4, 5, 3), (1, 4, 1, 1), (1, 4, 5, 3)),
    ((1, 1, 5, 1), (1, 4, 1, 3), (1, 4, 5, 3)),    # both operands broadcast
    ((1, 1, 1, 7), (1, 3, 2, 7), (1, 3, 2, 7)),    # the smaller operand first
    ((1, 6, 5), (1, 1, 5), (1, 6, 5)),
    ((1, 9), (1, 1), (1, 9)),
    ((1, 3, 4, 5), (1, 3, 4, 5), (1, 3, 4, 5)),    # same shapes
]


@pytest.mark.parametrize("case", BCAST_CASES, ids=lambda c: "x".join(map(str, c[0])) + "_" + "x".join(map(str, c[1])))
def test_binary_broadcast(tmp_path, case):
    rng = np.random.default_rng(len(case[0]) * 10 + case[0][-1])
    q_a, q_b = (float(rng.uniform(0.01, 0.05)), int(rng.integers(-20, 21))), (float(rng.uniform(0.01, 0.05)), 7)
    model = binary_graph(add_sub_mul(q_a, q_b, int(rng.integers(-20, 21))), *case, q_a, q_b)
    y, _ = check_exact(tmp_path, model, rng, name="bcast")
    for part in y:
        spread(part[:-2])


@pytest.mark.parametrize("act", [fb.ActivationFunctionType.NONE, fb.ActivationFunctionType.RELU,
                                 fb.ActivationFunctionType.RELU6], ids=["none", "relu", "relu6"])
def test_binary_with_constant_operand_and_fused_activation(tmp_path, act):
    rng = np.random.default_rng(3)
    const = rng.integers(-128, 128, size=(1, 1, 1, 5), dtype=np.int8)
    model = binary_graph(add_sub_mul((0.02, 3), (0.03, -2), -5), (1, 3, 4, 5), (1, 1, 1, 5), (1, 3, 4, 5),
                         (0.02, 3), (0.03, -2), act, const)
    y, _ = check_exact(tmp_path, model, rng, name="constop")
    for part in y:
        spread(part[:-2])


# ---- softmax ---------------------------------------------------------------------------------------

SOFTMAX_CASES = [((1, 10), 1.0, (0.1, 4)), ((1, 3, 5, 7), 1.0, (0.05, -10)), ((1, 2, 1, 33), 0.5, (0.2, 30)),
                 ((1, 4, 100), 2.3, (0.03, -128)), ((1, 6, 3), 1.0, (0.004, 0))]


@pytest.mark.parametrize("shape,beta,q_in", SOFTMAX_CASES, ids=lambda v: str(v))
def test_softmax(tmp_path, shape, beta, q_in):
    rng = np.random.default_rng(shape[-1])
    model = unary_graph(OP.SOFTMAX, shape, q_in, (1 / 256, -128), OPT.SoftmaxOptions, opts(fb.SoftmaxOptionsT, beta=beta))
    xs = inputs_for_shape(shape, rng)
    one_hot = np.full((1,) + shape[1:], -128, np.int8)
    one_hot[..., 0] = 127
    y, _ = check_exact(tmp_path, model, xs=[np.concatenate([xs, one_hot])], name="softmax")
    spread(y[0][:-3])


def inputs_for_shape(shape, rng, n=10):
    x = rng.integers(-128, 128, size=(n,) + tuple(shape[1:]), dtype=np.int8)
    return np.concatenate([x, np.full((1,) + tuple(shape[1:]), -128, np.int8), np.full((1,) + tuple(shape[1:]), 127, np.int8)])


def test_softmax_refuses_other_output_quantization(tmp_path):
    path = tmp_path / "sm.tflite"
    path.write_bytes(unary_graph(OP.SOFTMAX, (1, 10), (0.1, 0), (0.01, 0), OPT.SoftmaxOptions, opts(fb.SoftmaxOptionsT, beta=1.0)))
    with pytest.raises(ExportError, match="scale 1/256"):
        build_c(path, tmp_path / "c")


# ---- mean --------------------------------------------------------------------------------------------

def mean_graph(shape, axes, keep, q_in, q_out) -> bytes:
    g = Graph()
    x = g.tensor(shape, scale=q_in[0], zp=q_in[1], name="x")
    ax = g.const(np.asarray(axes, np.int32))
    rank = len(shape)
    resolved = {a % rank for a in axes}
    out_shape = [1 if d in resolved else n for d, n in enumerate(shape)] if keep else \
        [n for d, n in enumerate(shape) if d not in resolved]
    y = g.tensor(out_shape, scale=q_out[0], zp=q_out[1], name="y")
    g.op(OP.MEAN, [x, ax], [y], OPT.ReducerOptions, opts(fb.ReducerOptionsT, keepDims=keep))
    return g.finish([x], [y])


MEAN_CASES = [((1, 5, 7, 3), [1, 2], True), ((1, 5, 7, 3), [1, 2], False), ((1, 6, 5, 4), [3], False),
              ((1, 6, 5, 4), [1], True), ((1, 6, 5, 4), [-1, -2], False), ((1, 4, 3, 5), [1, 2, 3], True),
              ((1, 6, 5), [1], False), ((1, 3, 9, 2), [2, 1], False), ((1, 13, 11, 7), [1, 2], False)]


@pytest.mark.parametrize("shape,axes,keep", MEAN_CASES, ids=lambda v: str(v))
def test_mean(tmp_path, shape, axes, keep):
    rng = np.random.default_rng(sum(shape))
    q_in = (float(rng.uniform(0.01, 0.05)), int(rng.integers(-20, 21)))
    q_out = (q_in[0] * float(rng.uniform(0.1, 0.4)), int(rng.integers(-20, 21)))  # a mean spreads less than its inputs
    y, _ = check_exact(tmp_path, mean_graph(shape, axes, keep, q_in, q_out), rng, name="mean")
    assert len(np.unique(y[0])) > 3


# ---- concatenation ------------------------------------------------------------------------------------

def concat_graph(shapes, axis, q=(0.03, 4), const_index=None, q_in=None) -> bytes:
    g = Graph()
    ins, graph_in = [], []
    rank = len(shapes[0])
    ax = axis % rank
    for j, shape in enumerate(shapes):
        qj = q_in[j] if q_in is not None else q
        if j == const_index:
            ins.append(g.tensor(shape, scale=qj[0], zp=qj[1], data=np.arange(np.prod(shape)).astype(np.int8).reshape(shape)))
        else:
            ins.append(g.tensor(shape, scale=qj[0], zp=qj[1], name=f"x{j}"))
            graph_in.append(ins[-1])
    out_shape = list(shapes[0])
    out_shape[ax] = sum(s[ax] for s in shapes)
    y = g.tensor(out_shape, scale=q[0], zp=q[1], name="y")
    g.op(OP.CONCATENATION, ins, [y], OPT.ConcatenationOptions, opts(fb.ConcatenationOptionsT, axis=axis))
    return g.finish(graph_in, [y])


CONCAT_CASES = [([(1, 4, 5, 3), (1, 4, 5, 2)], 3, None), ([(1, 4, 5, 3), (1, 2, 5, 3)], 1, None),
                ([(1, 4, 5, 3), (1, 4, 1, 3), (1, 4, 2, 3)], 2, None), ([(1, 4, 5, 3), (1, 4, 5, 6)], -1, 1),
                ([(1, 5), (1, 3)], 1, None), ([(1, 2, 3), (1, 2, 3), (1, 2, 1)], -1, 0)]


@pytest.mark.parametrize("shapes,axis,const_index", CONCAT_CASES, ids=lambda v: str(v))
def test_concatenation(tmp_path, shapes, axis, const_index):
    y, _ = check_exact(tmp_path, concat_graph(shapes, axis, const_index=const_index), np.random.default_rng(0),
                       name="cat")
    spread(y[0][:-2])


def test_concatenation_refuses_mixed_quantization(tmp_path):
    """TFLite and TFLite Micro copy int8 concatenation inputs; converters requantize with QUANTIZE first."""
    path = tmp_path / "cat.tflite"
    path.write_bytes(concat_graph([(1, 4, 3), (1, 4, 2)], 2, q_in=[(0.03, 4), (0.05, 4)]))
    with pytest.raises(ExportError, match="quantized differently"):
        build_c(path, tmp_path / "c")


def test_requantize_then_concatenate(tmp_path):
    """The converter's way to concatenate differently quantized tensors: QUANTIZE (int8 -> int8), then copy."""
    g = Graph()
    a = g.tensor((1, 4, 3), scale=0.03, zp=4, name="a")
    b = g.tensor((1, 4, 2), scale=0.05, zp=-9, name="b")
    b_rq = g.tensor((1, 4, 2), scale=0.03, zp=4, name="b_rq")
    g.op(OP.QUANTIZE, [b], [b_rq])
    y = g.tensor((1, 4, 5), scale=0.03, zp=4, name="y")
    g.op(OP.CONCATENATION, [a, b_rq], [y], OPT.ConcatenationOptions, opts(fb.ConcatenationOptionsT, axis=2))
    y_ref, _ = check_exact(tmp_path, g.finish([a, b], [y]), np.random.default_rng(1), name="rqcat")
    spread(y_ref[0][:-2])


def test_mean_multiplier_prepared_in_double(tmp_path):
    """Scales and input sums where a float32 ratio s_in / s_out would give other outputs than TFLite
    Micro's double one (found by search): 35 values summing to -1269 and to 1479."""
    model = mean_graph((1, 5, 7, 1), [1, 2], False, (0.044062092900276184, 3), (0.016562554985284805, -4))
    x = np.array([[-36] * 26 + [-37] * 9, [42] * 26 + [43] * 9], np.int8)
    assert x[0].astype(int).sum() == -1269 and x[1].astype(int).sum() == 1479
    y, _ = check_exact(tmp_path, model, xs=[rng_perm(x).reshape(2, 5, 7, 1)], name="meand")
    assert y[0].reshape(-1).tolist() == [-109, 101]


def rng_perm(x):
    rng = np.random.default_rng(0)
    return np.stack([rng.permutation(r) for r in x])


# ---- nearest-neighbour resize -----------------------------------------------------------------------

RESIZE_CASES = [((4, 5), (8, 10), False, True), ((5, 7), (7, 3), False, True), ((5, 7), (7, 3), True, False),
                ((3, 4), (6, 9), False, False), ((6, 6), (4, 11), True, False), ((1, 3), (2, 7), False, True)]


@pytest.mark.parametrize("size_in,size_out,align,half", RESIZE_CASES, ids=lambda v: str(v))
def test_resize_nearest_neighbor(tmp_path, size_in, size_out, align, half):
    """F.interpolate(..., mode="nearest") becomes RESIZE_NEAREST_NEIGHBOR (half-pixel centres);
    also non-integer scales, downsizing and align_corners."""
    g = Graph()
    x = g.tensor((1, *size_in, 3), scale=0.02, zp=-4, name="x")
    y = g.tensor((1, *size_out, 3), scale=0.02, zp=-4, name="y")
    g.op(OP.RESIZE_NEAREST_NEIGHBOR, [x, g.const(list(size_out))], [y], OPT.ResizeNearestNeighborOptions,
         opts(fb.ResizeNearestNeighborOptionsT, alignCorners=align, halfPixelCenters=half))
    y_ref, _ = check_exact(tmp_path, g.finish([x], [y]), np.random.default_rng(2), name="resize")
    spread(y_ref[0][:-2])


# ---- several inputs and outputs ------------------------------------------------------------------------

def multi_io_graph() -> bytes:
    """Two inputs; three outputs listed out of production order: s = sigmoid(x + y) is an output that
    a later op reads back (p = s * x), and r = reshape(s) an output that aliases it."""
    g = Graph()
    x = g.tensor((1, 6, 4), scale=0.03, zp=-3, name="x")
    y = g.tensor((1, 6, 4), scale=0.02, zp=5, name="y")
    t = g.op(OP.ADD, [x, y], [g.tensor((1, 6, 4), scale=0.04, zp=1)], OPT.AddOptions, fb.AddOptionsT())
    s = g.op(OP.LOGISTIC, [t], [g.tensor((1, 6, 4), scale=1 / 256, zp=-128, name="s")])
    r = g.tensor((1, 24), scale=1 / 256, zp=-128, name="r")
    g.op(OP.RESHAPE, [s, g.const([1, 24])], [r], OPT.ReshapeOptions, opts(fb.ReshapeOptionsT, newShape=[1, 24]))
    p = g.op(OP.MUL, [s, x], [g.tensor((1, 6, 4), scale=0.03 / 256 * 60, zp=0, name="p")], OPT.MulOptions,
             fb.MulOptionsT())
    return g.finish([x, y], [p, s, r])


def test_several_inputs_and_outputs(tmp_path):
    rng = np.random.default_rng(5)
    y_ref, cm = check_exact(tmp_path, multi_io_graph(), rng, name="multi")
    assert [o.shape[1:] for o in y_ref] == [(6, 4), (6, 4), (24,)]
    np.testing.assert_array_equal(y_ref[1].reshape(len(y_ref[1]), -1), y_ref[2])
    for y in y_ref:
        spread(y)
    h = (cm.out_dir / "multi.h").read_text()
    assert ("int multi_invoke(const int8_t *input0, const int8_t *input1, int8_t *output0, int8_t *output1, "
            "int8_t *output2);") in h
    for macro, value in [("NUM_INPUTS", 2), ("NUM_OUTPUTS", 3), ("INPUT1_SIZE", 24), ("OUTPUT2_SIZE", 24),
                         ("OUTPUT1_ZERO_POINT", -128), ("INPUT0_ZERO_POINT", -3)]:
        assert f"#define MULTI_{macro} ({value})" in h
    assert "MULTI_OUTPUT_SIZE" not in h and "MULTI_INPUT_SIZE" not in h
    assert cm.output_shapes == ((6, 4), (6, 4), (24,)) and cm.input_shapes == ((6, 4), (6, 4))
    assert cm.output_quant[1] == (1 / 256, -128)
    # outputs live in the caller's buffers: the arena holds only x + y
    assert cm.arena_bytes == 24


def test_one_output_keeps_the_single_pointer_abi(tmp_path):
    path = tmp_path / "one.tflite"
    path.write_bytes(unary_graph(OP.LOGISTIC, (1, 8), (0.05, 0), (1 / 256, -128)))
    cm = build_c(path, tmp_path / "c", name="one")
    h = (tmp_path / "c" / "one.h").read_text()
    assert "int one_invoke(const int8_t *input, int8_t *output);" in h
    assert "#define ONE_OUTPUT_SIZE (8)" in h and "#define ONE_INPUT_ZERO_POINT (0)" in h
    assert isinstance(cm.predict_int8(np.zeros((2, 8), np.int8)), np.ndarray)


# ---- the graphs litert-torch emits for everyday PyTorch idioms ---------------------------------------

def _torch_modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Activations(nn.Module):
        """x * sigmoid(x) (SiLU written so the quantizer keeps it int8), squeeze-excite, hardswish,
        leaky relu, tanh, x.mean((2, 3)) into a linear head. Each op feeds a conv/linear, so the
        PT2E graph quantizes its output and the converter emits the int8 op."""

        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 6, 3)
            self.c4, self.c5 = nn.Conv2d(6, 6, 1), nn.Conv2d(6, 5, 1)
            self.se1, self.se2 = nn.Conv2d(8, 3, 1), nn.Conv2d(3, 8, 1)
            self.fc = nn.Linear(5, 4)

        def forward(self, x):
            x = self.c1(x)
            x = x * torch.sigmoid(x)
            s = torch.sigmoid(self.se2(torch.relu(self.se1(x.mean((2, 3), keepdim=True)))))
            x = self.c2(x * s)
            x = self.c3(F.hardswish(x))
            x = self.c4(F.leaky_relu(x, 0.1))
            x = self.c5(torch.tanh(x))
            return self.fc(x.mean((2, 3)))

    class Structure(nn.Module):
        """torch.cat of two branches, centring x - x.mean(...) (broadcast SUB), a broadcast ADD,
        F.pad and nn.ZeroPad2d, nearest-neighbour upsampling."""

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 3, 1)
            self.c, self.d, self.e = nn.Conv2d(7, 6, 3), nn.Conv2d(6, 6, 1), nn.Conv2d(6, 6, 1)
            self.f = nn.Conv2d(6, 5, 1)
            self.pad = nn.ZeroPad2d((1, 1, 2, 0))

        def forward(self, x):
            x = torch.cat([torch.relu(self.a(x)), self.b(x)], dim=1)
            x = self.c(F.pad(x, (1, 2, 0, 1)))
            x = self.d(x - x.mean((2, 3), keepdim=True))
            x = self.e(self.pad(x + x.mean((2, 3), keepdim=True)))
            return self.f(F.interpolate(x, scale_factor=2.0, mode="nearest")).flatten(1)

    class TwoHeads(nn.Module):
        """(logits, features): a classifier that also returns its pooled embedding."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.fc = nn.Linear(6, 4)

        def forward(self, x):
            features = torch.relu(self.conv(x)).mean((2, 3))
            return self.fc(features), features

    class Softmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1)

        def forward(self, x):
            return self.b(torch.softmax(self.a(x), dim=1))

    return {"activations": Activations(), "structure": Structure(), "two_heads": TwoHeads(), "softmax": Softmax()}


TORCH_SHAPES = {"activations": (3, 9, 8), "structure": (3, 7, 6), "two_heads": (3, 5, 7), "softmax": (3, 4, 5)}


@pytest.fixture(scope="module")
def torch_tflites(tmp_path_factory):
    """The modules above through PT2E int8 (litert-torch's quantizer, 16 calibration batches) and
    litert-torch, once per module run."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    folder = tmp_path_factory.mktemp("torch_ops")
    out = {}
    for name, module in _torch_modules().items():
        torch.manual_seed(0)
        for p in module.parameters():  # spread weights so every layer's outputs use the int8 range
            torch.nn.init.uniform_(p, -0.6, 0.6)
        shape = TORCH_SHAPES[name]
        x = torch.randn(1, *shape)
        q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        g = prepare_pt2e(torch.export.export(module.eval(), (x,)).module(), q)
        for _ in range(16):
            g(torch.randn(1, *shape))
        g = convert_pt2e(g, fold_quantize=False)
        path = folder / f"{name}.tflite"
        litert_torch.convert(g, (x,), quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
        out[name] = path
    return out


def _ops(path):
    return [op.op for op in read_tflite(path).operators]


@pytest.mark.slow
def test_torch_activations_model(tmp_path, torch_tflites):
    path = torch_tflites["activations"]
    ops = _ops(path)
    for op in ("LOGISTIC", "MUL", "MEAN", "HARD_SWISH", "LEAKY_RELU", "TANH"):
        assert op in ops, (op, ops)
    assert "DEQUANTIZE" not in ops
    y, _ = check_exact(tmp_path, path, np.random.default_rng(0), name="acts")
    spread(y[0])


@pytest.mark.slow
def test_torch_structure_model(tmp_path, torch_tflites):
    path = torch_tflites["structure"]
    ops = _ops(path)
    for op in ("CONCATENATION", "PAD", "SUB", "ADD", "MEAN", "RESIZE_NEAREST_NEIGHBOR"):
        assert op in ops, (op, ops)
    assert "DEQUANTIZE" not in ops
    y, _ = check_exact(tmp_path, path, np.random.default_rng(1), name="structure")
    spread(y[0])


@pytest.mark.slow
def test_torch_model_with_two_outputs(tmp_path, torch_tflites):
    path = torch_tflites["two_heads"]
    y, cm = check_exact(tmp_path, path, np.random.default_rng(2), name="heads")
    assert sorted(s[-1] for s in cm.output_shapes) == [4, 6]
    for part in y:
        spread(part)


def _softmax_fixed_quantizer():
    """litert-torch's quantizer plus what it misses for torch.softmax (aten.softmax.int in a
    torch.export graph): the fixed int8 output quantization 1/256, -128 that TFLite requires."""
    import torch
    from litert_torch.quantize import pt2e_quantizer_utils as qu
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec, QuantizationAnnotation

    class Quantizer(PT2EQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            fixed = FixedQParamsQuantizationSpec(dtype=torch.int8, scale=1 / 256, zero_point=-128, quant_min=-128,
                                                 quant_max=127, qscheme=torch.per_tensor_affine)
            for n in model.graph.nodes:
                if n.op == "call_function" and n.target == torch.ops.aten.softmax.int:
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={n.args[0]: qu.get_input_act_qspec(self.global_config)},
                        output_qspec=fixed, _annotated=True)
            return model

    return Quantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


@pytest.mark.slow
def test_torch_softmax(tmp_path, torch_tflites):
    """litert-torch's quantizer leaves torch.softmax's output with an observed scale that TFLite
    Micro refuses (it requires 1/256): the C target refuses it too, naming the fix. With the fixed
    output quantization the SOFTMAX runs and equals TFLM."""
    torch = pytest.importorskip("torch")
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    assert "SOFTMAX" in _ops(torch_tflites["softmax"])
    with pytest.raises(ExportError, match="scale 1/256"):
        build_c(torch_tflites["softmax"], tmp_path / "refused")
    with pytest.raises(RuntimeError):
        tflm_interpreter(torch_tflites["softmax"], arena_size=1 << 16)

    module = _torch_modules()["softmax"].eval()
    torch.manual_seed(0)
    x = torch.randn(1, *TORCH_SHAPES["softmax"])
    q = _softmax_fixed_quantizer()
    g = prepare_pt2e(torch.export.export(module, (x,)).module(), q)
    for _ in range(16):
        g(3 * torch.randn(1, *TORCH_SHAPES["softmax"]))
    path = tmp_path / "softmax_fixed.tflite"
    litert_torch.convert(convert_pt2e(g, fold_quantize=False), (x,), quant_config=QuantConfig(pt2e_quantizer=q)
                         ).export(str(path))
    assert "SOFTMAX" in _ops(path)
    y, _ = check_exact(tmp_path, path, np.random.default_rng(3), name="softmax")
    spread(y[0])


# ---- Cortex-M: the same C cross-compiled, run in the emulator ------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("core,variant", [("cortex-m4", "native-c-dsp"), ("cortex-m4", "native-c"),
                                          ("cortex-m0plus", "native-c")])
def test_new_ops_on_cortex_m(tmp_path, torch_tflites, core, variant):
    """The new kernels cross-compiled for Cortex-M (DSP build, plain build on a DSP core, ARMv6-M)
    and run in the unicorn emulator equal TFLite Micro on the host."""
    pytest.importorskip("unicorn")
    pytest.importorskip("elftools")
    pytest.importorskip("capstone")
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is needed (make toolchain)")
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf

    models = {"acts": torch_tflites["activations"], "structure": torch_tflites["structure"]}
    sm = tmp_path / "softmax.tflite"
    sm.write_bytes(unary_graph(OP.SOFTMAX, (1, 3, 7), (0.08, 5), (1 / 256, -128), OPT.SoftmaxOptions,
                               opts(fb.SoftmaxOptionsT, beta=1.0)))
    models["sm"] = sm
    rng = np.random.default_rng(7)
    for name, path in models.items():
        cm = build_c(path, tmp_path / name, name=name)
        xs = inputs_for(path, rng, n=3)
        ref = tflm_outputs(path, xs)[0]
        build = build_elf(cm.out_dir, core, "-O2", name=name, variant=variant, out_dir=tmp_path / f"{name}_elf")
        emu = Emulator.from_elf(build.elf, core)
        for x, y in zip(xs[0], ref):
            t = emu.call(f"{name}_invoke", x.tobytes(), bytes(cm.output_size), outputs=[(1, cm.output_size)])
            assert t.returned == 0
            np.testing.assert_array_equal(np.frombuffer(t.outputs[0], np.int8), y.reshape(-1))
