"""Native C for the LDC (binary VSA) student: bit-packed 32-bit words, XOR + popcount, no float.

Input: the packed parameters of an LDC model (``LDCClassifier.export_packed()``: plain ints and
uint32 arrays, so this module needs nothing from edgekd's training code). Output: a folder with

    {name}.h   macros {NAME}_NUM_FEATURES, _DIM, _NUM_CLASSES, _NUM_LEVELS, _WORDS and the API
               int  {name}_predict(const uint8_t *levels);          -> class index
               void {name}_scores(const uint8_t *levels, int32_t *scores);  -> D - 2 * Hamming
    {name}.c   the parameters as static const uint32_t arrays and the inference code
    export.json, parity.json

Freestanding C99 (only <stdint.h>, 32-bit words only, no 64-bit or float ops), so it
cross-compiles for any Cortex-M as is. Per 32-bit word of the vectors, bundling counts the ones
of the 32 lanes in bit-sliced counters held in registers (plane k = bit k of every lane's count):
blocks of 8 features go through a carry-save tree of full adders (Harley-Seal: about 5 logic ops
per feature and word), whose weight-8 carry ripples into the higher planes. The counters start at
an offset so that the majority bit is the top plane: ``count >= floor(F/2) + 1`` with no compare
and no per-bit loop; a tie (even F) gives bit 0, as in Python. Hamming distances use a SWAR
popcount. The code is straight-line within a block and takes the same path for every input.
``bound_table=True`` stores value XOR feature for every (feature, level) (precomputed bound
vectors: one load instead of two loads and an XOR, at L x F x words x 4 bytes of flash). Levels
out of range are clamped to the last level (the Python model rejects them).
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
MAX_BOUND_TABLE_BYTES = 1 << 20   # bigger than any MCU flash budget for one classifier


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


BLOCK_LOG2 = 3  # carry-save blocks of 2^3 = 8 features: 7 full adders, then one carry of weight 8 to ripple


def _full_adder(carry: str, acc: str, a: str, b: str) -> str:
    """C for acc + a + b = 2 * carry + acc' on 32 lanes at once (a carry-save full adder, 5 ops)."""
    return f"u = {acc} ^ {a}; {carry} = ({acc} & {a}) | (u & {b}); {acc} = u ^ {b};\n"


def _ripple(x: str, low: int, top: int) -> str:
    """C adding the 1-bit lanes of ``x`` (weight 2^low) to the counter planes p{low}..p{top}; the
    count never passes 2^(top+1) - 1, so the top plane needs no carry out."""
    lines = [f"t = p{k} & {x}; p{k} ^= {x}; {x} = t;\n" for k in range(low, top)]
    return "".join(lines) + f"p{top} ^= {x};\n"


def _tree(levels: int, first: int, slot: str, load) -> list[str]:
    """C adding features first..first+2^levels-1 into p0..p{levels-1}, leaving a carry of weight
    2^levels in c{2^levels}{slot} (Harley-Seal: one full adder per feature, amortized)."""
    if levels == 1:
        return [f"x = {load(first)};\n", f"y = {load(first + 1)};\n", _full_adder(f"c2{slot}", "p0", "x", "y")]
    half = 1 << (levels - 1)
    return (_tree(levels - 1, first, "a", load) + _tree(levels - 1, first + half, "b", load)
            + [_full_adder(f"c{2 * half}{slot}", f"p{levels - 1}", f"c{half}a", f"c{half}b")])


def _bound_expr(name: str, j: int, bound_table: bool) -> str:
    """C for the bound word of feature j after the pointers (level clamped), at the current word."""
    N = name.upper()
    level = f"{name}_level(lv[{j}])"
    if bound_table:
        return f"bound[({j} * {N}_NUM_LEVELS + {level}) * {N}_WORDS]"
    return f"value[{level} * {N}_WORDS] ^ feature[{j} * {N}_WORDS]"


def _bundle_word(name: str, num_features: int, planes: int, start: int, bound_table: bool) -> str:
    """C of the body of the per-word loop: the majority bit of 32 lanes of all features into sample[w]."""
    N, top, B = name.upper(), planes - 1, BLOCK_LOG2
    load = lambda j: _bound_expr(name, j, bound_table)  # noqa: E731
    blocks, tail = divmod(num_features, 1 << B) if top > B else (0, num_features)
    pairs, single = divmod(tail, 2)
    carries = [f"c{1 << lvl}{s}" for lvl in range(1, B + 1) for s in "ab"][:-1] if blocks else []
    if pairs and not carries:
        carries = ["c2a"]
    used = ["x"] + (["y", "u"] if blocks or pairs else []) + carries + (["t"] if top > 0 else [])
    out = [comment(f"counters p0..p{top} (bit-planes of the count of each lane) start at {start}")]
    out += [f"uint32_t p{k} = {'0xFFFFFFFFu' if (start >> k) & 1 else '0u'};\n" for k in range(planes)]
    out.append(f"uint32_t {', '.join(used)};\n")
    if blocks:
        step = f"bound += {1 << B} * {N}_NUM_LEVELS * {N}_WORDS;\n" if bound_table else f"feature += {1 << B} * {N}_WORDS;\n"
        body = _tree(B, 0, "a", load) + [_ripple(f"c{1 << B}a", B, top), f"lv += {1 << B};\n", step]
        out.append(comment(f"{1 << B} features per pass; each line 'u = ...' is a full adder on 32 lanes: "
                           "acc + a + b = 2 * carry + acc'"))
        out.append(f"int32_t b;\nfor (b = 0; b < {blocks}; ++b) {{\n")
        out.append(_indent("".join(body), 4) + "}\n")
    for j in range(pairs):
        out += [f"x = {load(2 * j)};\n", f"y = {load(2 * j + 1)};\n", _full_adder("c2a", "p0", "x", "y"),
                _ripple("c2a", 1, top)]
    if single:
        out += [f"x = {load(tail - 1)};\n", _ripple("x", 0, top)]
    out.append(f"sample[w] = p{top}; /* count >= 2^{top} <=> ones > F / 2: the majority bit */\n")
    return "".join(out)


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def table_bytes(num_levels: int, num_features: int, num_classes: int, words: int, bound_table: bool) -> int:
    """Flash bytes of the constant tables the C holds (bound or value + feature vectors, class vectors)."""
    rows = num_features * num_levels if bound_table else num_levels + num_features
    return (rows + num_classes) * words * 4


def generate(packed: dict, name: str = "ldc", *, bound_table: bool = False) -> dict:
    """{filename: text} for the header and the source.

    ``bound_table``: store value XOR feature for every (feature, level) in flash (L x F x words x 4
    bytes) instead of the value and feature vectors ((L + F) x words x 4 bytes): one load per
    feature and word instead of two loads and an XOR (13 % fewer M4 cycles at the BCI shape for a
    3x larger flash image; see docs/eeg.md)."""
    check_identifier(name)
    dim, L, F, C, W = _check_packed(packed)
    if bound_table and L * F * W * 4 > MAX_BOUND_TABLE_BYTES:
        raise ExportError(f"LDC export {name}: a bound table would take {L * F * W * 4:,} bytes "
                          f"(> {MAX_BOUND_TABLE_BYTES:,}); export with bound_table=False")
    N = name.upper()
    planes, start = majority_offset(F)
    cfg = {"dim": dim, "num_levels": L, "num_features": F, "num_classes": C, "bound_table": bool(bound_table)}
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
    value = np.asarray(packed["value_words"], dtype=np.uint32)
    feature = np.asarray(packed["feature_words"], dtype=np.uint32)
    if bound_table:
        bound = feature[:, None, :] ^ value[None, :, :]     # (F, L, W)
        params = [comment("bound vectors: value[level] XOR feature[f] at [(f * LEVELS + level) * WORDS + w]"),
                  array_declare(f"{name}_bound_words", bound.ravel(), "uint32_t", per_line=6)]
        pointers = f"const uint32_t *bound = &{name}_bound_words[w];\n"
    else:
        params = [comment("value vector of each level, feature vector of each feature; LSB = bit 0"),
                  array_declare(f"{name}_value_words", value.ravel(), "uint32_t", per_line=6),
                  array_declare(f"{name}_feature_words", feature.ravel(), "uint32_t", per_line=6)]
        pointers = (f"const uint32_t *value = &{name}_value_words[w];\n"
                    f"const uint32_t *feature = &{name}_feature_words[w];\n")
    body = [
        banner(f"LDC classifier {name}", cfg),
        f'#include "{name}.h"\n\n',
        comment("out-of-range levels read as the last level (a function, not a ?: macro: gcc then keeps the "
                "clamp to cmp + conditional move and folds the row stride into the load)"),
        f"static inline uint32_t {name}_level(uint32_t level)\n{{\n"
        f"    return level < {N}_NUM_LEVELS ? level : {N}_NUM_LEVELS - 1u;\n}}\n\n",
        *params,
        comment("class vectors; LSB = bit 0"),
        array_declare(f"{name}_class_words", np.asarray(packed["class_words"]).ravel(), "uint32_t", per_line=6),
        "\n",
        f"""static int32_t {name}_popcount(uint32_t x)
{{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((x * 0x01010101u) >> 24);
}}

/* Bundling is bit-sliced: lane i of counter plane k is bit k of the count of ones at bit i of the
   bound vectors, so 32 bits are counted by a few word-wide logic ops per feature. */
void {name}_scores(const uint8_t *levels, int32_t *scores)
{{
    uint32_t sample[{N}_WORDS];
    int32_t w, c;
    for (w = 0; w < {N}_WORDS; ++w) {{
        const uint8_t *lv = levels;
""" + _indent(pointers + _bundle_word(name, F, planes, start, bound_table), 8) + f"""    }}
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
                 bound_table: bool = False, verbose=None) -> LDCArtifact:
    """Write the C for ``packed`` into ``out_dir`` (atomically). With ``parity_levels`` and the
    Python model's ``expected_scores`` for them, the compiled C must match EXACTLY or nothing is
    written (ParityError). ``bound_table``: precomputed bound vectors in flash (see :func:`generate`)."""
    from edgekd import __version__
    from edgekd.io import atomic_dir

    dim, L, F, C, W = _check_packed(packed)
    sources = generate(packed, name, bound_table=bound_table)
    config = {"format": FORMAT, "version": 1, "name": name, "target": "ldc_c", "precision": "binary",
              "dim": dim, "num_levels": L, "num_features": F, "num_classes": C, "words": W,
              "classes": list(packed.get("classes", range(C))), "files": sorted(sources),
              "edgekd_version": __version__, "compile_flags": list(C_FLAGS),
              "bound_table": bool(bound_table), "table_bytes": table_bytes(L, F, C, W, bound_table)}
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
