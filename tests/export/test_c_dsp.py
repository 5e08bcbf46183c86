"""The runtime's Arm DSP path (SMLAD/SXTB16, under __ARM_FEATURE_DSP) is bit-exact with the plain C
path and with TFLite's reference kernels: a generated model cross-compiled for Cortex-M4 runs in
the unicorn emulator with and without DSP, on the same int8 inputs."""
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")
pytest.importorskip("capstone")
pytest.importorskip("litert_torch")
pytest.importorskip("benchmarks.mcu.emulate", reason="the Cortex-M emulation harness (benchmarks/mcu) is needed")
if shutil.which("arm-none-eabi-gcc") is None or shutil.which("gcc") is None:
    pytest.skip("arm-none-eabi-gcc (make toolchain) and gcc are needed", allow_module_level=True)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from firmware_export.targets.c import build_c  # noqa: E402

SHAPE = (3, 10, 9)


class DspNet(nn.Module):
    """Conv runs of odd lengths (3*3*3 = 27, 5*3*3 = 45: tails after the 4-wide loop), an odd
    number of output channels (the 2-channel blocking's remainder), stride 2 with padding, a
    depthwise layer and fully connected layers with odd sizes."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 5, 3, padding=1)
        self.c2 = nn.Conv2d(5, 7, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(7, 7, 3, padding=1, groups=7)
        self.fc1 = nn.Linear(7 * 5 * 5, 13)
        self.fc2 = nn.Linear(13, 3)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.dw(x))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


@pytest.fixture(scope="module")
def dsp_model(tmp_path_factory):
    import litert_torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    model = DspNet().eval()
    x = torch.randn(1, *SHAPE)
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    g = prepare_pt2e(torch.export.export(model, (x,)).module(), q)
    for _ in range(16):
        g(torch.randn(1, *SHAPE))
    g = convert_pt2e(g, fold_quantize=False)
    folder = tmp_path_factory.mktemp("dsp")
    path = folder / "dsp.tflite"
    litert_torch.convert(g, (x,), quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
    return path, build_c(path, folder / "c", name="dspnet")


def _emulate(cm, variant, x, tmp_path):
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf

    build = build_elf(cm.out_dir, "cortex-m4", "-O2", name=cm.name, variant=variant, out_dir=tmp_path / variant)
    emu = Emulator.from_elf(build.elf, "cortex-m4")
    outs, traces = [], []
    for xi in x:
        t = emu.call(f"{cm.name}_invoke", xi.tobytes(), bytes(cm.output_size), outputs=[(1, cm.output_size)])
        assert t.returned == 0
        outs.append(np.frombuffer(t.outputs[0], dtype=np.int8))
        traces.append(t)
    return build, np.stack(outs), traces


def test_dsp_path_bit_exact_with_plain_and_reference(dsp_model, tmp_path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path, cm = dsp_model
    x = np.random.default_rng(0).integers(-128, 128, size=(3,) + SHAPE, dtype=np.int8)
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ref = []
    for xi in x:
        it.set_tensor(it.get_input_details()[0]["index"], xi[None])
        it.invoke()
        ref.append(it.get_tensor(it.get_output_details()[0]["index"])[0].copy())
    ref = np.stack(ref)
    b_dsp, y_dsp, t_dsp = _emulate(cm, "native-c-dsp", x, tmp_path)
    b_plain, y_plain, t_plain = _emulate(cm, "native-c", x, tmp_path)
    np.testing.assert_array_equal(y_dsp, ref)
    np.testing.assert_array_equal(y_plain, ref)
    np.testing.assert_array_equal(cm.predict_int8(x).reshape(ref.shape), ref)
    # the DSP build really uses SMLAD, the plain one does not, and the DSP one executes fewer
    # instructions (speed itself is measured by the benchmarks, not asserted here)
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(b_dsp.elf)], capture_output=True, text=True).stdout
    dis_plain = subprocess.run(["arm-none-eabi-objdump", "-d", str(b_plain.elf)], capture_output=True, text=True).stdout
    assert "smlad" in dis and "smlad" not in dis_plain
    assert t_dsp[0].instructions < t_plain[0].instructions, (t_dsp[0].instructions, t_plain[0].instructions)
