"""benchmarks/mcu with a native C model of two outputs: the harness passes one static buffer per output,
and the emulated Cortex-M4 build gives TFLite Micro's outputs bit for bit."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("unicorn")
pytest.importorskip("elftools")
pytest.importorskip("litert_torch")
pytest.importorskip("tflite_micro")

from benchmarks.mcu.emulate import Emulator  # noqa: E402
from benchmarks.mcu.toolchain import Entry, build_elf, find_compiler, read_entry  # noqa: E402


class LogitsAndFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.embed = nn.Linear(4 * 4 * 4, 12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        features = F.relu(self.embed(torch.flatten(F.max_pool2d(F.relu(self.conv(x)), 2), 1)))
        return self.head(features), features


@pytest.fixture(scope="module")
def c_export(tmp_path_factory):
    import firmware_export as fe

    torch.manual_seed(0)
    cal = torch.rand(64, 1, 8, 8)
    return fe.export(LogitsAndFeatures().eval(), "c", example_input=cal[:1], calibration_data=cal,
                     parity_inputs=torch.rand(16, 1, 8, 8), out_dir=tmp_path_factory.mktemp("mo") / "c")


def test_entry_and_harness_of_two_outputs(c_export):
    entry = read_entry(c_export.path, "model")
    assert (entry.input_sizes, entry.output_sizes) == ((64,), (3, 12))
    harness = entry.harness()
    assert "int8_t bench_output0[3]" in harness and "int8_t bench_output1[12]" in harness
    assert "model_invoke(bench_input, bench_output0, bench_output1)" in harness
    single = Entry("tiny", "nn", 64, 16)  # one output: the buffers keep their old names
    assert single.output_sizes == (16,) and "tiny_invoke(bench_input, bench_output)" in single.harness()


@pytest.mark.slow
@pytest.mark.skipif(find_compiler() is None, reason="arm-none-eabi-gcc not installed (make toolchain)")
def test_emulated_two_output_model_equals_tflm(c_export, tmp_path):
    from firmware_export.interp import quantize

    x = torch.rand(4, 1, 8, 8).numpy()
    x_q = quantize(x, *c_export.input_quant)
    tflm = c_export.predict_raw(x_q, runtime="tflm")
    entry = read_entry(c_export.path, "model")
    build = build_elf(c_export.path, "cortex-m4", "-O2", name="model", out_dir=tmp_path / "m4")
    emulator = Emulator.from_elf(build.elf, "cortex-m4")
    assert {"bench_output0", "bench_output1"} <= set(emulator.symbols)  # the harness linked both buffers
    for i in range(len(x_q)):
        args, outputs = entry.call_args([x_q[i]])
        trace = emulator.call(entry.function, *args, outputs=outputs)
        assert trace.returned == 0
        for k, out in enumerate(trace.outputs):
            np.testing.assert_array_equal(np.frombuffer(out, np.int8), tflm[k][i].reshape(-1))
