"""Quiet unless asked: third-party chatter is gone without ``--verbose``, errors and long work still show.

The real command runs in a subprocess (the C++ lines go to fd 2, below Python). The patterns are
written out here, independently of ``edgekd.quiet.NOISE``, as a user would grep for them.
"""
import logging
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgekd._stderr_filter import LineFilter
from edgekd.quiet import NOISE, native_stderr_filter, quiet

ROOT = Path(__file__).resolve().parents[1]

NOISE_LINES = [
    r"Failed to load .*torchao/_C_mxfp8",              # torchao's CUDA .so files
    r"Failed to load .*torchao/_C_cutlass_90a",
    r"WARNING: All log messages before absl::InitializeLog",   # absl
    r"oneDNN custom operations are on",                # TF's port.cc
    r"Estimated count of arithmetic ops",              # LiteRT's converter, flatbuffer_export.cc
    r"Created TensorFlow Lite XNNPACK delegate",       # LiteRT
    r"\[cpuinfo_utils\.cpp:\d+\]",                     # ExecuTorch
    r"torchvision is not installed",                   # torch.onnx
    r"<enum 'KernelPreference'> is an Enum subclass",  # torch pytree deprecation
    r"isinstance\(treespec, LeafSpec\)` is deprecated",
    r"return cls\.__new__\(cls, \*args\)",             # the source line the LeafSpec warning echoes
]


def _noise_in(text):
    return [p for p in NOISE_LINES if re.search(p, text)]


def _env():
    e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    e.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return e


def _edgekd(*args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgekd.cli", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_line_filter_drops_listed_lines_only():
    lines = LineFilter([r"^INFO: Created TensorFlow Lite XNNPACK", r"LeafSpec\) is deprecated"])
    out = lines.feed(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nreal error: bad shape\n"
                     b"/x/copyreg.py:105: FutureWarning: isinstance(treespec, LeafSpec) is deprecated\n"
                     b"  return cls.__new__(cls, *args)\n  indented, after a kept line\nINFO: Created Ten")
    assert out == b"real error: bad shape\n"  # the warning's echoed source line went with it
    assert lines.feed(b"sorFlow Lite XNNPACK delegate for CPU.\n") == b""  # split across writes: still dropped
    assert lines.feed(b"  indented, after nothing dropped\n") == b"  indented, after nothing dropped\n"
    # a progress bar redraws with \r and never ends its line: every redraw passes
    assert lines.feed(b"\repoch 1/2:  50%|#####") == b"\r"
    assert lines.flush() == b"epoch 1/2:  50%|#####"


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_quiet_filters_python_loggers_and_warnings_at_their_source():
    # no fd filter here: this checks the Python half alone (the logger's own filter, the warning filter)
    onnx_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    collect = _Collect()
    onnx_log.addHandler(collect)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with quiet(native=False):
                onnx_log.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
                onnx_log.warning("a real problem")
                warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
                warnings.warn("another FutureWarning", FutureWarning)
        assert collect.messages == ["a real problem"]
        assert [str(w.message) for w in seen] == ["another FutureWarning"]
        onnx_log.warning("torchvision is not installed. Skipping %s", "torchvision::nms")  # after the block: shown
        assert collect.messages[-1] == "torchvision is not installed. Skipping torchvision::nms"
    finally:
        onnx_log.removeHandler(collect)


def test_fd_filter_drops_native_lines_and_keeps_the_rest(tmp_path):
    # lines written with os.write on fd 2, as C++ does, in a process that owns its stderr
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1795966453.606748    3613 port.cc:153] oneDNN custom operations are on. You may see ...",
             "I0000 00:00:1795975105.926290   25976 flatbuffer_export.cc:4410] Estimated count of arithmetic ops: "
             "0.367 M  ops, equivalently 0.183 M  MACs",
             "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
             "[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version",
             "[method.cpp:12] Error: a real ExecuTorch error", "Segmentation fault in kernel X"]
    code = textwrap.dedent(f"""
        import os, subprocess, sys
        from edgekd.quiet import native_stderr_filter
        with native_stderr_filter():
            for line in {lines!r}:
                os.write(2, (line + "\\n").encode())
            subprocess.run([sys.executable, "-c", "import os; os.write(2, b'[cpuinfo_utils.cpp:87] child\\\\nchild error\\\\n')"])
            print("python stderr line", file=sys.stderr)
        os.write(2, b"after the block\\n")
    """)
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["[method.cpp:12] Error: a real ExecuTorch error", "Segmentation fault in kernel X",
                                       "child error", "python stderr line", "after the block"]


def test_every_noise_entry_says_where_it_comes_from():
    for noise in NOISE:
        re.compile(noise.message)
        assert noise.why.strip()
        assert not (noise.logger and noise.warning)


def _factory(tmp_path):
    (tmp_path / "net.py").write_text("import torch.nn as nn\n\ndef make():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), "
                                     "nn.ReLU(), nn.Flatten(), nn.Linear(72, 3))\n")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32))
    return ["net.py:make", "--input-shape", "1,1,8,8", "--calibration", "cal.npy", "--parity", "8"]


@pytest.mark.slow
def test_export_is_quiet_and_verbose_brings_the_lines_back(tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("onnxruntime")
    model = _factory(tmp_path)
    run = _edgekd("export", *model, "--target", "all", "--out", "ex", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _noise_in(run.stdout + run.stderr) == [], run.stderr
    assert run.stderr.strip() == "", run.stderr
    assert "c       int8  parity passed" in run.stdout

    loud = _edgekd("export", *model, "--target", "tflite", "--out", "ex_v", "--verbose", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    # what the libraries print on this machine when loading and converting (the C++ lines included)
    assert {"oneDNN custom operations are on", "Created TensorFlow Lite XNNPACK delegate",
            "<enum 'KernelPreference'> is an Enum subclass"} <= set(_noise_in(loud.stderr)), loud.stderr
    assert "export tflite/int8: ops" in loud.stderr  # edgekd's own INFO lines


def test_bad_input_still_prints_its_one_line_error(tmp_path):
    model = _factory(tmp_path)
    model[model.index("cal.npy")] = "missing.npy"
    run = _edgekd("export", *model, "--target", "c", "--out", "ex", cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [f"edgekd export: error: --calibration missing.npy: no such file (expected a "
                                       f".npy or .npz of inputs (N, 1, 8, 8))"], run.stderr
    assert not (tmp_path / "ex").exists()


@pytest.mark.slow
def test_training_a_missing_checkpoint_says_so_first_and_shows_progress(tmp_path):
    # the demo's configs shrunk to 1 epoch on 8x8 digits, so the missing checkpoints train in seconds
    code = textwrap.dedent(f"""
        import sys
        import edgekd.demo as demo
        from edgekd.distill import train_config
        from edgekd.models import ModelConfig
        base = demo.DemoConfig()
        tiny = base.replace(dataset="digits8", teacher=ModelConfig("teacher_cnn", options={{"width": 4}}),
                            teacher_train=train_config(epochs=1), student_train=base.student_train.replace(epochs=1))
        demo.DemoConfig = lambda: tiny
        from edgekd.cli import main
        sys.exit(main(["export", "--demo-student", "--runs", "empty", "--target", "onnx", "--out", "ex"]))
    """)
    (tmp_path / "empty").mkdir()
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    err = run.stderr
    teacher_line = "training the teacher (1 epochs) because empty/teacher.pt is missing"
    student_line = "training the distilled student (seed 0) (1 epochs) because empty/student_kd_seed0.pt is missing"
    assert err.startswith(teacher_line + "\n"), err  # first, before any training output
    assert err.index(teacher_line) < err.index("epoch 1/1") < err.index(student_line), err  # a progress bar
    assert err.count("epoch 1/1") >= 2 and "%|" in err  # teacher's and student's bars
    assert _noise_in(run.stdout + err) == []
    assert "onnx    fp32  parity passed" in run.stdout
