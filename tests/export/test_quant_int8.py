"""The int8 quantizer (``firmware_export.quantizer``) against independent references: the torch PT2E
graph against the .tflite run by LiteRT's reference kernels, and the int8 model against the float
model it came from. ``edgekd.quant.pt2e`` (training-time PTQ) shares the quantizer, so both paths
are checked.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("litert_torch")
pytest.importorskip("torchao")

import firmware_export as fe  # noqa: E402
from firmware_export.interp import quantize, run_tflite, tflite_interpreter  # noqa: E402

SHAPE = (1, 3, 12, 12)


class PoolInTheMiddle(nn.Module):
    """conv -> relu -> residual depthwise add -> max pool 2 -> avg pool 2 -> linear (the reproduction)."""

    def __init__(self, residual=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(72, 4)
        self.residual = residual

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.max_pool2d(x + F.relu(self.dw(x)) if self.residual else x, 2)
        return self.fc(torch.flatten(F.avg_pool2d(x, 2), 1))


def _ptq_edgekd(model, cal):
    from edgekd.quant.pt2e import ptq

    return ptq(model, cal)


def _ptq_export(model, cal):
    return fe.quantize(model, cal[:1], cal)


def _litert_vs_torch(graph, path, x):
    """LiteRT BUILTIN_REF codes of the graph's .tflite and the torch PT2E graph's outputs quantized the same way."""
    from firmware_export.canonicalize import run
    from firmware_export.targets.tflite import convert_int8, tflite_quant

    convert_int8(graph, x[:1], path)
    qin, (qout,) = tflite_quant(path)
    litert = run_tflite(tflite_interpreter(path, reference=True), quantize(x.numpy(), *qin)).astype(np.int64)
    ref = quantize(run(graph, x).numpy(), *qout).astype(np.int64)
    return litert, ref


@pytest.mark.slow
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("path", ["edgekd_ptq", "firmware_export_quantize"])
def test_avg_pool_in_the_middle_agrees_with_the_torch_graph(path, residual, tmp_path):
    """litert-torch's quantizer alone left the pools float in the torch graph and observed only after
    the average; the converter gave the add and the max pool that narrower range and clipped them
    (84% argmax, 69 LSB). With the pools sharing their input's quantization both compute the same."""
    torch.manual_seed(0)
    model = PoolInTheMiddle(residual).eval()
    cal = torch.randn(64, *SHAPE[1:])
    held = torch.empty(256, *SHAPE[1:]).uniform_(float(cal.min()), float(cal.max()))
    graph = (_ptq_edgekd if path == "edgekd_ptq" else _ptq_export)(model, cal)
    litert, ref = _litert_vs_torch(graph, tmp_path / "m.tflite", held)
    diff = np.abs(litert - ref)
    agree = np.mean(litert.argmax(1) == ref.argmax(1))
    assert diff.max() <= 2 and agree >= 0.99, (int(diff.max()), float(diff.mean()), agree)


class Head(nn.Module):
    """linear -> op (-> linear): the op as the model's last op, or in the middle."""

    def __init__(self, op, last=True):
        super().__init__()
        self.fc, self.fc2, self.op, self.last = nn.Linear(8, 8), nn.Linear(8, 4), op, last

    def forward(self, x):
        y = self.op(self.fc(x), x)
        return y if self.last else self.fc2(y)


# op, where, the fixed output quantization TFLite Micro's kernel writes (None: observed)
HEADS = {
    "softmax": (lambda y, x: torch.softmax(y, dim=-1), True, (1 / 256, -128)),
    "tanh_last": (lambda y, x: torch.tanh(y), True, (1 / 128, 0)),
    "tanh_middle": (lambda y, x: torch.tanh(y), False, (1 / 128, 0)),
    "sigmoid_last": (lambda y, x: torch.sigmoid(y), True, (1 / 256, -128)),
    "sigmoid_middle": (lambda y, x: torch.sigmoid(y), False, (1 / 256, -128)),
    "hardswish_last": (lambda y, x: F.hardswish(y), True, None),
    "leaky_relu_last": (lambda y, x: F.leaky_relu(y, 0.1), True, None),
    "sub_last": (lambda y, x: y - x, True, None),
    "broadcast_add_last": (lambda y, x: y + y.mean(dim=1, keepdim=True), True, None),
}
FIXED_OUTPUT = {"SOFTMAX", "LOGISTIC", "TANH"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEADS))
def test_op_exports_to_tflm_and_c_close_to_the_float_model(name, tmp_path):
    """Each op goes int8 (no float island) to TFLite Micro and the native C with parity (C == TFLM),
    its fixed-range kernels get the output quantization TFLite Micro writes, and the int8 model stays
    close to the float model it came from (measured: mean 0.3-0.7 output steps, worst 0.8-5.2% of the
    output range)."""
    pytest.importorskip("tflite_micro")
    op, last, fixed = HEADS[name]
    torch.manual_seed(0)
    model = Head(op, last).eval()
    cal = torch.empty(256, 8).uniform_(-3, 3)
    held = torch.empty(128, 8).uniform_(-3, 3)
    graph = fe.quantize(model, cal[:1], cal)
    with torch.no_grad():
        ref = model(held).numpy()
    for target in ("tflm", "c"):
        art = fe.export(graph, target, example_input=cal[:1], out_dir=tmp_path / target, parity_inputs=held,
                        float_reference=model)
        assert art.parity["passed"] and "DEQUANTIZE" not in art.config["tflite_ops"]
        if target == "c":
            assert art.parity["checks"]["c_vs_tflm"]["max_lsb_diff"] == 0
        out = art.predict(held)
        err, step = np.abs(out - ref), art.output_quant[0]
        # within one output step on average; the worst sample (an FC output past the calibrated range,
        # magnified by the op) within 6% of the output range: a wrong scale or zero point is far off
        assert err.mean() <= step and err.max() <= 0.06 * np.ptp(ref), (target, err.mean() / step, err.max())
        assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.95
    if fixed is not None:  # the fixed-range op's output tensor, wherever it sits
        from firmware_export.tflite_reader import read_tflite

        g = read_tflite(art.file(".tflite"))
        t = next(g.tensors[op.outputs[0]] for op in g.operators if op.op in FIXED_OUTPUT)
        assert (float(t.scale[0]), int(t.zero_point[0])) == pytest.approx(fixed)


class LogitsAndFeatures(nn.Module):
    """Returns (logits, features): two graph outputs of different sizes and quantizations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.embed = nn.Linear(8 * 6 * 6, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        features = F.relu(self.embed(torch.flatten(F.max_pool2d(F.relu(self.conv(x)), 2), 1)))
        return self.head(features), features


@pytest.mark.slow
def test_two_outputs_export_to_tflite_tflm_and_c_with_parity_on_each(tmp_path):
    pytest.importorskip("tflite_micro")
    torch.manual_seed(0)
    model = LogitsAndFeatures().eval()
    cal = torch.rand(128, *SHAPE[1:])
    held = torch.rand(64, *SHAPE[1:])
    graph = fe.quantize(model, cal[:1], cal)
    with torch.no_grad():
        logits, features = (y.numpy() for y in model(held))
    for target in ("tflite", "tflm", "c"):
        art = fe.export(graph, target, example_input=cal[:1], out_dir=tmp_path / target, parity_inputs=held,
                        float_reference=model)
        checks = art.parity["checks"]
        assert art.parity["passed"] and art.config["output_shapes"] == [[1, 5], [1, 16]]
        runtime = {"tflite": "litert_ref", "tflm": "tflm", "c": "c"}[target]
        assert {f"{runtime}_vs_torch_pt2e_output{k}" for k in (0, 1)} <= set(checks)  # every output is checked
        if target == "c":
            assert checks["c_vs_tflm_output0"]["max_lsb_diff"] == checks["c_vs_tflm_output1"]["max_lsb_diff"] == 0
        out = art.predict(held)  # a tuple in the order the model returns, each dequantized with its own scale
        assert isinstance(out, tuple) and [o.shape for o in out] == [(64, 5), (64, 16)]
        (s0, _), (s1, _) = art.output_quants
        assert s0 != s1
        for y, ref, step in ((out[0], logits, s0), (out[1], features, s1)):
            assert np.abs(y - ref).mean() <= step and np.abs(y - ref).max() <= 0.06 * np.ptp(ref)
        readme = (art.path / "README.md").read_text()
        assert f"| output1 | [1, 16] | int8 | as the shape | {s1!r} |" in readme
        raw = art.predict_raw(quantize(held.numpy(), *art.input_quant), runtime="tflm" if target != "tflite" else None)
        assert [r.dtype for r in raw] == [np.int8, np.int8]
    reopened = fe.load(tmp_path / "c").predict(held[:3])
    np.testing.assert_array_equal(reopened[1], out[1][:3])


def test_several_inputs_are_refused_in_one_line(tmp_path):
    class TwoInputs(nn.Module):
        def forward(self, a, b):
            return a + b

    with pytest.raises(fe.ExportError, match=r"^TwoInputs.forward takes 2 inputs \(a, b\); export takes models with "
                                             r"one input tensor"):
        fe.export(TwoInputs(), "c", example_input=torch.rand(1, 4), out_dir=tmp_path / "c",
                  calibration_data=torch.rand(8, 4))
    assert not (tmp_path / "c").exists()


class Gated(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(3, 8, 3, padding=1), act, nn.Linear(8 * 12 * 12, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.conv(x) * 2.0), 1))


ACTIVATIONS = {"silu": nn.SiLU, "silu_inplace": lambda: nn.SiLU(inplace=True), "hardsigmoid": nn.Hardsigmoid,
               "hardsigmoid_functional": lambda: F.hardsigmoid}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_silu_and_hardsigmoid_become_ops_every_int8_target_runs(name):
    from firmware_export.canonicalize import canonicalize, run
    from firmware_export.ops import accepted_by, op_uses

    torch.manual_seed(0)
    model = Gated(ACTIVATIONS[name]()).eval()
    x = torch.randn(16, *SHAPE[1:])
    graph = canonicalize(model, x[:1])
    with torch.no_grad():
        torch.testing.assert_close(run(graph, x), model(x), rtol=1e-5, atol=1e-6)  # the eager model is the reference
    uses = [u.op for u in op_uses(graph)]
    assert "silu" not in uses and "hardsigmoid" not in uses, uses
    assert ("sigmoid" in uses) == name.startswith("silu") and "mul" in uses
    assert "c" in accepted_by(op_uses(graph))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["silu", "hardsigmoid"])
def test_silu_and_hardsigmoid_export_to_c_without_float_islands(name, tmp_path):
    pytest.importorskip("tflite_micro")
    torch.manual_seed(0)
    model = Gated(ACTIVATIONS[name]()).eval()
    cal, held = torch.rand(128, *SHAPE[1:]) * 2 - 1, torch.rand(64, *SHAPE[1:]) * 2 - 1
    art = fe.export(model, "c", example_input=cal[:1], calibration_data=cal, parity_inputs=held,
                    out_dir=tmp_path / name)
    ops = set(art.config["tflite_ops"])
    assert art.parity["checks"]["c_vs_tflm"]["max_lsb_diff"] == 0 and "DEQUANTIZE" not in ops
    assert ({"LOGISTIC", "MUL"} if name == "silu" else {"ADD", "MUL"}) <= ops  # the ADD fuses the RELU6
    with torch.no_grad():
        ref = model(held).numpy()
    err = np.abs(art.predict(held) - ref)
    assert err.mean() <= art.output_quant[0] and err.max() <= 0.06 * np.ptp(ref), (err.mean(), err.max())


class PoolHead(nn.Module):
    """BatchNorm after conv, in-place ReLU, AdaptiveAvgPool2d(1): idioms the canonical graph rewrites."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.relu, self.pool, self.fc = nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


@pytest.mark.slow
def test_cli_quantizes_a_pt2_on_the_canonical_graph(tmp_path, capsys):
    """``edgekd export model.pt2 --calibration cal.npy`` gives the graph ``firmware_export.quantize`` gives:
    the BatchNorm folded and the adaptive pool an AVERAGE_POOL_2D (the program's own graph, quantized as
    it was, kept a batch norm multiply-add and a MEAN)."""
    from edgekd.cli import main

    torch.manual_seed(0)
    model = PoolHead().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
    cal = torch.rand(32, *SHAPE[1:])
    torch.export.save(torch.export.export(model, (cal[:1],)), tmp_path / "m.pt2")
    np.save(tmp_path / "cal.npy", cal.numpy())
    capsys.readouterr()
    assert main(["export", str(tmp_path / "m.pt2"), "--target", "tflite", "--calibration", str(tmp_path / "cal.npy"),
                 "--parity", "8", "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err[-1500:]
    art = fe.load(tmp_path / "out" / "tflite")
    expected = fe.export(fe.quantize(model, cal[:1], cal), "tflite", example_input=cal[:1], parity_inputs=8,
                         out_dir=tmp_path / "api")
    assert art.file(".tflite").read_bytes() == expected.file(".tflite").read_bytes()
    assert "AVERAGE_POOL_2D" in art.config["tflite_ops"] and "MEAN" not in art.config["tflite_ops"]
