"""export(): validation before converting, atomic folders, parity records, Artifact API."""
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import firmware_export as fe
from firmware_export import parity
from firmware_export.errors import ExportError, ParityError, UnsupportedOpError
from toys import AllOpsNet, GeluNet, randomize_bn

X = torch.rand(1, 1, 12, 12)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return randomize_bn(AllOpsNet())


def _no_trace(tmp_path):
    """Nothing but what the test itself created: no folder, no temp leftovers."""
    return sorted(p.name for p in tmp_path.iterdir())


def test_refusal_names_op_layer_target_and_the_targets_that_accept(tmp_path):
    for target in ("c", "tflm"):  # neither the C runtime nor TFLite Micro has a GELU kernel
        with pytest.raises(UnsupportedOpError) as info:
            fe.export(GeluNet(), target, example_input=torch.rand(1, 8), out_dir=tmp_path / "out",
                      calibration_data=torch.rand(16, 8))
        err = info.value
        assert (err.op, err.layer, err.module, err.target) == ("gelu", "act", "GELU", target)
        assert err.accepted_by == ["onnx", "tflite", "executorch"]
        assert str(err) == (f"unsupported op 'gelu' at layer 'act' (GELU) for target '{target}'; "
                            "targets that accept this model: onnx, tflite, executorch")
    assert _no_trace(tmp_path) == []


def test_each_target_checks_only_what_it_cannot_do():
    from firmware_export.canonicalize import canonicalize
    from firmware_export.ops import accepted_by, check_target, op_uses

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.tanh(self.fc(x)) / 3.0 + 1.0

    uses = op_uses(canonicalize(Functional(), torch.rand(1, 4)))
    assert [(u.op, u.detail) for u in uses] == [("linear", ""), ("tanh", ""), ("div", "of a constant"),
                                                ("add", "of a constant")]
    assert accepted_by(uses) == ["onnx", "tflite", "tflm", "executorch"]
    check_target(uses[:2] + uses[3:], "c")  # the C has TANH and ADD with a constant, not DIV
    with pytest.raises(UnsupportedOpError, match=r"^unsupported op 'div of a constant' at layer 'forward \(div\)' for "
                                                 r"target 'c'; targets that accept this model: onnx, tflite, tflm, "
                                                 r"executorch$"):
        check_target(uses, "c")
    grouped = op_uses(canonicalize(nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)), torch.rand(1, 4, 6, 6)))
    assert [u.op for u in grouped] == ["grouped_conv2d"]
    with pytest.raises(UnsupportedOpError, match=r"'grouped_conv2d' at layer '0' \(Conv2d\) for target 'c'"):
        check_target(grouped, "c")
    check_target(grouped, "onnx")
    check_target(grouped, "tflm")


def test_model_torch_export_cannot_trace_is_refused_for_every_target(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x[x > 0.5].sum(0, keepdim=True) if x.sum() > 0 else x

    with pytest.raises(ExportError, match=r"^torch.export failed on DataDependent: "):
        fe.export(DataDependent(), "onnx", example_input=torch.rand(1, 4), out_dir=tmp_path / "o")
    assert _no_trace(tmp_path) == []


def test_canonical_ops_detected(net):
    from firmware_export.ops import check_supported

    # BatchNorm folded into the conv; flatten is a reshape; every op is one the C target accepts
    assert set(check_supported(net, X)) == {"conv2d", "relu", "depthwise_conv2d", "relu6", "add", "max_pool2d",
                                            "avg_pool2d", "reshape", "linear"}


def test_wrong_input_shape_is_clear(net, tmp_path):
    with pytest.raises(ExportError, match=r"example_input of shape \(1, 3, 12, 12\) does not fit AllOpsNet"):
        fe.export(net, "onnx", example_input=torch.rand(1, 3, 12, 12), out_dir=tmp_path / "o")
    with pytest.raises(ExportError, match="float32"):
        fe.export(net, "onnx", example_input=torch.rand(1, 1, 12, 12, dtype=torch.float64), out_dir=tmp_path / "o")
    with pytest.raises(ExportError, match=r"calibration_data: samples have shape \(1, 10, 10\)"):
        fe.export(net, "tflite", example_input=X, out_dir=tmp_path / "o", calibration_data=torch.rand(4, 1, 10, 10))
    assert _no_trace(tmp_path) == []


def test_nan_calibration_and_missing_calibration(net, tmp_path):
    cal = torch.rand(16, 1, 12, 12)
    cal[5, 0, 3, 3] = float("nan")
    with pytest.raises(ExportError, match=r"calibration_data: 1 of 16 samples contain NaN or Inf \(first at index 5\)"):
        fe.export(net, "tflite", example_input=X, out_dir=tmp_path / "o", calibration_data=cal)
    with pytest.raises(ExportError, match="needs calibration_data"):
        fe.export(net, "tflm", example_input=X, out_dir=tmp_path / "o")
    bad = torch.rand(4, 1, 12, 12)
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ExportError, match="parity_inputs: 1 of 4 samples contain NaN or Inf"):
        fe.export(net, "onnx", example_input=X, out_dir=tmp_path / "o", parity_inputs=bad)
    assert _no_trace(tmp_path) == []


def test_bad_names_targets_precisions(net, tmp_path):
    for name in ("../evil", "/abs", "a/b", "x y", "int", ""):
        with pytest.raises(ExportError, match="name"):
            fe.export(net, "onnx", example_input=X, out_dir=tmp_path / "o", name=name)
    with pytest.raises(ExportError, match=r"'\.\.' is not allowed"):
        fe.export(net, "onnx", example_input=X, out_dir=str(tmp_path / "a" / ".." / "b"))
    with pytest.raises(ExportError, match=r"Allowed values are onnx, tflite, tflm, c, executorch, but got 'tvm'"):
        fe.export(net, "tvm", example_input=X, out_dir=tmp_path / "o")
    with pytest.raises(ExportError, match=r"precision.*Allowed values are int8, but got 'fp32'"):
        fe.export(net, "tflm", example_input=X, out_dir=tmp_path / "o", precision="fp32")
    assert _no_trace(tmp_path) == []


def test_failed_export_leaves_nothing_and_keeps_old_folder(net, tmp_path, monkeypatch):
    from firmware_export.targets import onnx as onnx_target

    out = tmp_path / "exp"
    out.mkdir()
    (out / "old.txt").write_text("previous export")

    def broken(job, folder):
        (folder / "half.onnx").write_bytes(b"partial")
        raise RuntimeError("simulated crash mid-export")

    monkeypatch.setattr(onnx_target, "build", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        fe.export(net, "onnx", example_input=X, out_dir=out)
    assert _no_trace(tmp_path) == ["exp"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


@pytest.mark.slow
def test_parity_failure_raises_and_writes_nothing(net, tmp_path, monkeypatch):
    from firmware_export.targets import onnx as onnx_target

    lenient = parity.float_check

    def strict_for_onnxruntime(a, b, **kw):  # the canonicalization check keeps its limit
        return lenient(a, b, **({**kw, "rel_tol": 0.0} if kw.get("against") == "torch fp32" else kw))

    monkeypatch.setattr(onnx_target.parity, "float_check", strict_for_onnxruntime)
    with pytest.raises(ParityError, match=r"onnxruntime_vs_torch: rel err") as info:
        fe.export(net, "onnx", example_input=X, out_dir=tmp_path / "o")
    assert info.value.record["passed"] is False
    assert _no_trace(tmp_path) == []


@pytest.mark.slow
def test_round_trip_save_load(net, tmp_path):
    held = torch.rand(20, 1, 12, 12)
    art = fe.export(net, "onnx", example_input=X, out_dir=tmp_path / "a", parity_inputs=held)
    record = json.loads((tmp_path / "a" / "parity.json").read_text())
    config = json.loads((tmp_path / "a" / "export.json").read_text())
    assert record["passed"] is True and record["n_inputs"] == 20
    assert config["target"] == "onnx" and config["input_shape"] == [1, 1, 12, 12] and config["output_shape"] == [1, 5]
    assert {f.name for f in art.files} == {"model.onnx", "export.json", "parity.json", "README.md"}
    copy = art.save(tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    with torch.no_grad():
        np.testing.assert_allclose(copy.predict(held), net(held).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ExportError, match=r"input of shape \(2, 1, 8, 8\)"):
        copy.predict(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ExportError, match="not an export folder"):
        fe.load(tmp_path)


def test_parity_checks_can_fail():
    ref = np.array([[1, 2, 3], [3, 2, 1]], np.int8)
    assert parity.lsb_check(ref, ref, max_lsb=0, against="x")["passed"]
    off = ref.copy()
    off[0, 0] += 2
    check = parity.lsb_check(ref, off, max_lsb=1, against="x")
    assert not check["passed"] and check["max_lsb_diff"] == 2 and check["exact_fraction"] == pytest.approx(5 / 6)
    f = parity.float_check(np.array([[10.0, 0.0]]), np.array([[10.0, 0.002]]))
    assert not f["passed"] and f["rel_err"] == pytest.approx(2e-4)
    assert parity.float_check(np.array([[10.0, 0.0]]), np.array([[10.0, 0.0009]]))["passed"]
    a = parity.argmax_check(np.array([[0, 5], [5, 0]]), np.array([[0, 5], [0, 5]]), against="t")
    assert a["argmax_agreement"] == 0.5 and not a["passed"]
    record = parity.make_record("t", "int8", {"a": a}, n_inputs=2, inputs="x")
    with pytest.raises(ParityError, match="argmax 50.0%"):
        parity.require(record)
    # a check that is out of its limit but not blocking (XNNPACK's rounding) is reported, not raised
    xnn = parity.lsb_check(ref, ref + 3, max_lsb=2, against="XNNPACK", blocking=False)
    exact = parity.lsb_check(ref, ref, max_lsb=0, against="TFLM")
    record = parity.make_record("c", "int8", {"x": xnn, "e": exact}, n_inputs=2, inputs="x")
    assert record["passed"] and not xnn["passed"] and parity.require(record) is record
    assert "| no (not blocking) |" in parity.table({"c": record}) and "(reported, not blocking)" in parity.summary(xnn)
    record = parity.make_record("c", "int8", {"x": xnn, "e": check}, n_inputs=2, inputs="x")
    with pytest.raises(ParityError) as info:
        parity.require(record)
    assert "e: max 2 LSB" in str(info.value) and "x:" not in str(info.value)  # names only the blocking failure


@pytest.mark.slow
def test_c_target_through_export(net, tmp_path):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no host C compiler")
    from firmware_export.targets.tflite import quantize_pt2e

    held = torch.rand(24, 1, 12, 12)
    graph = quantize_pt2e(net, X, torch.rand(128, 1, 12, 12))
    art = fe.export(graph, "c", example_input=X, out_dir=tmp_path / "c", parity_inputs=held)
    checks = art.parity["checks"]
    assert art.parity["passed"]
    assert checks["c_vs_tflm"]["max_lsb_diff"] == 0  # same reference integer arithmetic, bit-exact
    assert checks["c_vs_litert_ref"]["max_lsb_diff"] <= 1 and checks["c_vs_litert_ref"]["exact_fraction"] >= 0.99
    assert checks["c_vs_litert_xnnpack"]["blocking"] is False  # XNNPACK rounds differently: reported only
    x_q = fe.interp.quantize(held.numpy(), *art.input_quant)
    np.testing.assert_array_equal(art.predict_raw(x_q), art.predict_raw(x_q, runtime="tflm"))


@pytest.mark.slow
def test_xnnpack_disagreement_never_blocks_an_export(net, tmp_path, monkeypatch):
    """The demo teacher's C export was refused because XNNPACK was 3 LSB off (limit 2): now reported only."""
    from firmware_export.targets import tflite as tflite_target

    real = tflite_target.run_tflite

    def xnnpack_off_by_3(interp, x):
        out = real(interp, x)
        reference = getattr(interp, "_edgekd_reference", None)
        return out if reference else np.clip(out.astype(int) + 3, -128, 127).astype(out.dtype)

    real_interp = tflite_target.tflite_interpreter

    def tagged(path, *, reference=False, **kw):
        interp = real_interp(path, reference=reference, **kw)
        interp._edgekd_reference = reference
        return interp

    monkeypatch.setattr(tflite_target, "_LITERT_RUNS", {})  # keep the doctored runs out of the shared cache
    monkeypatch.setattr(tflite_target, "run_tflite", xnnpack_off_by_3)
    monkeypatch.setattr(tflite_target, "tflite_interpreter", tagged)
    art = fe.export(net, "tflm", example_input=X, out_dir=tmp_path / "t", calibration_data=torch.rand(64, 1, 12, 12))
    checks = art.parity["checks"]
    assert art.parity["passed"] and checks["tflm_vs_litert_xnnpack"]["max_lsb_diff"] >= 3
    assert not checks["tflm_vs_litert_xnnpack"]["passed"] and checks["tflm_vs_litert_ref"]["passed"]


@pytest.mark.slow
def test_cli_export_checkpoint(tmp_path, digits8, capsys):
    from edgekd.cli import main
    from edgekd.distill import distill, train_config
    from edgekd.models import ModelConfig, build_model

    cfg = ModelConfig("student_mlp", digits8.input_shape, digits8.num_classes, {"hidden": 16})
    torch.manual_seed(0)
    model = build_model(cfg)
    ckpt = tmp_path / "s.pt"
    distill(None, model, digits8, train_config(epochs=3, lr=5e-3), checkpoint=ckpt, model_config=cfg)
    out = tmp_path / "exports"
    rc = main(["export", str(ckpt), "--target", "tflm", "--dataset", "digits8", "--out", str(out),
               "--parity", "40", "--calibration", "64"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tflm    int8  parity passed" in printed and "| tflm/int8 | tflm_vs_litert_ref |" in printed
    summary = json.loads((out / "exports.json").read_text())
    assert summary["targets"]["tflm"]["test_accuracy_artifact"] > 0.5  # a trained model, 10 classes
    assert json.loads((out / "tflm" / "parity.json").read_text())["passed"] is True
    assert main(["export", "--out", str(out)]) == 2
    assert "exactly one" in capsys.readouterr().err
