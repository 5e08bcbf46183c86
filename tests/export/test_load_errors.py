"""Files edgekd cannot export get ONE line naming the file, what it looks like and what to do instead.

Every case runs the real command (``edgekd export FILE ...``): exit 2, one stderr line, no traceback
and no output folder (nor its temporary sibling) left behind.
"""
import numpy as np
import pytest
import torch
from torch import nn

from edgekd.cli import main
from firmware_export import ExportError, load_inputs, load_model
from firmware_export.interp import quantize

SHAPE = (1, 3, 8, 8)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 5)).eval()


def _fails(capsys, tmp_path, argv, *needles):
    out = tmp_path / "exports"
    capsys.readouterr()
    assert main(["export", *map(str, argv), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("edgekd export: error: ") and "\n" not in err, err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exports")]  # no temporary folder either
    return err


# ---- model files in a format edgekd does not read --------------------------------------------

class Tripwire(nn.Module):
    """Unpickling this would run __setstate__ (and write the marker): refusing must not unpickle it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def __setstate__(self, state):
        open(state["_marker_path"], "w").write("unpickled")
        super().__setstate__(state)


def _torchscript(path):
    torch.jit.save(torch.jit.script(small_net()), path)


def _onnx(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small_net(), (torch.rand(SHAPE),), str(path), dynamo=False)


def _state_dict(path):
    torch.save(small_net().state_dict(), path)


def _pickled_module(path):
    net = Tripwire()
    net._marker_path = str(path.parent / "marker")
    torch.save(net, path)


CASES = {
    "torchscript": ("ts.pt", _torchscript, ["TorchScript archive", "torch.export.save", ".pt2"]),
    "onnx": ("net.onnx", _onnx, ["ONNX model", ".pt2", "FILE.py:factory"]),
    "state_dict": ("weights.pt", _state_dict, ["state_dict holds weights but no architecture", "FILE.py:factory",
                                               "--weights"]),
    "pickled_module": ("whole.pt", _pickled_module, ["pickled torch.nn.Module", "never unpickles",
                                                     "model.state_dict()"]),
    "garbage": ("junk.bin", lambda p: p.write_bytes(b"\x00\x17garbage\xff" * 9), ["not a model file", ".pt2"]),
    "text": ("notes.pt", lambda p: p.write_text("hello\n"), ["not a model file", "edgekd checkpoint"]),
    "empty": ("empty.pt2", lambda p: p.write_bytes(b""), ["empty file", ".pt2"]),
    "missing": ("missing.pt2", lambda p: None, ["no such file", ".pt2"]),
    "folder": ("somewhere", lambda p: p.mkdir(), ["a folder", ".pt2"]),
    "npy": ("data.npy", lambda p: np.save(p, np.zeros((2, 3), np.float32)), ["NumPy array", "--calibration"]),
    "python": ("net.py", lambda p: p.write_text("x = 1\n"), ["Python file", "net.py:make_model"]),
    "truncated": ("cut.pt2", lambda p: (_state_dict(p), p.write_bytes(p.read_bytes()[:200])),
                  ["damaged zip archive", "write it again"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_foreign_model_file_gets_one_line(tmp_path, capsys, case):
    name, make, needles = CASES[case]
    path = tmp_path / "in" / name
    path.parent.mkdir()
    make(path)
    err = _fails(capsys, tmp_path, [path, "--target", "c"], *needles)
    assert name in err
    assert not (path.parent / "marker").exists()  # nothing was unpickled


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "marker"

    class Exploit:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "edgekd-checkpoint", "format_version": 1, "x": Exploit()}, evil)
    _fails(capsys, tmp_path, [evil, "--target", "onnx"], "evil.pt", "refused", "builtins.exec")
    assert not marker.exists()


# ---- FILE.py:factory ----------------------------------------------------------------------------

GOOD = """
import torch
from torch import nn

def make_model():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5))
"""

FACTORY_CASES = {
    "import_fails": ("import torch\n\nx = 1 / 0\n", "make_model", ["import failed (line 3)", "ZeroDivisionError"]),
    "syntax": ("def make_model(:\n", "make_model", ["import failed (line 1)", "SyntaxError"]),
    "missing_factory": (GOOD, "build", ["no 'build' in it", "defined there: make_model"]),
    "not_a_module": ("def make_model():\n    return 42\n", "make_model", ["make_model() returned int",
                                                                      "expected a torch.nn.Module"]),
    "factory_raises": ("def make_model():\n    raise RuntimeError('no GPU here')\n", "make_model",
                       ["make_model() raised RuntimeError: no GPU here", "no arguments"]),
    "shape_does_not_fit": (GOOD, "make_model", ["input shape (1, 3, 10, 10) does not fit", "--input-shape"]),
    "batch_one_only": ("from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                       "        super().__init__()\n        self.fc = nn.Linear(192, 2)\n\n"
                       "    def forward(self, x):\n        return self.fc(x.view(1, -1))\n",
                       "Net", ["batch 1 only", "x.flatten(1)"]),
}


@pytest.mark.parametrize("case", sorted(FACTORY_CASES))
def test_factory_problems_get_one_line(tmp_path, capsys, case):
    source, factory, needles = FACTORY_CASES[case]
    (tmp_path / "user_net.py").write_text(source)
    shape = "1,3,10,10" if case == "shape_does_not_fit" else "1,3,8,8"
    err = _fails(capsys, tmp_path, [f"{tmp_path / 'user_net.py'}:{factory}", "--input-shape", shape,
                                    "--target", "onnx"], *needles)
    assert "user_net.py" in err


def test_factory_needs_an_input_shape(tmp_path, capsys):
    (tmp_path / "user_net.py").write_text(GOOD)
    _fails(capsys, tmp_path, [f"{tmp_path / 'user_net.py'}:make_model", "--target", "onnx"],
           "user_net.py:make_model", "--input-shape")


def test_factory_file_missing(tmp_path, capsys):
    _fails(capsys, tmp_path, [f"{tmp_path / 'nope.py'}:make_model"], "nope.py", "no such file", "FILE.py:factory")


def test_weights_that_do_not_fit_are_listed_in_one_line(tmp_path, capsys):
    (tmp_path / "user_net.py").write_text(GOOD)
    other = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 7))
    state = other.state_dict()
    state["head.weight"] = torch.zeros(2)
    del state["0.bias"]
    torch.save(state, tmp_path / "sd.pt")
    _fails(capsys, tmp_path, [f"{tmp_path / 'user_net.py'}:make_model", "--input-shape", "1,3,8,8", "--weights",
                              tmp_path / "sd.pt", "--target", "onnx"],
           "sd.pt", "do not fit", "missing 0.bias", "unexpected head.weight", "4.weight (7, 64) vs (5, 64)")


def test_weights_must_be_a_state_dict(tmp_path, capsys):
    (tmp_path / "user_net.py").write_text(GOOD)
    _torchscript(tmp_path / "ts.pt")
    _fails(capsys, tmp_path, [f"{tmp_path / 'user_net.py'}:make_model", "--input-shape", "1,3,8,8", "--weights",
                              tmp_path / "ts.pt", "--target", "onnx"],
           "ts.pt", "--weights expects a state_dict", "TorchScript archive")


@pytest.mark.parametrize("text", ["1,3,x,8", "3,8,8", "0,3,8,8", ""])
def test_bad_input_shape(tmp_path, capsys, text):
    (tmp_path / "user_net.py").write_text(GOOD)
    _fails(capsys, tmp_path, [f"{tmp_path / 'user_net.py'}:make_model", "--input-shape", text], "--input-shape",
           "e.g. 1,3,32,32")


# ---- data files ------------------------------------------------------------------------------------

@pytest.fixture
def user_net(tmp_path):
    (tmp_path / "user_net.py").write_text(GOOD)
    return [f"{tmp_path / 'user_net.py'}:make_model", "--input-shape", "1,3,8,8", "--target", "c"]


def test_int8_without_calibration_data_says_what_to_pass(tmp_path, capsys, user_net):
    _fails(capsys, tmp_path, user_net, "user_net.py:make_model", "--calibration FILE.npy", "(N, 3, 8, 8)")


DATA_CASES = {
    "npz_ambiguous": (lambda p: np.savez(p, a=np.zeros((2, 3, 8, 8), np.float32), b=np.zeros(2)), "cal.npz",
                      ["2 arrays (a, b)", "'x' or 'inputs'"]),
    "dtype": (lambda p: np.save(p, np.zeros((2, 3, 8, 8), np.int64)), "cal.npy", ["dtype int64", "float"]),
    "shape": (lambda p: np.save(p, np.zeros((2, 3, 9, 8), np.float32)), "cal.npy",
              ["samples have shape (3, 9, 8)", "expected (N, 3, 8, 8)"]),
    "one_sample": (lambda p: np.save(p, np.zeros((3, 8, 8), np.float32)), "cal.npy", ["one sample", "x[None]"]),
    "nan": (lambda p: np.save(p, np.where(np.arange(4)[:, None, None, None] == 2, np.nan, 0).astype(np.float32)
                              * np.ones((4, 3, 8, 8), np.float32)), "cal.npy", ["1 of 4 samples", "index 2"]),
    "not_numpy": (lambda p: p.write_text("1,2,3\n"), "cal.csv", ["not a .npy or .npz", "np.save"]),
    "missing": (lambda p: None, "cal.npy", ["no such file"]),
    "empty": (lambda p: np.save(p, np.zeros((0, 3, 8, 8), np.float32)), "cal.npy", ["no samples"]),
    "pickled_objects": (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "cal.npy",
                        ["not a readable .npy/.npz"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_calibration_file(tmp_path, capsys, user_net, case):
    make, name, needles = DATA_CASES[case]
    make(tmp_path / name)
    err = _fails(capsys, tmp_path, [*user_net, "--calibration", tmp_path / name], "--calibration", name, *needles)
    assert err.count(name) >= 1


def test_bad_parity_file(tmp_path, capsys, user_net):
    np.save(tmp_path / "cal.npy", np.zeros((4, 3, 8, 8), np.float32))
    np.save(tmp_path / "held.npy", np.zeros((4, 8, 8, 3), np.float32))  # channels-last by mistake
    _fails(capsys, tmp_path, [*user_net, "--calibration", tmp_path / "cal.npy", "--parity", tmp_path / "held.npy"],
           "--parity", "held.npy", "samples have shape (8, 8, 3)", "expected (N, 3, 8, 8)")


# ---- the Python side: the same functions the CLI calls ---------------------------------------------

def test_npz_with_named_inputs_and_one_array(tmp_path):
    x = np.random.default_rng(0).random((5, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "named.npz", x=x, y=np.arange(5))
    np.savez(tmp_path / "single.npz", x.astype(np.float64))
    np.testing.assert_array_equal(load_inputs(tmp_path / "named.npz", SHAPE).numpy(), x)
    np.testing.assert_array_equal(load_inputs(tmp_path / "single.npz", SHAPE).numpy(), x)


@pytest.mark.parametrize("quant", [(0.0117647, -128), (0.02, 5), (0.5, 0)])
def test_int8_codes_for_a_tflite_round_trip_exactly(tmp_path, quant):
    """Codes given as parity data for a .tflite are dequantized here and quantized again by the export."""
    codes = np.arange(-128, 128, dtype=np.int8).reshape(1, 256).repeat(3, 0)
    np.save(tmp_path / "codes.npy", codes)
    floats = load_inputs(tmp_path / "codes.npy", (1, 256), what="--parity", int8_quant=quant).numpy()
    np.testing.assert_array_equal(quantize(floats, *quant), codes)
    with pytest.raises(ExportError, match="int8 codes are taken for a .tflite only"):
        load_inputs(tmp_path / "codes.npy", (1, 256))


def test_load_model_from_python_gives_the_same_one_line_errors(tmp_path):
    _state_dict(tmp_path / "sd.pt")
    with pytest.raises(ExportError, match=r"sd\.pt: a state_dict holds weights but no architecture"):
        load_model(tmp_path / "sd.pt")
    with pytest.raises(ExportError, match="an edgekd checkpoint"):  # no loader passed: edgekd's registry is needed
        from edgekd.checkpoint import save_checkpoint

        save_checkpoint(tmp_path / "ck.pt", small_net().state_dict())
        load_model(tmp_path / "ck.pt")
