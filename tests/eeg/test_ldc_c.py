"""LDC native C: strict C99 build, freestanding build, exact equality with Python on every trial."""
import shutil
import subprocess

import numpy as np
import pytest

from edgekd.models.ldc import LDCClassifier
from firmware_export.errors import ExportError, ParityError
from firmware_export.targets.ldc_c import LDCArtifact, export_ldc_c, generate

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


@pytest.fixture(scope="module")
def trained(levels_split):
    xtr, ytr, xte, yte = levels_split
    return LDCClassifier(dim=64, epochs=20, seed=0).fit(xtr, ytr)


def test_c_equals_python_on_every_test_trial(trained, levels_split, tmp_path):
    _, _, xte, yte = levels_split
    art = export_ldc_c(trained.export_packed(), tmp_path / "bci", name="bci_ldc", parity_levels=xte,
                       expected_scores=trained.decision_function(xte))
    assert art.parity == {"checked": True, "inputs": len(xte), "mismatched_inputs": 0, "max_abs_diff": 0,
                          "passed": True}
    np.testing.assert_array_equal(art.scores(xte), trained.decision_function(xte))
    np.testing.assert_array_equal(art.predict(xte), trained.decision_function(xte).argmax(1))
    assert (trained.classes_[art.predict(xte)] == yte).mean() == trained.score(xte, yte)
    header = (tmp_path / "bci" / "bci_ldc.h").read_text()
    for macro in ("BCI_LDC_NUM_FEATURES (48)", "BCI_LDC_DIM (64)", "BCI_LDC_NUM_CLASSES (2)", "BCI_LDC_NUM_LEVELS (8)"):
        assert macro in header
    assert "float" not in (tmp_path / "bci" / "bci_ldc.c").read_text()
    assert art.model_bytes == trained.model_bytes_ == (8 + 48 + 2) * 8
    again = LDCArtifact.load(tmp_path / "bci")
    np.testing.assert_array_equal(again.scores(xte[:5]), art.scores(xte[:5]))


@pytest.mark.parametrize("dim,features,levels,classes", [(16, 5, 4, 2), (48, 6, 16, 3), (256, 33, 8, 4)])
def test_c_equals_python_random_models(tmp_path, dim, features, levels, classes):
    """Odd/even feature counts (majority ties), dims not a multiple of 32, many classes."""
    rng = np.random.default_rng(dim)
    X = rng.integers(0, levels, size=(300, features)).astype(np.uint8)
    y = rng.integers(0, classes, size=300)
    clf = LDCClassifier(dim=dim, num_levels=levels, epochs=1, seed=1).fit(X, y)
    clf.value_bits_ = rng.random(clf.value_bits_.shape) < 0.5  # random bits exercise every lane
    clf.feature_bits_ = rng.random(clf.feature_bits_.shape) < 0.5
    clf.class_bits_ = rng.random(clf.class_bits_.shape) < 0.5
    art = export_ldc_c(clf.export_packed(), tmp_path / "m", name="m", parity_levels=X,
                       expected_scores=clf.decision_function(X))
    assert art.parity["passed"]
    np.testing.assert_array_equal(art.predict(X), clf.decision_function(X).argmax(1))


def test_strict_and_freestanding_builds(trained, tmp_path):
    files = generate(trained.export_packed(), "ldc")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    strict = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    subprocess.run(strict + ["-c", "ldc.c", "-o", "host.o"], cwd=tmp_path, check=True)
    subprocess.run(strict + ["-ffreestanding", "-nostdlib", "-c", "ldc.c", "-o", "free.o"], cwd=tmp_path, check=True)
    arm = shutil.which("arm-none-eabi-gcc")
    if arm:
        subprocess.run([arm, "-mcpu=cortex-m4", "-mthumb", "-Os", *strict[1:], "-ffreestanding", "-c", "ldc.c",
                        "-o", "m4.o"], cwd=tmp_path, check=True)


def test_parity_failure_writes_nothing(trained, levels_split, tmp_path):
    _, _, xte, _ = levels_split
    wrong = trained.decision_function(xte).copy()
    wrong[3, 0] += 2
    with pytest.raises(ParityError, match="1 of"):
        export_ldc_c(trained.export_packed(), tmp_path / "bad", parity_levels=xte, expected_scores=wrong)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="identifier"):
        generate(trained.export_packed(), "bad name")
    packed = trained.export_packed()
    packed["class_words"] = packed["class_words"][:1]
    with pytest.raises(ExportError, match="class_words"):
        generate(packed, "ldc")
