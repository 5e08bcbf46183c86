"""Native C for the LDC (binary VSA) student: bit-packed 32-bit words, XOR + popcount, no float.

Input: the packed parameters of an LDC model (``LDCClassifier.export_packed()``: plain ints and
uint32 arrays, so this module needs nothing from edgekd's training code). Output: a folder with

    {name}.h   macros {NAME}_NUM_FEATURES, _DIM, _NUM_CLASSES, _NUM_LEVELS, _WORDS and the API
               int  {name}_predict(const uint8_t *levels);          -> class index
               void {name}_scores(const uint8_t *levels, int32_t *scores);  -> D - 2 * Hamming
    {name}.c   the parameters as static const uint32_t arrays and the inference code
    export.json, parity.json

Freestanding C99 (only <stdint.h>), so it cross-compiles for Cortex-M as is. Bundling uses
bit-sliced counters (one bit-plane per counter bit, 32 lanes per word) started at an offset so
that the majority bit is the counters' top plane: ``count >= floor(F/2) + 1`` with no per-bit
loop. Levels out of range are clamped to the last level (the Python model rejects them).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..cgen import array_declare, banner, check_identifier, comment, constant, include_guard
from ..errors import ExportError, ParityError

C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
FORMAT = "edgekd-ldc-c"


def _check_packed(p: dict):
    for key in ("dim", "num_levels", "num_features", "num_classes", "value_words", "feature_words", "class_words"):
        if key not in p:
            raise ExportError(f"LDC export: packed parameters lack {key!r}")
    dim, L, F, C = (int(p[k]) for k in ("dim", "num_levels", "num_features", "num_classes"))
    if not 1 <= dim <= 4096 or not 2 <= L <= 256 or not 1 <= F <= 65535 or not 2 <= C <= 65535:
        raise ExportError(f"LDC export: sizes out of range (dim {dim}, levels {L}, features {F}, classes {C})")
    words = -(-dim // 32)
    for key, rows in (("value_words", L), ("feature_words", F), ("class_words", C)):
        arr = np.asarray(p[key])
        if arr.shape != (rows, words):
            raise ExportError(f"LDC export: {key} must be shaped ({rows}, {words}), got {arr.shape}")
        if arr.min() < 0 or arr.max() >= 2**32:
            raise ExportError(f"LDC export: {key} holds values outside uint32")
        if dim % 32 and (arr[:, -1].astype(np.uint64) >> np.uint64(dim % 32)).any():
            raise ExportError(f"LDC export: {key} has bits set beyond dim {dim}")
    return dim, L, F, C, words


def majority_offset(num_features: int) -> tuple[int, int]:
    """(counter planes K+1, start value S): S + ones reaches 2^K exactly when ones > F/2."""
    k = max(1, int(num_features).bit_length())  # 2^k > F
    threshold = num_features // 2 + 1
    return k + 1, (1 << k) - threshold


def generate(packed: dict, name: str = "ldc") -> dict:
    """{filename: text} for the header and the source."""
    check_identifier(name)
    dim, L, F, C, W = _check_packed(packed)
    N = name.upper()
    planes, start = majority_offset(F)
    cfg = {"dim": dim, "num_levels": L, "num_features": F, "num_classes": C}
    api = (
        "#include <stdint.h>\n\n"
        + constant(f"{N}_NUM_FEATURES", F) + constant(f"{N}_DIM", dim) + constant(f"{N}_NUM_CLASSES", C)
        + constant(f"{N}_NUM_LEVELS", L) + constant(f"{N}_WORDS", W) + "\n"
        + comment(f"levels: {N}_NUM_FEATURES values in 0..{N}_NUM_LEVELS-1; returns the best class index")
        + f"int {name}_predict(const uint8_t *levels);\n"
        + comment(f"scores[c] = {N}_DIM - 2 * Hamming(sample, class c), for {N}_NUM_CLASSES classes")
        + f"void {name}_scores(const uint8_t *levels, int32_t *scores);\n"
    )
    header = banner(f"LDC classifier {name} (header)", cfg) + include_guard(name, api)
    body = [
        banner(f"LDC classifier {name}", cfg),
        f'#include "{name}.h"\n\n',
        comment(f"Counters: {planes} bit-planes started at {start}, so the top plane is the majority bit"),
        constant(f"{N}_PLANES", planes), constant(f"{N}_START", start), "\n",
        comment("value vector of each level, feature vector of each feature, class vectors; LSB = bit 0"),
        array_declare(f"{name}_value_words", np.asarray(packed["value_words"]).ravel(), "uint32_t", per_line=6),
        array_declare(f"{name}_feature_words", np.asarray(packed["feature_words"]).ravel(), "uint32_t", per_line=6),
        array_declare(f"{name}_class_words", np.asarray(packed["class_words"]).ravel(), "uint32_t", per_line=6),
        "\n",
        f"""static int32_t {name}_popcount(uint32_t x)
{{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((x * 0x01010101u) >> 24);
}}

void {name}_scores(const uint8_t *levels, int32_t *scores)
{{
    uint32_t plane[{N}_PLANES][{N}_WORDS];
    uint32_t sample[{N}_WORDS];
    int32_t f, w, k, c;
    for (k = 0; k < {N}_PLANES; ++k) {{
        for (w = 0; w < {N}_WORDS; ++w) {{
            plane[k][w] = (({N}_START >> k) & 1) ? 0xFFFFFFFFu : 0u;
        }}
    }}
    for (f = 0; f < {N}_NUM_FEATURES; ++f) {{
        uint32_t level = levels[f];
        const uint32_t *value;
        const uint32_t *feature = &{name}_feature_words[f * {N}_WORDS];
        if (level >= (uint32_t){N}_NUM_LEVELS) {{
            level = (uint32_t){N}_NUM_LEVELS - 1u;
        }}
        value = &{name}_value_words[level * {N}_WORDS];
        for (w = 0; w < {N}_WORDS; ++w) {{
            uint32_t carry = value[w] ^ feature[w]; /* bind: XOR */
            for (k = 0; k < {N}_PLANES && carry != 0u; ++k) {{ /* bundle: add 1 to each lane with a set bit */
                uint32_t next = plane[k][w] & carry;
                plane[k][w] ^= carry;
                carry = next;
            }}
        }}
    }}
    for (w = 0; w < {N}_WORDS; ++w) {{
        sample[w] = plane[{N}_PLANES - 1][w];
    }}
    for (c = 0; c < {N}_NUM_CLASSES; ++c) {{
        int32_t hamming = 0;
        for (w = 0; w < {N}_WORDS; ++w) {{
            hamming += {name}_popcount(sample[w] ^ {name}_class_words[c * {N}_WORDS + w]);
        }}
        scores[c] = (int32_t){N}_DIM - 2 * hamming;
    }}
}}

int {name}_predict(const uint8_t *levels)
{{
    int32_t scores[{N}_NUM_CLASSES];
    int best = 0;
    int c;
    {name}_scores(levels, scores);
    for (c = 1; c < {N}_NUM_CLASSES; ++c) {{
        if (scores[c] > scores[best]) {{
            best = c;
        }}
    }}
    return best;
}}
""",
    ]
    return {f"{name}.h": header, f"{name}.c": "".join(body)}


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ExportError("no C compiler found: install gcc or set CC to run the LDC C export on the host")
    return cc


def compile_shared(src_dir, name: str, out: Path, flags=C_FLAGS) -> Path:
    """Host build of the exported C as a shared library (strict flags: warnings are errors)."""
    cmd = [compiler(), *flags, "-O2", "-shared", "-fPIC", "-o", str(out), str(Path(src_dir) / f"{name}.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExportError(f"compiling {Path(src_dir) / f'{name}.c'} failed: {proc.stderr.strip()[:2000]}")
    return out


class LDCArtifact:
    """An exported LDC: ``files``, ``config``, ``parity``, ``predict``/``scores`` (the compiled C), ``save``."""

    def __init__(self, path, config: dict, parity: dict | None = None):
        self.path, self.config, self.parity = Path(path), config, parity or {}
        self._lib = None
        self._tmp = None

    name = property(lambda self: self.config["name"])

    @property
    def files(self) -> list[Path]:
        return [self.path / f for f in self.config["files"]]

    @property
    def model_bytes(self) -> int:
        """Flash for the binary parameters: (levels + features + classes) x words x 4."""
        c = self.config
        return (c["num_levels"] + c["num_features"] + c["num_classes"]) * c["words"] * 4

    def _library(self):
        import ctypes

        if self._lib is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edgekd_ldc_")
            so = compile_shared(self.path, self.name, Path(self._tmp.name) / f"lib{self.name}.so")
            lib = ctypes.CDLL(str(so))
            getattr(lib, f"{self.name}_scores").argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            getattr(lib, f"{self.name}_predict").argtypes = [ctypes.c_void_p]
            getattr(lib, f"{self.name}_predict").restype = ctypes.c_int
            self._lib = lib
        return self._lib

    def _levels(self, levels):
        levels = np.asarray(levels)
        F = self.config["num_features"]
        if levels.ndim != 2 or levels.shape[1] != F:
            raise ExportError(f"LDC artifact {self.name}: expected levels shaped (N, {F}), got {levels.shape}")
        if levels.size and (levels.min() < 0 or levels.max() > 255):
            raise ExportError(f"LDC artifact {self.name}: levels must fit uint8")
        return np.ascontiguousarray(levels, dtype=np.uint8)

    def scores(self, levels) -> np.ndarray:
        """(N, C) int32 scores from the compiled C function ``{name}_scores``."""
        levels = self._levels(levels)
        fn = getattr(self._library(), f"{self.name}_scores")
        out = np.zeros((len(levels), self.config["num_classes"]), dtype=np.int32)
        for i in range(len(levels)):
            fn(levels[i].ctypes.data, out[i].ctypes.data)
        return out

    def predict(self, levels) -> np.ndarray:
        """(N,) class indices from the compiled C function ``{name}_predict``."""
        levels = self._levels(levels)
        fn = getattr(self._library(), f"{self.name}_predict")
        return np.array([fn(row.ctypes.data) for row in levels], dtype=np.int64)

    def save(self, path) -> "LDCArtifact":
        from edgekd.io import atomic_dir

        with atomic_dir(path) as tmp:
            for f in self.files + [self.path / "export.json", self.path / "parity.json"]:
                if f.exists():
                    shutil.copy2(f, tmp / f.name)
        return LDCArtifact(path, self.config, self.parity)

    @classmethod
    def load(cls, path) -> "LDCArtifact":
        path = Path(path)
        try:
            config = json.loads((path / "export.json").read_text())
        except FileNotFoundError:
            raise ExportError(f"{path}: not an LDC export folder (no export.json)") from None
        if config.get("format") != FORMAT:
            raise ExportError(f"{path / 'export.json'}: format {config.get('format')!r}, expected {FORMAT!r}")
        parity_file = path / "parity.json"
        parity = json.loads(parity_file.read_text()) if parity_file.exists() else {}
        return cls(path, config, parity)


def export_ldc_c(packed: dict, out_dir, *, name: str = "ldc", parity_levels=None, expected_scores=None,
                 verbose=None) -> LDCArtifact:
    """Write the C for ``packed`` into ``out_dir`` (atomically). With ``parity_levels`` and the
    Python model's ``expected_scores`` for them, the compiled C must match EXACTLY or nothing is
    written (ParityError)."""
    from edgekd import __version__
    from edgekd.io import atomic_dir

    dim, L, F, C, W = _check_packed(packed)
    sources = generate(packed, name)
    config = {"format": FORMAT, "version": 1, "name": name, "target": "ldc_c", "precision": "binary",
              "dim": dim, "num_levels": L, "num_features": F, "num_classes": C, "words": W,
              "classes": list(packed.get("classes", range(C))), "files": sorted(sources),
              "edgekd_version": __version__, "compile_flags": list(C_FLAGS)}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for fname, text in sources.items():
            (tmp / fname).write_text(text)
        parity = {"checked": False}
        if parity_levels is not None:
            art = LDCArtifact(tmp, config)
            got = art.scores(parity_levels)
            want = np.asarray(expected_scores, dtype=np.int64)
            if got.shape != want.shape:
                raise ParityError(f"LDC export {name}: C gave scores {got.shape}, Python {want.shape}")
            mismatches = int((got != want).any(1).sum())
            parity = {"checked": True, "inputs": int(len(got)), "mismatched_inputs": mismatches,
                      "max_abs_diff": int(np.abs(got - want).max()) if got.size else 0, "passed": mismatches == 0}
            if mismatches:
                raise ParityError(f"LDC export {name}: C scores differ from Python on {mismatches} of {len(got)} inputs")
        config["model_bytes"] = (L + F + C) * W * 4
        (tmp / "export.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "parity.json").write_text(json.dumps(parity, indent=2) + "\n")
    return LDCArtifact(out_dir, config, parity)
