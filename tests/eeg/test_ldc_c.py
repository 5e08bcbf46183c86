"""LDC native C: strict C99 build, freestanding build, exact equality with Python on every trial."""
import shutil
import subprocess

import numpy as np
import pytest

from edgekd.models.ldc import LDCClassifier, ldc_scores, pack_bits
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


def random_packed(rng, dim, features, levels, classes):
    """Packed parameters with uniformly random bits (every lane and level exercised)."""
    bits = lambda rows: rng.random((rows, dim)) < 0.5  # noqa: E731
    return {"dim": dim, "num_levels": levels, "num_features": features, "num_classes": classes,
            "value_words": pack_bits(bits(levels)), "feature_words": pack_bits(bits(features)),
            "class_words": pack_bits(bits(classes))}


def unpack(words, dim):
    """(rows, words) uint32 -> (rows, dim) bool, bit j of a vector at word j // 32, bit j % 32."""
    words = np.asarray(words, dtype=np.uint64)
    return ((words[:, :, None] >> np.arange(32, dtype=np.uint64)) & 1).reshape(len(words), -1)[:, :dim].astype(bool)


def python_scores(packed, X):
    d = packed["dim"]
    return ldc_scores(X, unpack(packed["value_words"], d), unpack(packed["feature_words"], d),
                      unpack(packed["class_words"], d))


# Feature counts on both sides of the 8-feature carry-save blocks, with 0, 1 or several tail pairs
# and an odd last feature; even counts give majority ties. Dims inside one word, across words and
# not a multiple of 32; up to 256 levels; 2-5 classes.
SHAPES = [(16, 1, 2, 2), (32, 2, 3, 2), (16, 5, 4, 2), (48, 6, 16, 3), (64, 8, 8, 2), (40, 9, 5, 4),
          (64, 16, 8, 2), (96, 17, 7, 5), (64, 48, 8, 2), (33, 49, 3, 3), (256, 33, 8, 4), (64, 30, 256, 2)]


@pytest.mark.parametrize("bound_table", [False, True], ids=["vectors", "bound_table"])
@pytest.mark.parametrize("dim,features,levels,classes", SHAPES)
def test_c_equals_python_random_models(tmp_path, dim, features, levels, classes, bound_table):
    rng = np.random.default_rng(dim * 1000 + features)
    packed = random_packed(rng, dim, features, levels, classes)
    X = rng.integers(0, levels, size=(200, features)).astype(np.uint8)
    X[0], X[1] = 0, levels - 1
    want = python_scores(packed, X)
    art = export_ldc_c(packed, tmp_path / "m", name="m", parity_levels=X, expected_scores=want,
                       bound_table=bound_table)
    assert art.parity["passed"] and art.config["bound_table"] == bound_table
    np.testing.assert_array_equal(art.scores(X), want)
    np.testing.assert_array_equal(art.predict(X), want.argmax(1))   # first maximum on ties


def test_out_of_range_levels_read_as_the_last_level(tmp_path):
    rng = np.random.default_rng(5)
    packed = random_packed(rng, 64, 11, 5, 3)
    X = rng.integers(0, 256, size=(50, 11)).astype(np.uint8)
    for bound_table in (False, True):
        art = export_ldc_c(packed, tmp_path / str(bound_table), name="m", bound_table=bound_table)
        np.testing.assert_array_equal(art.scores(X), python_scores(packed, np.minimum(X, 4)))


@pytest.mark.parametrize("bound_table", [False, True], ids=["vectors", "bound_table"])
@pytest.mark.parametrize("real,extra_zero", [(5, 0), (19, 0), (20, 1), (150, 1)])
def test_counters_equal_a_plain_count(tmp_path, real, extra_zero, bound_table):
    """The C's per-lane counters, read out exactly, equal a plain Python count of ones.

    Hand-made model: 2 levels with value vectors 0 and all-ones, so a real feature adds the bits of
    its vector (level 0) or of the complement (level 1); ``pad`` padding features have zero vectors
    and add one to every lane at level 1, none at level 0. Majority over F' = real + pad features
    is count + o > F' / 2 with o padding features at level 1, so sweeping o = 0..real shows at
    which o each lane's bit turns on: exactly at o = real + 1 - count (ties stay 0). Classes: all
    zeros, then one class per lane with only that bit set, so the scores spell out every bit."""
    dim = 48
    rng = np.random.default_rng(real)
    pad = real + extra_zero
    feature_bits = np.zeros((real + pad, dim), bool)
    feature_bits[:real] = rng.random((real, dim)) < 0.5
    packed = {"dim": dim, "num_levels": 2, "num_features": real + pad, "num_classes": dim + 1,
              "value_words": pack_bits(np.array([[False] * dim, [True] * dim])),
              "feature_words": pack_bits(feature_bits),
              "class_words": pack_bits(np.vstack([np.zeros(dim, bool), np.eye(dim, dtype=bool)]))}
    art = export_ldc_c(packed, tmp_path / "count", name="count", bound_table=bound_table)
    feature_ints = [sum(1 << i for i in range(dim) if feature_bits[f, i]) for f in range(real)]
    for trial in range(3):
        real_levels = rng.integers(0, 2, real)
        X = np.zeros((real + 1, real + pad), np.uint8)
        X[:, :real] = real_levels
        for o in range(real + 1):
            X[o, real : real + o] = 1
        scores = art.scores(X).astype(np.int64)
        bits = (scores[:, 1:] - scores[:, :1] + 2) // 4                  # (o, lane)
        assert set(np.unique(bits)) <= {0, 1}
        assert (np.diff(bits, axis=0) >= 0).all()                         # a count only grows with o
        switch_on = np.where(bits.any(0), bits.argmax(0), real + 1)       # first o with the bit set
        count = real + 1 - switch_on
        bound_ints = [fw ^ ((1 << dim) - 1 if lv else 0) for fw, lv in zip(feature_ints, real_levels)]
        columns = [sum((b >> i & 1) << f for f, b in enumerate(bound_ints)) for i in range(dim)]
        assert count.tolist() == [bin(col).count("1") for col in columns]   # popcount of each lane


@pytest.mark.parametrize("features", [48, 7])
@pytest.mark.parametrize("bound_table", [False, True], ids=["vectors", "bound_table"])
def test_strict_and_freestanding_builds(tmp_path, features, bound_table):
    """No warning on the host or Cortex-M (M0+: Thumb-1, M4: Thumb-2) with warnings as errors."""
    packed = random_packed(np.random.default_rng(0), 64, features, 8, 2)
    for name, text in generate(packed, "ldc", bound_table=bound_table).items():
        (tmp_path / name).write_text(text)
    strict = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    subprocess.run(strict + ["-c", "ldc.c", "-o", "host.o"], cwd=tmp_path, check=True)
    subprocess.run(strict + ["-ffreestanding", "-nostdlib", "-c", "ldc.c", "-o", "free.o"], cwd=tmp_path, check=True)
    arm = shutil.which("arm-none-eabi-gcc")
    if arm:
        for cpu, opt in (("cortex-m0plus", "-O2"), ("cortex-m4", "-Os")):
            subprocess.run([arm, f"-mcpu={cpu}", "-mthumb", opt, *strict[1:], "-ffreestanding", "-c", "ldc.c",
                            "-o", f"{cpu}.o"], cwd=tmp_path, check=True)


def test_bound_table_flash_and_limit(tmp_path):
    """The bound table holds value XOR feature for every (feature, level): L x F x words x 4 bytes."""
    packed = random_packed(np.random.default_rng(1), 64, 48, 8, 2)
    small = export_ldc_c(packed, tmp_path / "v", name="m")
    table = export_ldc_c(packed, tmp_path / "t", name="m", bound_table=True)
    assert small.config["table_bytes"] == (8 + 48 + 2) * 2 * 4 == small.model_bytes
    assert table.config["table_bytes"] == (8 * 48 + 2) * 2 * 4 and table.model_bytes == small.model_bytes
    assert "m_bound_words[768]" in (tmp_path / "t" / "m.c").read_text()
    big = random_packed(np.random.default_rng(2), 256, 600, 256, 2)
    with pytest.raises(ExportError, match="bound_table=False"):
        generate(big, "m", bound_table=True)
    assert "m_feature_words" in generate(big, "m")["m.c"]


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
