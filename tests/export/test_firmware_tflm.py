"""The TFLite Micro export folder: a MicroMutableOpResolver with exactly the model's operators (read
again here from the flatbuffer with TFLite Micro's own schema module), the arena and its head/tail
split, and the README's numbers against export.json."""
import os
import re
import shutil
import subprocess

import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytest.importorskip("litert_torch")
pytest.importorskip("tflite_micro")

import firmware_export as fe  # noqa: E402
from firmware_export import firmware  # noqa: E402
from firmware_export.errors import ExportError  # noqa: E402
from firmware_export.readme import tflm_usage  # noqa: E402
from firmware_export.targets import c as ctarget  # noqa: E402

SHAPE = (1, 3, 12, 12)

# written by hand from tflite-micro's micro_mutable_op_resolver.h for the ops this net can become
EXPECTED_METHODS = {
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "ADD": "AddAdd",
    "MAX_POOL_2D": "AddMaxPool2D", "AVERAGE_POOL_2D": "AddAveragePool2D", "FULLY_CONNECTED": "AddFullyConnected",
    "RESHAPE": "AddReshape", "TRANSPOSE": "AddTranspose", "QUANTIZE": "AddQuantize", "RELU": "AddRelu",
    "RELU6": "AddRelu6", "MEAN": "AddMean", "SQUEEZE": "AddSqueeze",
}


class ResNetlet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.max_pool2d(x + F.relu(self.dw(x)), 2)
        return self.fc(torch.flatten(F.avg_pool2d(x, 6), 1))  # global: local 2x2 averages agree worse with torch


@pytest.fixture(scope="module")
def tflm_art(tmp_path_factory):
    torch.manual_seed(0)
    return fe.export(ResNetlet().eval(), "tflm", example_input=torch.zeros(SHAPE),
                     calibration_data=torch.randn(64, *SHAPE[1:]), out_dir=tmp_path_factory.mktemp("t") / "tflm")


def _ops_from_flatbuffer(path) -> set:
    """Builtin operator names of the operators in subgraph 0, with TFLite Micro's own schema module."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)
    used = set()
    for i in range(graph.OperatorsLength()):
        code = codes[graph.Operators(i).OpcodeIndex()]
        used.add(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return used


def test_resolver_names_exactly_the_models_ops(tflm_art):
    ops = _ops_from_flatbuffer(tflm_art.file(".tflite"))
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"} <= ops
    assert ops <= set(EXPECTED_METHODS), f"extend EXPECTED_METHODS for {ops - set(EXPECTED_METHODS)}"
    header = (tflm_art.path / "model_ops.h").read_text()
    calls = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert sorted(calls) == sorted(EXPECTED_METHODS[op] for op in ops)
    assert f"#define MODEL_NUM_OPS ({len(ops)})" in header
    assert "tflite::MicroMutableOpResolver<MODEL_NUM_OPS> model_op_resolver_t;" in header
    assert sorted(tflm_art.config["tflite_ops"]) == sorted(ops)


def test_readme_numbers_are_export_json(tflm_art):
    readme = (tflm_art.path / "README.md").read_text()
    config = tflm_art.config
    arena, split = config["arena_bytes"], config["arena_split"]
    assert 0 < split["head"] and 0 < split["tail"] and split["head"] + split["tail"] <= arena
    m = re.search(r"tensor arena: (\d+) bytes \(`MODEL_ARENA_BYTES`\) \((\d+) bytes tensor data and kernel "
                  r"scratch, (\d+) bytes interpreter structures\)", readme)
    assert m and [int(v) for v in m.groups()] == [arena, split["head"], split["tail"]]
    assert f"#define MODEL_ARENA_BYTES ({arena})" in (tflm_art.path / "model_data.h").read_text()
    assert "32-bit" in readme and "alignas(16) static uint8_t tensor_arena[MODEL_ARENA_BYTES];" in readme
    ops = sorted(config["tflite_ops"])
    assert f"registers exactly the {len(ops)} operators the model uses: {', '.join(ops)}" in readme
    assert f"`MicroMutableOpResolver<{len(ops)}>`" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| input |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == str(config["input_shape"]) and float(cells[4]) == config["input_quant"][0]
    assert int(cells[5]) == config["input_quant"][1]
    assert f"{config['tflite_bytes']} bytes of flash" in readme
    assert config["tflite_bytes"] == tflm_art.file(".tflite").stat().st_size
    listed = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M)
    assert listed == config["files"] and "model_ops.h" in listed


def test_resolver_covers_every_op_the_c_target_lowers():
    assert set(ctarget.SUPPORTED_OPS) | {"DEQUANTIZE"} <= set(firmware.TFLM_ADD_METHODS)
    with pytest.raises(ExportError, match="no builtin kernel registration for CUSTOM"):
        firmware.resolver_methods(["CONV_2D", "CUSTOM"])


@pytest.mark.skipif(not os.environ.get("EDGEKD_TFLM_INCLUDES") or shutil.which("g++") is None,
                    reason="set EDGEKD_TFLM_INCLUDES to a tflite-micro checkout, flatbuffers/include and gemmlowp "
                           "(colon-separated) to compile the README's C++ against TFLite Micro's headers")
def test_readme_cpp_compiles_against_tflm_headers(tflm_art, tmp_path):
    work = tmp_path / "tflm"
    shutil.copytree(tflm_art.path, work)
    (work / "usage.cc").write_text(tflm_usage("model"))
    includes = [arg for d in os.environ["EDGEKD_TFLM_INCLUDES"].split(":") for arg in ("-isystem", d)]
    done = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                           "-DTF_LITE_STATIC_MEMORY", "-I", str(work), *includes, str(work / "usage.cc")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
