"""The canonicalization pass: everyday PyTorch idioms become one vocabulary every target accepts.

Each idiom module is checked against its own eager forward (the independent reference): the
canonical graph must compute the same floats. The combined idiom nets then go through every target
with parity, the native C equal to TFLite Micro bit for bit (which also proves no float island
was left: the C target refuses one).
"""
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import firmware_export as fe
from firmware_export.canonicalize import canonicalize, run
from firmware_export.ops import accepted_by, op_uses
from toys import randomize_bn


class InplaceReadAfterWrite(nn.Module):
    """``y.relu_()`` without reassignment: later readers of ``y`` must see the ReLU'd value."""

    def __init__(self):
        super().__init__()
        self.conv, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        y.relu_()
        z = self.conv2(x)
        z += y
        return F.avg_pool2d(z, 2).flatten(1)


class Act(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv, self.fn = nn.Conv2d(3, 4, 3, padding=1), fn
        with torch.no_grad():
            self.conv.weight.mul_(8.0)  # outputs well past 6, so the clamps matter

    def forward(self, x):
        return self.fn(self.conv(x)).flatten(1)


class Pool(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv, self.fn, self.fc = nn.Conv2d(3, 4, 3, padding=1), fn, nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.fn(F.relu(self.conv(x))).reshape(len(x), -1))


def _mlp_bn():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True), nn.Dropout(0.3),
                         nn.Linear(8, 3))


def _standalone_bn():
    return nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten())


IDIOMS = {
    "inplace_relu_read_after_write": (InplaceReadAfterWrite, (3, 6, 6)),
    "relu_inplace_module": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten()),
                            (3, 6, 6)),
    "clamp_0_6": (lambda: Act(lambda t: torch.clamp(t, 0, 6)), (3, 6, 6)),
    "clamp_min_0": (lambda: Act(lambda t: torch.clamp(t, min=0)), (3, 6, 6)),
    "clamp_min_method": (lambda: Act(lambda t: t.clamp_min(0.0)), (3, 6, 6)),
    "hardtanh_0_6": (lambda: Act(lambda t: F.hardtanh(t, 0.0, 6.0)), (3, 6, 6)),
    "relu6_functional": (lambda: Act(F.relu6), (3, 6, 6)),
    "relu6_inplace_module": (lambda: Act(nn.ReLU6(inplace=True)), (3, 6, 6)),
    "adaptive_avg_pool_1": (lambda: Pool(nn.AdaptiveAvgPool2d(1)), (3, 6, 5)),
    "adaptive_avg_pool_even": (lambda: Pool(nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Identity())), (3, 4, 8)),
    "mean_hw": (lambda: Pool(lambda t: t.mean((2, 3))), (3, 6, 5)),
    "mean_hw_keepdim_negative_dims": (lambda: Pool(lambda t: t.mean((-1, -2), keepdim=True)), (3, 6, 5)),
    "avg_pool_full_window": (lambda: Pool(nn.AvgPool2d((6, 5))), (3, 6, 5)),
    "batchnorm1d_after_linear": (_mlp_bn, (3, 4)),
    "standalone_batchnorm2d": (_standalone_bn, (3, 6, 6)),
    "standalone_batchnorm1d": (lambda: nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12), nn.Linear(12, 3)), (3, 4)),
    "dropout_functional": (lambda: Act(lambda t: F.dropout(F.relu(t), 0.5, training=False)), (3, 6, 6)),
}
# what the canonical graph may not contain any more (the idioms themselves)
GONE = {"relu_", "hardtanh_", "clamp", "clamp_min", "relu6", "batch_norm", "dropout", "mean",
        "adaptive_avg_pool2d", "add_", "clone"}


def _aten_names(gm):
    return {n.target._opname for n in gm.graph.nodes
            if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)}


def _model(name):
    torch.manual_seed(0)
    return randomize_bn(IDIOMS[name][0]()).eval()


@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_canonical_graph_computes_what_the_model_computes(name):
    model, shape = _model(name), IDIOMS[name][1]
    x = torch.randn(16, *shape)
    graph = canonicalize(model, x[:1])
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(run(graph, x), expected, rtol=1e-5, atol=1e-6)
    assert not _aten_names(graph) & GONE, _aten_names(graph)
    uses = op_uses(graph)
    assert accepted_by(uses) == ["onnx", "tflite", "tflm", "c", "executorch"], uses


def test_idioms_become_the_forms_the_converters_fuse():
    def ops(name):
        return [u.op for u in op_uses(canonicalize(_model(name), torch.rand(1, *IDIOMS[name][1])))]

    assert ops("clamp_0_6") == ops("relu6_functional") == ops("hardtanh_0_6") == ["conv2d", "relu6", "reshape"]
    assert ops("clamp_min_0") == ops("clamp_min_method") == ["conv2d", "relu", "reshape"]
    # global pools: one full-window average pool (AVERAGE_POOL_2D), whatever the spelling
    for name in ("adaptive_avg_pool_1", "mean_hw", "mean_hw_keepdim_negative_dims", "avg_pool_full_window"):
        assert "global_avg_pool" in ops(name), (name, ops(name))
    assert ops("batchnorm1d_after_linear") == ["reshape", "linear", "relu", "linear"]  # BN folded, dropout gone
    # a standalone BatchNorm is a per-channel multiply-add the C target runs: depthwise 1x1 / diagonal linear
    assert ops("standalone_batchnorm2d") == ["depthwise_conv2d", "conv2d", "relu", "depthwise_conv2d", "reshape"]
    assert ops("standalone_batchnorm1d") == ["reshape", "linear", "linear"]


def test_folding_does_not_touch_the_users_model():
    model = _model("batchnorm1d_after_linear")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    canonicalize(model, torch.rand(1, 3, 4))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_inplace_write_into_a_view_is_refused_in_one_line():
    class ViewWrite(nn.Module):
        def forward(self, x):
            x = x * 2
            x[:, :2].relu_()
            return x

    with pytest.raises(fe.ExportError, match=r"in-place op 'relu_' at layer 'forward \(relu_\)' writes into a view"):
        canonicalize(ViewWrite(), torch.rand(1, 4))


def test_channels_last_model_and_input():
    model = _model("standalone_batchnorm2d").to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 6, 6).to(memory_format=torch.channels_last)
    graph = canonicalize(model, x[:1])
    with torch.no_grad():
        torch.testing.assert_close(run(graph, x.contiguous()), model(x), rtol=1e-5, atol=1e-6)


# ---- every target, with parity ------------------------------------------------------------------

class ConvIdioms(nn.Module):
    """Standalone BN at the input, conv+BN+inplace ReLU, depthwise + clamp(0, 6), hardtanh, an
    in-place residual add, a standalone relu6, dropout, AdaptiveAvgPool2d(1), Linear + BatchNorm1d + ReLU."""

    def __init__(self):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU(inplace=True)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.drop = nn.Dropout(0.2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.act(self.bn(self.conv(self.bn_in(x))))
        y = torch.clamp(self.dw(x), 0, 6)
        y = F.hardtanh(self.pw(y), 0.0, 6.0)
        y += x
        y = F.relu6(y)  # a standalone relu6 (after an add): litert-torch's quantizer left it float
        y = torch.flatten(self.pool(self.drop(y)), 1)
        return self.head(F.relu(self.bn1(self.fc(y)), inplace=True))


class MeanIdioms(nn.Module):
    """clamp(min=0), relu6, a residual written ``x + y`` then ReLU, a standalone average pool, mean
    over (H, W), dropout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.clamp(self.conv(x), min=0)
        y = F.relu6(self.dw(x))
        x = F.avg_pool2d(F.relu(x + y), 2)  # a standalone average pool: it was float too
        return self.fc(F.dropout(x.mean((2, 3)), 0.1, training=self.training))


class MLPIdioms(nn.Module):
    """view-flatten, standalone BatchNorm1d, Linear+BN1d+clamp_min, Linear+ReLU6, identity."""

    def __init__(self):
        super().__init__()
        self.bn0 = nn.BatchNorm1d(12)
        self.fc1, self.bn1 = nn.Linear(12, 16), nn.BatchNorm1d(16)
        self.fc2, self.fc3 = nn.Linear(16, 16), nn.Linear(16, 3)
        self.keep = nn.Identity()

    def forward(self, x):
        x = self.bn0(x.view(x.size(0), -1))
        x = self.bn1(self.fc1(x)).clamp_min(0.0)
        x = nn.functional.relu6(self.fc2(self.keep(x)))
        return self.fc3(x)


NETS = {"conv": (ConvIdioms, (3, 8, 8), False), "mean_channels_last": (MeanIdioms, (3, 8, 8), True),
        "mlp": (MLPIdioms, (3, 4), False)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NETS))
def test_idiom_nets_export_to_every_target_with_parity(name, tmp_path):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no host C compiler for the native C target")
    pytest.importorskip("litert_torch")
    pytest.importorskip("tflite_micro")
    pytest.importorskip("onnxruntime")
    cls, shape, channels_last = NETS[name]
    torch.manual_seed(1)
    model = randomize_bn(cls()).eval()
    g = torch.Generator().manual_seed(2)
    calib, held = torch.randn(64, *shape, generator=g), torch.randn(64, *shape, generator=g)
    example = held[:1]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        example = example.to(memory_format=torch.channels_last)
    graph = fe.quantize(model, example, calib)
    arts = {"onnx/fp32": fe.export(model, "onnx", example_input=example, out_dir=tmp_path / "onnx",
                                   parity_inputs=held)}
    for target in ("onnx", "tflite", "tflm", "c"):
        arts[f"{target}/int8"] = fe.export(graph, target, precision="int8", example_input=example,
                                           out_dir=tmp_path / f"{target}_int8", parity_inputs=held,
                                           float_reference=model)
    failed = {k: fe.parity.summary(c) for k, a in arts.items() for c in a.parity["checks"].values()
              if not a.parity["passed"]}
    assert not failed, failed
    assert arts["onnx/fp32"].parity["checks"]["canonical_vs_torch"]["rel_err"] <= 1e-5
    c_vs_tflm = arts["c/int8"].parity["checks"]["c_vs_tflm"]
    assert c_vs_tflm["max_lsb_diff"] == 0 and c_vs_tflm["exact_fraction"] == 1.0
    assert arts["tflite/int8"].parity["checks"]["litert_ref_vs_tflm"]["blocking"] is True
    assert "DEQUANTIZE" not in arts["tflite/int8"].config["tflite_ops"]  # no float island
    # the int8 artifacts compute the float model, not something else (a wrong layout or scale would
    # be off by the size of the outputs): near it in float
    with torch.no_grad():
        ref = model(held).numpy()
    out = arts["c/int8"].predict(held)
    assert np.max(np.abs(out - ref)) <= 0.25 * np.max(np.abs(ref)), (np.max(np.abs(out - ref)), np.max(np.abs(ref)))


class LastOp(nn.Module):
    def __init__(self, last):
        super().__init__()
        self.fc, self.last = nn.Linear(8, 8), last

    def forward(self, x):
        return self.last(self.fc(x), x)


LAST_OPS = {  # litert-torch's quantizer alone left each of these float, so the output was float
    "relu_after_linear": (lambda y, x: F.relu(y), None),
    "residual_add": (lambda y, x: y + x, None),
    "add_relu": (lambda y, x: F.relu(y + x), None),
    "softmax": (lambda y, x: torch.softmax(y, -1), (1 / 256, -128)),   # TFLite's fixed int8 SOFTMAX output
    "tanh": (lambda y, x: torch.tanh(y), (1 / 128, 0)),                # TFLite's fixed int8 TANH output
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAST_OPS))
def test_last_op_is_int8_in_tflite(name, tmp_path):
    pytest.importorskip("litert_torch")
    torch.manual_seed(0)
    last, fixed = LAST_OPS[name]
    model = LastOp(last).eval()
    x = torch.randn(64, 8)
    art = fe.export(model, "tflite", example_input=x[:1], calibration_data=x, out_dir=tmp_path / name)
    assert art.parity["passed"] and "DEQUANTIZE" not in art.config["tflite_ops"]
    from firmware_export.interp import tflite_interpreter

    out = tflite_interpreter(art.file(".tflite"), reference=True).get_output_details()[0]
    assert out["dtype"] == np.int8
    if fixed is not None:
        assert out["quantization"][0] == pytest.approx(fixed[0]) and out["quantization"][1] == fixed[1]
