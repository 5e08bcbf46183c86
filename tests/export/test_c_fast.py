"""The folded-offset kernels (conv as a 3-pixel GEMM, depthwise 3x3 through channel planes, fully
connected 4 rows per pass, ADD by tables) against TFLite Micro, exactly, on random shapes: on the
host (plain C), and cross-built for Cortex-M4 (DSP and plain) and Cortex-M0+ in the emulator.
Also: the export falls back to the older kernels where the fast requantization is not exact, and
the arena planner's overlaps hold under a simulation of each kernel's read/write order."""
import shutil

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite_micro")
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to compile the generated C", allow_module_level=True)

from ai_edge_litert import schema_py_generated as fb  # noqa: E402
from test_c_kernels import (NONE, RELU, RELU6, SAME, VALID, _not_trivial, check_exact, conv_model,  # noqa: E402
                            fc_model, pool_model)

from firmware_export.targets import arena  # noqa: E402
from firmware_export.targets.c import folded_requant, plan_arena, requant_records  # noqa: E402

CONV_CASES = [  # ih, iw, ic, oc, k, stride, padding, act, dil[, output zero point]: what it covers
    (5, 7, 8, 6, 1, 1, VALID, RELU, 1),     # 1x1 over every pixel (columns = pixels), 35 px: a partial group
    (4, 4, 12, 9, 1, 1, SAME, NONE, 1),     # pointwise, odd output channels, 16 px
    (6, 6, 3, 7, 1, 2, VALID, NONE, 1),     # 1x1 stride 2, 3 taps (< one step of 4)
    (7, 9, 5, 5, 3, 1, SAME, RELU6, 1),     # odd input channels (byte gather), 45 taps
    (8, 8, 16, 4, 3, 2, SAME, NONE, 1),     # whole-word runs, stride 2, SAME
    (9, 8, 4, 3, 3, 1, SAME, NONE, 2),      # dilation 2
    (10, 7, 1, 8, 5, 2, VALID, RELU, 1),    # 5x5, one input channel
    (6, 5, 8, 10, 2, 1, SAME, NONE, 1),     # 2x2 kernel, asymmetric SAME padding
    (2, 2, 4, 5, 3, 1, SAME, NONE, 1),      # 4 output pixels
    (1, 1, 7, 3, 1, 1, VALID, NONE, 1),     # one output pixel (only a partial group)
    (6, 6, 16, 8, 3, 1, SAME, RELU, 1, -128),    # ReLU with zero point -128 (no rounding correction), 72 steps
    (9, 7, 8, 16, 1, 1, VALID, RELU, 1, -128),   # pointwise, 8 input channels (4 steps), odd pixel count
    (5, 5, 4, 6, 1, 1, VALID, NONE, 1, -128),    # 4 taps (2 steps), zero point -128 without activation
    (4, 5, 10, 12, 3, 2, SAME, RELU6, 1, -128),  # RELU6 clamp with zero point -128, 90 taps
    (3, 4, 20, 8, 1, 1, VALID, NONE, 1),         # 10 steps: the unrolled body entered 9 steps before its end
    (2, 3, 24, 4, 1, 1, VALID, RELU, 1, -128),   # 12 steps (entered 11 before the end)
    (9, 8, 3, 5, 3, 1, SAME, RELU, 2),           # byte gather over the border with dilation 2
    (5, 9, 8, 4, 5, 1, SAME, NONE, 1),           # whole rows over the border: 2 columns of pad per side
]
DW_CASES = [  # ih, iw, channels, stride, padding, act[, output zero point]
    (7, 8, 3, 1, SAME, RELU),               # odd channel count
    (9, 7, 8, 2, SAME, NONE),
    (6, 5, 5, 2, VALID, RELU6),
    (1, 9, 4, 1, SAME, NONE),               # a single row
    (13, 5, 6, 1, SAME, NONE),              # DS-CNN-like: narrow rows, odd width
    (3, 3, 16, 1, SAME, NONE),              # tiny map
    (8, 11, 6, 2, SAME, NONE),              # odd width, stride 2
    (40, 40, 2, 1, SAME, RELU),             # large planes, two lone channels
    (25, 5, 16, 1, SAME, RELU, -128),       # DS-CNN-like narrow map: transposed planes, zero point -128
    (13, 4, 12, 2, SAME, RELU, -128),       # stride 2 on a narrow map (transposed), 4 channels per fill
    (6, 7, 9, 1, VALID, NONE),              # VALID, 9 channels (two groups of 4 and a lone channel)
    (10, 9, 4, 2, SAME, RELU6),             # stride 2, odd width, clamp
    (6, 6, 8, 1, SAME, RELU, -128),         # MobileNet's 6x6 maps: rows of a group and a pair
    (12, 12, 8, 2, SAME, NONE),             # stride 2 to 6x6: a pair at each row's end
]
FC_CASES = [(640, 13, RELU), (8, 5, NONE), (3, 9, RELU6), (64, 4, NONE), (37, 11, NONE)]
ADD_CASES = [  # h, w, channels, act, output zero point: ADD(x, conv(x))
    (5, 6, 8, RELU, -128),                  # ResNet's residual: zero point -128, 240 elements
    (3, 5, 5, NONE, None),                  # 75 elements: a tail of 3
    (4, 3, 3, RELU6, None),                 # clamp, 36 elements
]
POOL_CASES = [  # ih, iw, channels, k, stride, padding, act: average pooling
    (8, 8, 8, 8, 1, VALID, NONE),           # ResNet-8's global pool, 4 channels per pass
    (7, 9, 6, 3, 2, SAME, RELU6),           # 6 channels (4 per pass and 2 alone), clipped windows, clamp
    (17, 17, 4, 16, 1, VALID, NONE),        # 256 values per window: past the int16 lanes, the plain loop
]
NCHW_CASES = [  # ih, iw, ic, oc, (kh, kw), stride, padding, act, dil, output zero point: an NCHW input
    (13, 11, 3, 8, (3, 3), 2, SAME, RELU, 1, -128),   # MobileNet's first layer, shrunk
    (9, 8, 3, 16, (3, 3), 1, SAME, NONE, 1, None),    # ResNet-8's first layer, shrunk
    (21, 10, 1, 12, (10, 4), 2, SAME, RELU, 1, -128), # DS-CNN's first layer, shrunk (all windows clipped)
    (8, 9, 4, 6, (3, 3), 1, VALID, RELU6, 2, None),   # 4 channels (planar, not the word path), dilation 2
    (9, 10, 3, 4, (3, 3), 1, SAME, NONE, 3, None),    # dilation 3 with padding: windows partly outside
]


def _case_id(c):
    return "x".join(str(v) for v in c)


def _conv(rng, case):
    ih, iw, ic, oc, k, stride, padding, act, dil = case[:9]
    return conv_model(rng, ih, iw, ic, oc, k, stride, padding, act, dil=dil, z_out=case[9] if len(case) > 9 else None)


def nchw_input(model: bytes) -> bytes:
    """The single-op convolution model with its input given as NCHW and a TRANSPOSE (0, 2, 3, 1) in
    front of the convolution, as litert-torch emits for a torch model's image input."""
    import flatbuffers

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model, 0))
    sg = m.subgraphs[0]
    conv = sg.operators[0]
    x = sg.tensors[conv.inputs[0]]
    n, h, w, c = x.shape
    nchw = fb.TensorT()
    nchw.shape, nchw.type, nchw.name, nchw.quantization = [n, c, h, w], x.type, "input_nchw", x.quantization
    perm = fb.TensorT()
    perm.shape, perm.type, perm.name = [4], fb.TensorType.INT32, "perm"
    m.buffers.append(fb.BufferT())
    nchw.buffer = len(m.buffers) - 1
    pb = fb.BufferT()
    pb.data = np.frombuffer(np.array([0, 2, 3, 1], np.int32).tobytes(), np.uint8).tolist()
    m.buffers.append(pb)
    perm.buffer = len(m.buffers) - 1
    sg.tensors += [nchw, perm]
    i_nchw, i_perm = len(sg.tensors) - 2, len(sg.tensors) - 1
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.TRANSPOSE
    code.version = 1
    m.operatorCodes.append(code)
    tr = fb.OperatorT()
    tr.opcodeIndex = len(m.operatorCodes) - 1
    tr.inputs, tr.outputs = [i_nchw, i_perm], [conv.inputs[0]]
    tr.builtinOptionsType, tr.builtinOptions = fb.BuiltinOptions.TransposeOptions, fb.TransposeOptionsT()
    sg.operators = [tr, conv]
    sg.inputs = [i_nchw]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def residual_add(model: bytes, rng, act, z_out) -> bytes:
    """The single-op convolution model (input shape = output shape) followed by ADD(input, conv
    output): a one-input graph (what the emulator harness calls) with a same-shape ADD."""
    import flatbuffers

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model, 0))
    sg = m.subgraphs[0]
    conv = sg.operators[0]
    x, c = sg.tensors[conv.inputs[0]], sg.tensors[conv.outputs[0]]
    y = fb.TensorT()
    y.shape, y.type, y.name = list(c.shape), c.type, "sum"
    y.quantization = fb.QuantizationParametersT()
    y.quantization.scale = [(x.quantization.scale[0] + c.quantization.scale[0]) * float(rng.uniform(0.8, 1.3))]
    y.quantization.zeroPoint = [int(rng.integers(-20, 21)) if z_out is None else z_out]
    m.buffers.append(fb.BufferT())
    y.buffer = len(m.buffers) - 1
    sg.tensors.append(y)
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.ADD
    code.version = 1
    m.operatorCodes.append(code)
    add = fb.OperatorT()
    add.opcodeIndex = len(m.operatorCodes) - 1
    add.inputs, add.outputs = [conv.inputs[0], conv.outputs[0]], [len(sg.tensors) - 1]
    add.builtinOptionsType = fb.BuiltinOptions.AddOptions
    add.builtinOptions = _opts_add(act)
    sg.operators = [conv, add]
    sg.outputs = [len(sg.tensors) - 1]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _opts_add(act):
    o = fb.AddOptionsT()
    o.fusedActivationFunction = act
    return o


def _add(rng, case):
    h, w, c, act, z_out = case
    return residual_add(conv_model(rng, h, w, c, c, 1, 1, SAME, NONE), rng, act, z_out)


def _pool(rng, case):
    return pool_model(rng, fb.BuiltinOperator.AVERAGE_POOL_2D, *case)


def _nchw(rng, case):
    ih, iw, ic, oc, k, stride, padding, act, dil, z_out = case
    return nchw_input(conv_model(rng, ih, iw, ic, oc, k, stride, padding, act, dil=dil, z_out=z_out))


def _dw(rng, case):
    ih, iw, c, stride, padding, act = case[:6]
    return conv_model(rng, ih, iw, c, c, 3, stride, padding, act, depthwise=True,
                      z_out=case[6] if len(case) > 6 else None)


def _fc(rng, case):
    n_in, n_out, act = case
    return fc_model(rng, n_in, n_out, act)


MODELS = ([("conv", _conv, c, "ekd_conv_gemm_s8") for c in CONV_CASES]
          + [("dw", _dw, c, "ekd_dwconv3x3_s8") for c in DW_CASES]
          + [("fc", _fc, c, "ekd_fc_gemv_s8") for c in FC_CASES]
          + [("nchw", _nchw, c, ".in_planar = 1") for c in NCHW_CASES]
          + [("add", _add, c, "ekd_add_lut_s8") for c in ADD_CASES]
          + [("pool", _pool, c, "ekd_avgpool_s8") for c in POOL_CASES])


def _build(tmp_path, kind, make, case, kernel, n=12):
    rng = np.random.default_rng(abs(hash((kind, case))) % 2**32)
    y, cm = check_exact(tmp_path, make(rng, case), rng, n=n, reference="tflm")
    assert kernel in (cm.out_dir / "model.c").read_text(), f"{kernel} was not chosen"
    return y, cm


@pytest.mark.parametrize("kind, make, case, kernel", MODELS, ids=[f"{m[0]}{_case_id(m[2])}" for m in MODELS])
def test_fast_kernel_exact_on_host(tmp_path, kind, make, case, kernel):
    y, _ = _build(tmp_path, kind, make, case, kernel)
    _not_trivial(y)


def test_fast_requantization_not_used_where_inexact(tmp_path):
    """A left shift (multiplier >= 1: output scale far below input x weight scales) or an
    accumulator that could reach 2^30 sends the layer to the older kernels, still exact."""
    m, s = [1 << 30, 1 << 30], [-1, 0]                         # second channel: real multiplier 0.5
    assert requant_records(m, s, 0, 1000, 0) is None
    assert requant_records([1 << 30], [-3], 0, 1 << 30, 0) is None
    rec = requant_records([1 << 30], [-3], 5, 1000, 7)
    assert rec.tolist() == [[1 << 30, 3, 4 + 5 * 8, 7]]
    w = np.array([[1, -2, 3]])
    assert folded_requant(w, None, 10, 0, [1 << 30], [-2])[0, 3] == -10 * 2     # bias - zin * sum(w)
    rng = np.random.default_rng(5)
    model = conv_model(rng, 6, 6, 4, 5, 3, 1, SAME, NONE, out_scale=1e-3)   # multipliers far above 1
    y, cm = check_exact(tmp_path, model, rng, reference="tflm")
    assert "ekd_conv2d_s8" in (cm.out_dir / "model.c").read_text()


def _emulate_all(tmp_path, core, variant):
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf

    for kind, make, case, kernel in MODELS:
        _, cm = _build(tmp_path / f"{kind}{_case_id(case)}", kind, make, case, kernel, n=2)
        x = np.random.default_rng(3).integers(-128, 128, size=(2,) + tuple(cm.input_shape), dtype=np.int8)
        y_host = cm.predict_int8(x).reshape(2, -1)
        b = build_elf(cm.out_dir, core, "-O2", name="model", variant=variant, out_dir=tmp_path / "elf" / kind
                      / _case_id(case), extra_flags=("-DEDGEKD_NN_NO_DSP",) if variant == "native-c" else ())
        em = Emulator.from_elf(b.elf, core)
        for xi, yi in zip(x, y_host):
            t = em.call("model_invoke", xi.tobytes(), bytes(cm.output_size), outputs=[(1, cm.output_size)])
            assert t.returned == 0
            np.testing.assert_array_equal(np.frombuffer(t.outputs[0], np.int8), yi, err_msg=f"{kind} {case}")


@pytest.mark.slow
@pytest.mark.parametrize("core, variant", [("cortex-m4", "native-c-dsp"), ("cortex-m4", "native-c"),
                                           ("cortex-m0plus", "native-c")])
def test_fast_kernels_exact_in_emulator(tmp_path, core, variant):
    pytest.importorskip("unicorn")
    pytest.importorskip("capstone")
    pytest.importorskip("elftools")
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is needed (make toolchain)")
    _emulate_all(tmp_path, core, variant)


# ---- arena: planner constraints and the overlap rules under simulated kernels -------------------

def test_planner_respects_allowed_overlaps_only():
    rng = np.random.default_rng(0)
    for _ in range(300):
        bufs, overlaps = {}, {}
        for b in range(int(rng.integers(2, 10))):
            first = int(rng.integers(0, 8))
            bufs[b] = (int(rng.integers(1, 300)), first, first + int(rng.integers(0, 3)))
        for _ in range(3):
            o, i = (int(v) for v in rng.choice(len(bufs), 2, replace=False))
            lo = None if rng.random() < 0.5 else int(rng.integers(-200, 0))
            overlaps[(o, i)] = [(lo, int(rng.integers(-100, 100)))]
        plan = plan_arena(bufs, overlaps=overlaps)
        for a in bufs:
            assert plan.offsets[a] % 4 == 0 and plan.offsets[a] + bufs[a][0] <= plan.size
            for b in bufs:
                if a == b or bufs[a][2] < bufs[b][1] or bufs[b][2] < bufs[a][1]:
                    continue
                ra, rb = plan.offsets[a], plan.offsets[b]
                if ra + plan.sizes[a] <= rb or rb + plan.sizes[b] <= ra:
                    continue
                def ok(d, pair):
                    return any((lo is None or d >= lo) and d <= hi for lo, hi in overlaps.get(pair, []))

                assert ok(ra - rb, (a, b)) or ok(rb - ra, (b, a)), (bufs, overlaps, plan.offsets)


def _simulate(events, d, in_size):
    """Run a kernel's ordered ('r', input byte) / ('w', output byte) events on one memory with the
    output placed d bytes from the input; fail if a read finds its byte overwritten."""
    clobbered = set()
    for kind, pos in events:
        if kind == "r":
            assert pos not in clobbered, f"input byte {pos} read after it was overwritten (d={d})"
        else:
            if 0 <= pos + d < in_size:
                clobbered.add(pos + d)


def _window_bytes(p, c, in_h, in_w, in_c, out_w, k, stride, pad, dil=1):
    oy, ox = divmod(p, out_w)
    for fy in range(k):
        for fx in range(k):
            iy, ix = oy * stride - pad + fy * dil, ox * stride - pad + fx * dil
            if 0 <= iy < in_h and 0 <= ix < in_w:
                yield (iy * in_w + ix) * in_c + c


def _ds(intervals, in_size, out_size):
    """The extreme allowed offsets to try (the planner may pick any inside)."""
    out = []
    for lo, hi in intervals:
        out += [v for v in (lo, hi) if v is not None]
        if hi is None:
            out += [in_size, 0]
    return out


@pytest.mark.parametrize("case", [(7, 6, 4, 9, 3, 1, 1, 3), (9, 9, 3, 2, 3, 2, 1, 3), (5, 8, 8, 16, 1, 1, 0, 3),
                                  (6, 6, 16, 8, 1, 2, 0, 2), (8, 7, 5, 5, 5, 1, 2, 3), (4, 9, 2, 6, 3, 1, 2, 2)])
def test_conv_overlap_holds_under_the_gemm_order(case):
    in_h, in_w, in_c, out_c, k, stride, pad, group = case
    out_h, out_w = (in_h + 2 * pad - k) // stride + 1, (in_w + 2 * pad - k) // stride + 1
    allowed = arena.gathered_groups_overlap((in_h, in_w, in_c), (out_h, out_w, out_c), (stride, stride), (pad, pad),
                                            group)
    npix = out_h * out_w
    events = []
    for g0 in range(0, npix, group):        # gather the group's windows, then write its outputs
        for p in range(g0, min(g0 + group, npix)):
            events += [("r", b) for c in range(in_c) for b in _window_bytes(p, c, in_h, in_w, in_c, out_w, k, stride,
                                                                             pad)]
        events += [("w", p * out_c + c) for p in range(g0, min(g0 + group, npix)) for c in range(out_c)]
    for d in _ds(allowed, in_h * in_w * in_c, npix * out_c):
        _simulate(events, d, in_h * in_w * in_c)


@pytest.mark.parametrize("in_hw, stride", [((6, 7), 1), ((9, 8), 2), ((5, 5), 2)])
def test_depthwise_overlap_holds_under_the_plane_order(in_hw, stride):
    (in_h, in_w), ch = in_hw, 5
    out_h, out_w = -(-in_h // stride), -(-in_w // stride)
    allowed = arena.channel_planes_overlap(in_h * in_w, out_h * out_w, ch)
    events = []
    for c in range(ch):                     # the whole channel into the plane, then its outputs
        events += [("r", p * ch + c) for p in range(in_h * in_w)]
        events += [("w", p * ch + c) for p in range(out_h * out_w)]
    for d in _ds(allowed, in_h * in_w * ch, out_h * out_w * ch):
        _simulate(events, d, in_h * in_w * ch)


@pytest.mark.parametrize("case", [(7, 7, 3, 3, 2, 1), (8, 8, 4, 2, 2, 0), (25, 5, 6, 5, 5, 0)])
def test_pool_overlap_holds_under_the_window_order(case):
    in_h, in_w, ch, k, stride, pad = case
    out_h, out_w = (in_h + 2 * pad - k) // stride + 1, (in_w + 2 * pad - k) // stride + 1
    allowed = arena.window_overlap((in_h, in_w, ch), (out_h, out_w, ch), (stride, stride), (pad, pad))
    events = []
    for p in range(out_h * out_w):          # pixel by pixel, channel by channel: read the window, write
        for c in range(ch):
            events += [("r", b) for b in _window_bytes(p, c, in_h, in_w, ch, out_w, k, stride, pad)]
            events.append(("w", p * ch + c))
    for d in _ds(allowed, in_h * in_w * ch, out_h * out_w * ch):
        _simulate(events, d, in_h * in_w * ch)


@pytest.mark.parametrize("rows, in_n, out_n", [(1, 20, 30), (3, 8, 12), (4, 12, 5)])
def test_fc_and_elementwise_overlaps_hold(rows, in_n, out_n):
    events = []
    for r in range(rows):                   # a row widened into scratch, then its outputs
        events += [("r", r * in_n + i) for i in range(in_n)]
        events += [("w", r * out_n + o) for o in range(out_n)]
    for d in _ds(arena.rows_overlap(rows, in_n, out_n), rows * in_n, rows * out_n):
        _simulate(events, d, rows * in_n)
    events = [e for i in range(in_n) for e in (("r", i), ("w", i))]
    for d in _ds(arena.ELEMENTWISE_OVERLAP, in_n, in_n):
        _simulate(events, d, in_n)
