"""int8 PT2E PTQ/QAT with litert-torch's quantizer: accuracy kept, one graph for every target."""
import numpy as np
import pytest
import torch

from edgekd.config import Config
from edgekd.distill import evaluate, train_config, distill
from edgekd.errors import ConfigError, DataError
from edgekd.quant.pt2e import Int8Config, int8_bytes, ptq, quantize
from toys import digits_cnn

pytest.importorskip("torchao")
pytest.importorskip("litert_torch")


@pytest.fixture(scope="module")
def trained(digits8):
    torch.manual_seed(0)
    model = digits_cnn()
    distill(None, model, digits8, train_config(epochs=6, lr=5e-3))
    acc = evaluate(model, digits8.test)
    assert acc > 0.85, acc  # a real trained model, far above chance (0.1)
    return model.eval(), acc


@pytest.mark.slow
def test_ptq_keeps_accuracy(trained, digits8):
    model, acc = trained
    graph = quantize(model, Int8Config(calibration_samples=200), digits8)
    q_acc = evaluate(graph, digits8.test)
    assert abs(q_acc - acc) <= 0.03, (acc, q_acc)
    names = {getattr(n.target, "__name__", "") for n in graph.graph.nodes}
    assert any("quantize_per_channel" in n for n in names) and any("quantize_per_tensor" in n for n in names)
    sizes = int8_bytes(graph)
    assert sizes["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_qat_keeps_accuracy_and_exports(trained, digits8, tmp_path):
    import firmware_export as fe

    model, acc = trained
    graph = quantize(model, Int8Config(method="qat", qat_epochs=1, qat_lr=2e-4), digits8, teacher=model)
    q_acc = evaluate(graph, digits8.test)
    assert q_acc >= acc - 0.03, (acc, q_acc)
    held = digits8.test.x[:64]
    art = fe.export(graph, "tflite", example_input=held[:1], out_dir=tmp_path / "qat", parity_inputs=held)
    assert art.parity["passed"]
    tflite_acc = np.mean(art.predict(digits8.test.x).argmax(1) == digits8.test.y.numpy())
    assert abs(tflite_acc - q_acc) <= 0.02, (q_acc, tflite_acc)


@pytest.mark.slow
def test_same_quantizer_as_firmware_export(trained, digits8):
    """edgekd.quant and firmware_export build the same PT2E graph from the same calibration data."""
    import firmware_export as fe

    model, _ = trained
    cal = digits8.train.x[:128]
    a, b = ptq(model, cal), fe.quantize(model, cal[:1], cal)
    assert a.code == b.code
    with torch.no_grad():
        torch.testing.assert_close(a(digits8.test.x), b(digits8.test.x), rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dscnn_kws", "resnet8", "fc_autoencoder", "mobilenetv2"])
def test_same_graph_as_firmware_export_on_the_zoo(name):
    """The zoo (in-place ReLU, clamp ReLU6, x + y residuals, BatchNorm1d after Linear, adaptive pools):
    edgekd's PTQ now quantizes the canonical graph with the export's quantizer, so the CLI's checkpoint
    path and firmware_export.quantize give one graph (before, edgekd's had float islands and unfolded BN)."""
    import firmware_export as fe
    from edgekd.models import build_model
    from edgekd.models.zoo import ZOO, zoo_config

    torch.manual_seed(0)
    model = build_model(zoo_config(name)).eval()
    cal = torch.rand(16, *ZOO[name][0])
    a, b = ptq(model, cal), fe.quantize(model, cal[:1], cal)
    assert a.code == b.code
    held = torch.rand(4, *ZOO[name][0])
    with torch.no_grad():
        torch.testing.assert_close(a(held), b(held), rtol=0, atol=0)


class ReusedModules(torch.nn.Module):
    """One nn.ReLU and one nn.MaxPool2d, each called twice (the usual way)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)
        self.relu, self.pool = torch.nn.ReLU(), torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


@pytest.mark.slow
def test_ptq_of_reused_modules_works_every_time():
    """prepare_pt2e failed at random (3 to 5 runs of 8) when one module was called twice; edgekd's PTQ
    now gives each call its own partition, as firmware_export does."""
    torch.manual_seed(0)
    model, cal = ReusedModules().eval(), torch.rand(16, 1, 8, 8)
    for _ in range(8):  # a coin flip each would pass all 8 with p = 0.004
        with torch.no_grad():
            assert ptq(model, cal)(cal[:1]).shape == (1, 3)


def test_config_and_input_checks(trained, digits8):
    with pytest.raises(ConfigError, match="method"):
        Int8Config(method="awq")
    with pytest.raises(ConfigError, match="kd_alpha"):
        Int8Config(kd_alpha=2.0)
    assert Config.from_dict(Int8Config(method="qat").to_dict()) == Int8Config(method="qat")
    bad = digits8.train.x[:16].clone()
    bad[3] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        ptq(trained[0], bad)
