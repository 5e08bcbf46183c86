"""``edgekd export MODEL``: a .pt2, a FILE.py:factory with --weights and an int8 .tflite, end to end.

Each export is checked against something the loader did not compute: onnxruntime against the
original torch model (the file really carried that model and its weights), native C against the
TFLite Micro interpreter run here (bit for bit), and the int8 input scale against the closed form
of the calibration file's range (the file was the calibration data).
"""
import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

import firmware_export as fe
from edgekd.cli import main
from firmware_export.interp import quantize, run_tflm, tflite_interpreter, tflm_module

pytest.importorskip("litert_torch")
pytest.importorskip("tflite_micro")
pytest.importorskip("onnxruntime")

SHAPE = (1, 3, 8, 8)
NET = '''
import torch
from torch import nn
from torch import nn


class Net(nn.Module):
    """conv, relu, max pool, 1x1 conv with a residual add, flatten, linear: ops every target supports."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.pw = nn.Conv2d(4, 4, 1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        x = self.pool(self.act(self.conv(x)))
        x = x + self.act(self.pw(x))
        return self.fc(self.flat(x))


def make_model():
    return Net()
'''


def _import(path):
    spec = importlib.util.spec_from_file_location("load_cli_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """net.py, trained-looking weights (not the factory's init), calibration in [0, 3), held-out inputs."""
    root = tmp_path_factory.mktemp("byom")
    (root / "net.py").write_text(NET)
    model = _import(root / "net.py").make_model().eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    torch.save(model.state_dict(), root / "sd.pt")
    rng = np.random.default_rng(0)
    np.save(root / "cal.npy", (3.0 * rng.random((96, *SHAPE[1:]))).astype(np.float32))
    np.save(root / "held.npy", (3.0 * rng.random((64, *SHAPE[1:]))).astype(np.float32))
    return root, model


def _run(argv, capsys):
    capsys.readouterr()
    rc = main(["export", *map(str, argv)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    return captured.out


def _onnx_outputs(folder, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: s[None]})[0] for s in x])


def _c_equals_tflm(folder, held):
    """Run the C harness and TFLM (here, from the folder's .tflite) on the same int8 codes."""
    art = fe.load(folder)
    x_q = quantize(held, *art.input_quant)
    c_out = art.predict_raw(x_q, runtime="c")
    interp = tflm_module().Interpreter.from_bytes(art.file(".tflite").read_bytes(),
                                                  arena_size=art.config["tflm_arena_bytes"])
    np.testing.assert_array_equal(c_out, run_tflm(interp, x_q))
    record = json.loads((folder / "parity.json").read_text())
    assert record["passed"] and record["n_inputs"] == len(held)
    assert record["checks"]["c_vs_tflm"]["max_lsb_diff"] == 0 and record["checks"]["c_vs_tflm"]["exact_fraction"] == 1
    return art, record


@pytest.mark.slow
def test_pt2_to_onnx_and_c(files, tmp_path, capsys):
    root, model = files
    pt2 = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(SHAPE),)), pt2)
    out = tmp_path / "exports"
    held = np.load(root / "held.npy")
    _run([pt2, "--target", "onnx", "--parity", root / "held.npy", "--out", out], capsys)
    with torch.no_grad():
        np.testing.assert_allclose(_onnx_outputs(out / "onnx", held), model(torch.from_numpy(held)).numpy(),
                                   rtol=1e-4, atol=1e-5)
    printed = _run([pt2, "--target", "c", "--calibration", root / "cal.npy", "--parity", root / "held.npy",
                    "--out", out], capsys)
    assert "c       int8  parity passed" in printed
    art, _ = _c_equals_tflm(out / "c", held)
    with torch.no_grad():
        agree = np.mean(art.predict(held).argmax(1) == model(torch.from_numpy(held)).numpy().argmax(1))
    assert agree >= 0.9  # int8 C computes the program that was saved
    summary = json.loads((out / "exports.json").read_text())
    assert summary["kind"] == "pt2" and set(summary["targets"]) == {"onnx", "c"}  # both exports kept


@pytest.mark.slow
def test_factory_with_weights_and_npy_calibration(files, tmp_path, capsys):
    root, model = files
    out = tmp_path / "exports"
    spec = f"{root / 'net.py'}:make_model"
    common = ["--input-shape", "1,3,8,8", "--weights", root / "sd.pt", "--calibration", root / "cal.npy",
              "--parity", root / "held.npy", "--out", out]
    _run([spec, "--target", "onnx", *common], capsys)
    held = np.load(root / "held.npy")
    got = _onnx_outputs(out / "onnx", held)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(held)).numpy(), rtol=1e-4, atol=1e-5)
        fresh = _import(root / "net.py").make_model().eval()(torch.from_numpy(held)).numpy()
    assert np.abs(got - fresh).max() > 0.1  # the weights file, not the factory's own init, was exported
    _run([spec, "--target", "tflm", *common], capsys)
    config = json.loads((out / "tflm" / "export.json").read_text())
    cal = np.load(root / "cal.npy")
    # min/max observer on the input: scale = (max - min) / 255 over the calibration FILE's range (with 0)
    expected_scale = (max(cal.max(), 0.0) - min(cal.min(), 0.0)) / 255
    assert config["input_quant"][0] == pytest.approx(expected_scale, rel=1e-3)
    assert config["calibration_samples"] == len(cal)


@pytest.fixture(scope="module")
def int8_tflite(files, tmp_path_factory):
    """An int8 .tflite made by the project's own tflite target (through the CLI) from the factory."""
    root, _ = files
    out = tmp_path_factory.mktemp("tfl") / "exports"
    rc = main(["export", f"{root / 'net.py'}:make_model", "--input-shape", "1,3,8,8", "--weights", str(root / "sd.pt"),
               "--target", "tflite", "--calibration", str(root / "cal.npy"), "--out", str(out)])
    assert rc == 0
    return out / "tflite" / "model.tflite"


@pytest.mark.slow
def test_int8_tflite_straight_to_c(files, int8_tflite, tmp_path, capsys):
    root, _ = files
    out = tmp_path / "exports"
    printed = _run([int8_tflite, "--target", "c", "--parity", root / "held.npy", "--out", out], capsys)
    assert "c       int8  parity passed" in printed
    art, record = _c_equals_tflm(out / "c", np.load(root / "held.npy"))
    assert art.file(".tflite").read_bytes() == int8_tflite.read_bytes()  # taken as it is
    assert not any("torch" in name for name in record["checks"])  # no torch anywhere in this export
    assert record["checks"]["c_vs_litert_ref"]["passed"]
    assert json.loads((out / "exports.json").read_text())["kind"] == "tflite"


def with_float_edges(int8_bytes: bytes) -> bytes:
    """Rewrite an int8 .tflite the way TF's converter leaves it by default: float32 input -> QUANTIZE ->
    the int8 graph -> DEQUANTIZE -> float32 output (flatbuffer object API of LiteRT's own schema)."""
    import copy

    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(int8_bytes, 0)
    graph = model.subgraphs[0]

    def opcode(code):
        entry = schema.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, code, 1
        model.operatorCodes.append(entry)
        return len(model.operatorCodes) - 1

    def float_twin(index, name):
        tensor = copy.deepcopy(graph.tensors[index])
        tensor.type, tensor.quantization, tensor.name = schema.TensorType.FLOAT32, None, name.encode()
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    fin, fout = float_twin(graph.inputs[0], "float_input"), float_twin(graph.outputs[0], "float_output")
    quant, dequant = schema.OperatorT(), schema.OperatorT()
    quant.opcodeIndex, quant.inputs, quant.outputs = opcode(schema.BuiltinOperator.QUANTIZE), [fin], [graph.inputs[0]]
    dequant.opcodeIndex = opcode(schema.BuiltinOperator.DEQUANTIZE)
    dequant.inputs, dequant.outputs = [graph.outputs[0]], [fout]
    graph.operators = [quant, *graph.operators, dequant]
    graph.inputs, graph.outputs = [fin], [fout]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.slow
def test_tflite_with_float_edges_is_refused_in_one_line(int8_tflite, tmp_path, capsys):
    """The TF converter's default (float32 in/out, QUANTIZE/DEQUANTIZE around an int8 graph) is told what to set."""
    floaty = tmp_path / "float_io.tflite"
    floaty.write_bytes(with_float_edges(int8_tflite.read_bytes()))
    assert tflite_interpreter(floaty).get_input_details()[0]["dtype"] == np.float32  # a valid model LiteRT runs
    out = tmp_path / "exports"
    capsys.readouterr()
    assert main(["export", str(floaty), "--target", "c", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgekd export: error: ") and "\n" not in err
    assert "float_io.tflite" in err and "inference_input_type = tf.int8" in err
    assert not out.exists()


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    for needle in ("(default: all)", "(default: 256)", "(default: 200)", "(default: exports)", "--input-shape",
                   "--weights", "FILE.py:factory"):
        assert needle in text, needle


class ReusedModules(nn.Module):
    """One nn.ReLU and one nn.MaxPool2d, each called twice: the everyday way to write forward."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu, self.pool = nn.ReLU(), nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


@pytest.mark.slow
def test_reused_modules_quantize_every_time(tmp_path):
    """PT2E's annotators grouped both calls of a reused module into one partition and then failed in
    about half the runs; each call now has its own path (``quantizer.one_partition_per_call``)."""
    from firmware_export.targets.tflite import quantize_pt2e

    torch.manual_seed(0)
    model = ReusedModules().eval()
    x, calibration = torch.rand(SHAPE), torch.rand(16, *SHAPE[1:])
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "reused.pt2")
    loaded = fe.load_model(tmp_path / "reused.pt2").model
    for source in [model] * 4 + [loaded] * 4:  # 8 tries: a coin flip each would pass all with p = 0.004
        graph = quantize_pt2e(source, x, calibration)
        with torch.no_grad():
            assert graph(x).shape == (1, 3)
