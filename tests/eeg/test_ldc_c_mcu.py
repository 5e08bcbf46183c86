"""LDC native C cross-built for Cortex-M0+ and M4 (-O2, -Os) and run in the emulator: scores equal
the Python LDC's exactly on every input, for both table layouts."""
import numpy as np
import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from benchmarks.mcu.emulate import Emulator  # noqa: E402
from benchmarks.mcu.toolchain import build_elf, find_compiler  # noqa: E402
from firmware_export.targets.ldc_c import export_ldc_c  # noqa: E402

from .test_ldc_c import python_scores, random_packed  # noqa: E402

pytestmark = pytest.mark.skipif(find_compiler() is None,
                                reason="arm-none-eabi-gcc not installed (make toolchain / apt gcc-arm-none-eabi)")

# the BCI shape, an odd feature count with a tail pair and a single feature across 3 words, ties
MODELS = [(64, 48, 8, 2), (72, 19, 5, 3), (40, 10, 3, 4)]


@pytest.mark.slow
@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4"])
def test_emulated_scores_equal_python(tmp_path, core):
    for i, (dim, features, levels, classes) in enumerate(MODELS):
        rng = np.random.default_rng(100 + i)
        packed = random_packed(rng, dim, features, levels, classes)
        X = rng.integers(0, levels, size=(6, features)).astype(np.uint8)
        X[0] = 255                                    # out of range: read as the last level
        want = python_scores(packed, np.minimum(X, levels - 1))
        for bound_table in (False, True):
            folder = export_ldc_c(packed, tmp_path / f"m{i}{bound_table}", name="ldc", bound_table=bound_table).path
            for opt in ("-O2", "-Os"):
                build = build_elf(folder, core, opt, name="ldc", kind="ldc", variant="native-c",
                                  out_dir=tmp_path / f"b{i}{bound_table}{opt}")
                em = Emulator.from_elf(build.elf, core)
                for x, w in zip(X, want):
                    trace = em.call("ldc_scores", x.tobytes(), bytes(4 * classes), outputs=[(1, 4 * classes)])
                    got = np.frombuffer(trace.outputs[0], "<i4")
                    assert got.tolist() == w.tolist(), (core, opt, bound_table, (dim, features, levels, classes))
                    assert em.call("ldc_predict", x.tobytes()).returned == int(w.argmax())
