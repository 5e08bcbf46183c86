"""Cross build + unicorn emulation of a small int8 kernel: outputs equal the host build's exactly."""
import numpy as np
import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from benchmarks.mcu.costmodel import cost_model  # noqa: E402
from benchmarks.mcu.emulate import Emulator  # noqa: E402
from benchmarks.mcu.reference import fc_reference, make_fc, write_fc_kernel  # noqa: E402
from benchmarks.mcu.toolchain import build_elf, elf_sizes, find_compiler, header_constants, read_entry  # noqa: E402
from edgekd.errors import EdgeKDError  # noqa: E402

needs_arm_gcc = pytest.mark.skipif(find_compiler() is None,
                                   reason="arm-none-eabi-gcc not installed (make toolchain / apt gcc-arm-none-eabi)")


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    kernel = make_fc(64, 16, seed=3)
    folder = write_fc_kernel(tmp_path_factory.mktemp("fc") / "src", kernel, name="tiny")
    return kernel, folder


@pytest.fixture(scope="module")
def host_model(kernel_dir):
    from benchmarks.host.native import build_host, host_compiler

    if host_compiler() is None:
        pytest.skip("no host C compiler")
    _, folder = kernel_dir
    return build_host(folder, "tiny", out_dir=folder.parent / "host")


def test_header_constants_and_entry(kernel_dir):
    kernel, folder = kernel_dir
    consts = header_constants(folder / "tiny.h")
    assert consts["TINY_INPUT_SIZE"] == 64 and consts["TINY_OUTPUT_SIZE"] == 16 and consts["TINY_MACS"] == 64 * 16
    entry = read_entry(folder, "tiny")
    assert (entry.kind, entry.function, entry.input_size, entry.output_size) == ("nn", "tiny_invoke", 64, 16)
    with pytest.raises(EdgeKDError, match="missing header"):
        read_entry(folder, "nope")


def test_host_build_matches_numpy(kernel_dir, host_model):
    kernel, _ = kernel_dir
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(-128, 128, 64).astype(np.int8)
        status, y = host_model.predict(x)
        assert status == 0
        np.testing.assert_array_equal(y, fc_reference(kernel, x))
    res = host_model.time(x, warmup=2, runs=5)
    assert res["runs"] == 5 and res["median_ms"] > 0 and res["p90_ms"] >= res["median_ms"]


@needs_arm_gcc
@pytest.mark.parametrize("core, variant", [("cortex-m4", "native-c"), ("cortex-m4", "native-c-dsp"),
                                           ("cortex-m0plus", "native-c"), ("cortex-m33", "native-c-dsp")])
def test_emulated_output_equals_host_build(kernel_dir, host_model, core, variant, tmp_path):
    kernel, folder = kernel_dir
    build = build_elf(folder, core, "-O2", name="tiny", variant=variant, out_dir=tmp_path)
    em = Emulator.from_elf(build.elf, core)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.integers(-128, 128, 64).astype(np.int8)
        trace = em.call("tiny_invoke", x.tobytes(), bytes(16), outputs=[(1, 16)])
        y = np.frombuffer(trace.outputs[0], np.int8)
        np.testing.assert_array_equal(y, host_model.predict(x)[1])
        np.testing.assert_array_equal(y, fc_reference(kernel, x))
        assert trace.returned == 0
    assert trace.instructions > kernel.macs / 2          # SMLAD does at most 2 MACs per instruction
    assert 0 < trace.stack_bytes < 4096
    model = cost_model(core)
    assert trace.cycles(model) >= trace.instructions      # no instruction is cheaper than one cycle here


@needs_arm_gcc
def test_dsp_path_bit_exact_and_fewer_instructions(kernel_dir, tmp_path):
    kernel, folder = kernel_dir
    x = np.random.default_rng(2).integers(-128, 128, 64).astype(np.int8)
    runs = {}
    for variant in ("native-c", "native-c-dsp"):
        build = build_elf(folder, "cortex-m4", "-O2", name="tiny", variant=variant, out_dir=tmp_path)
        runs[variant] = Emulator.from_elf(build.elf, "cortex-m4").call("tiny_invoke", x.tobytes(), bytes(16),
                                                                       outputs=[(1, 16)])
    assert runs["native-c"].outputs == runs["native-c-dsp"].outputs
    assert runs["native-c-dsp"].mix["mul"] < runs["native-c"].mix["mul"]       # SMLAD: 2 MACs per multiply
    assert runs["native-c-dsp"].instructions < runs["native-c"].instructions


@needs_arm_gcc
def test_elf_sizes_cover_weights_and_buffers(kernel_dir, tmp_path):
    kernel, folder = kernel_dir
    build = build_elf(folder, "cortex-m0plus", "-Os", name="tiny", out_dir=tmp_path)
    sections, flash, ram = elf_sizes(build.elf)
    assert (build.flash_bytes, build.ram_bytes) == (flash, ram)
    assert flash >= kernel.weight.size + 4 * kernel.bias.size           # weights and biases live in flash
    assert ram >= 64 + 16                                                # input and output buffers of the harness
    assert sections[".isr_vector"] == 8 and ".text" in sections


@needs_arm_gcc
def test_bad_core_and_failing_build_are_clear(kernel_dir, tmp_path):
    _, folder = kernel_dir
    with pytest.raises(EdgeKDError, match="Allowed values"):
        build_elf(folder, "cortex-m99", name="tiny", out_dir=tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tiny.h").write_text((folder / "tiny.h").read_text())
    (broken / "tiny.c").write_text("int tiny_invoke(void) { return syntax error }\n")
    with pytest.raises(EdgeKDError, match="cross build for cortex-m4"):
        build_elf(broken, "cortex-m4", name="tiny", out_dir=tmp_path / "b")
