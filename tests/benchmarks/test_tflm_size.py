"""TFLite Micro built from its sources for Cortex-M: the resolver gets exactly the model's ops, and the
emulated image computes what the tflite-micro Python interpreter computes. Needs a TFLM checkout
($EDGEKD_TFLM_SRC) and newlib/libstdc++ for arm-none-eabi; skips otherwise."""
import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.mcu.toolchain import find_compiler
from benchmarks.tflm_size import _op_method, kernel_stems, library_sources

TFLM_SRC = os.environ.get("EDGEKD_TFLM_SRC")


def test_op_names_map_to_resolver_methods_and_kernel_files():
    assert [_op_method(op) for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RELU6", "AVERAGE_POOL_2D",
                                      "RESIZE_NEAREST_NEIGHBOR")] == \
        ["AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddRelu6", "AddAveragePool2D",
         "AddResizeNearestNeighbor"]
    assert kernel_stems(["CONV_2D", "MAX_POOL_2D", "MEAN", "ADD"]) >= {"conv", "pooling", "reduce", "add", "kernel_util"}


@pytest.mark.slow
@pytest.mark.skipif(not TFLM_SRC, reason="EDGEKD_TFLM_SRC (a tflite-micro checkout after third_party_downloads) not set")
@pytest.mark.skipif(find_compiler() is None, reason="arm-none-eabi-gcc not installed")
def test_tflm_image_runs_in_the_emulator_like_the_python_interpreter(tmp_path):
    torch = pytest.importorskip("torch")
    import firmware_export as fe
    from benchmarks.tflm_size import build_image, emulate
    from firmware_export.interp import tflm_module

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3)).eval()
    cal = torch.rand(32, 1, 6, 6)
    art = fe.export(model, "tflm", example_input=cal[:1], out_dir=tmp_path / "tflm", calibration_data=cal, name="t")
    tfl = art.file(".tflite")
    names = {p.name for p in library_sources(Path(TFLM_SRC), ["CONV_2D"])}
    assert "conv.cc" in names and "fully_connected.cc" not in names       # only the ops' kernels are built
    # the library's objects are cached under build/ (git-ignored): a second run compiles nothing
    img = build_image(tfl, TFLM_SRC, "cortex-m4", tmp_path / "build", lib_dir=Path("build") / "tflm-lib")
    assert img["flash_bytes"] > img["model_array_bytes"] == tfl.stat().st_size and img["code_bytes"] > 10_000
    x = np.random.default_rng(0).integers(-128, 128, size=img["input_size"]).astype(np.int8)
    res = emulate(img, x)
    interp = tflm_module().Interpreter.from_file(str(tfl))
    interp.set_input(x.reshape(interp.get_input_details(0)["shape"]), 0)
    interp.invoke()
    np.testing.assert_array_equal(res["output"], np.asarray(interp.get_output(0)).reshape(-1))
    assert res["cycles"] > res["instructions"] > 0
