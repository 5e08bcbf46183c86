import subprocess
import sys


def test_import_edgekd_pulls_in_no_tensorflow_jax_or_litert():
    code = ("import sys, edgekd, edgekd.distill, edgekd.models, edgekd.data, edgekd.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'jax', 'jaxlib', 'litert_torch', 'ai_edge_litert', 'tflite_runtime', 'tflite_micro')); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout.strip()}"
