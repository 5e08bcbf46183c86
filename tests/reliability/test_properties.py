"""Property-based tests (hypothesis) for the C builders and the config loader."""
import json
import re
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgekd.config import Config, load_config
from edgekd.distill import AlphaSchedule, Curriculum, KDConfig
from edgekd.errors import ConfigError
from edgekd.models import ModelConfig
from firmware_export.cgen import (C_KEYWORDS, _INT_TYPES, array_declare, banner, c_identifier, check_identifier,
                                  comment, constant, include_guard)

VALID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GCC = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# layer names people (and attackers) write: dots, slashes, C syntax, comment closers, unicode
hostile = st.one_of(
    st.text(),
    st.lists(st.sampled_from(list("abcXYZ019_.-/ *;{}()#\"'\\\n\t") + ["*/", "/*", "__", "??/"])).map("".join),
    st.sampled_from(["", "1", "__init__", "_Bool", "int", "main", "x; system(\"rm -rf /\"); //", "*/ int evil;",
                     "#include <stdio.h>", "conv1.weight", "ε", "\x00", "a" * 200]),
)


def _reserved(name):
    return name in C_KEYWORDS or name.startswith("__") or bool(re.match(r"^_[A-Z]", name))


@FAST
@given(hostile)
def test_c_identifier_always_gives_a_valid_unreserved_identifier(name):
    ident = c_identifier(name)
    assert VALID.match(ident) and not _reserved(ident)
    assert check_identifier(ident) == ident
    assert c_identifier(ident) == ident  # already safe names are left alone


@FAST
@given(st.text())
def test_check_identifier_accepts_exactly_the_valid_unreserved_names(name):
    ok = bool(VALID.match(name)) and not _reserved(name)
    if ok:
        assert check_identifier(name) == name
    else:
        with pytest.raises(ValueError, match=re.escape(repr(name)[:20])):
            check_identifier(name)


@FAST
@given(st.text())
def test_comment_cannot_be_closed_early(text):
    out = comment(text)
    assert out.startswith("/* ") and out.endswith(" */\n")
    assert "*/" not in out[3:-4] and "/*" not in out[3:-4]


int_arrays = st.sampled_from(sorted(_INT_TYPES)).flatmap(
    lambda ctype: st.tuples(st.just(ctype), st.lists(st.integers(*_INT_TYPES[ctype]), min_size=1, max_size=70)))


@FAST
@given(int_arrays, st.sampled_from([None, 4, 16]))
def test_array_declare_round_trips_its_values(typed, align):
    ctype, values = typed
    text = array_declare("w", values, ctype, align=align)
    m = re.fullmatch(r"static const (.+?) w\[(\d+)\]( __attribute__\(\(aligned\(\d+\)\)\))? = \{\n    (.*)\n\};\n",
                     text, re.S)
    assert m and m.group(1) == ctype and int(m.group(2)) == len(values)
    assert [int(v) for v in re.split(r",\s*", m.group(4))] == values


@FAST
@given(st.sampled_from(sorted(_INT_TYPES)), st.integers())
def test_array_declare_refuses_values_that_do_not_fit(ctype, value):
    lo, hi = _INT_TYPES[ctype]
    if lo <= value <= hi:
        assert str(value) in array_declare("w", [value], ctype)
    else:
        with pytest.raises(ValueError, match=f"value {value} does not fit {ctype}"):
            array_declare("w", [value], ctype)


def _compilers():
    found = [("gcc", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])] if shutil.which("gcc") else []
    if shutil.which("arm-none-eabi-gcc"):  # 32-bit long: catches literals that only fit on the host
        found.append(("arm-none-eabi-gcc", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                                            "-mcpu=cortex-m4", "-mthumb", "-ffreestanding"]))
    return found


@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc not installed")
@GCC
@given(st.lists(st.lists(st.integers(-128, 127), min_size=1, max_size=200), min_size=4, max_size=4),
       st.lists(hostile, min_size=4, max_size=4))
@example(arrays=[[1], [-128], [127], [0]], names=["??/", "x\n#define EVIL 1", "*/ int evil; /*", "int"])
def test_generated_c_compiles_and_holds_the_values(tmp_path_factory, arrays, names):
    """Random int8 arrays under hostile layer names, plus every type's extremes, compile -Werror and read back."""
    tmp = tmp_path_factory.mktemp("cgen")
    idents = [c_identifier(n, prefix=f"a{i}_") for i, n in enumerate(names)]
    body = banner("property test", {"names": names}) + "#include <stdint.h>\n"
    body += "".join(comment(n) for n in names)
    body += "".join(array_declare(i, a, "int8_t", align=4) for i, a in zip(idents, arrays))
    extremes = {f"ext_{c.replace(' ', '_')}": (c, [lo, hi, 0]) for c, (lo, hi) in _INT_TYPES.items()}
    body += "".join(array_declare(n, v, c) for n, (c, v) in extremes.items())
    body += constant("N_ARRAYS", len(arrays))
    header = include_guard(names[0], body)
    (tmp / "w.h").write_text(header)
    main = '#include <stdio.h>\n#include "w.h"\nint main(void) {\n    long long s;\n    unsigned i;\n'
    for ident, a in zip(idents, arrays):
        main += (f"    for (s = 0, i = 0; i < {len(a)}u; i++) s += {ident}[i];\n"
                 f'    printf("%lld\\n", s);\n')
    for name in extremes:
        main += f'    printf("%lld %lld\\n", (long long){name}[0], (long long){name}[1]);\n'
    main += "    return N_ARRAYS == 4 ? 0 : 1;\n}\n"
    (tmp / "main.c").write_text(main)
    (tmp / "mcu.c").write_text('#include "w.h"\nconst int8_t *first(void) { return %s; }\n' % idents[0])
    for cc, flags in _compilers():
        out = tmp / f"prog_{cc}"
        cmd = [cc, *flags, "main.c", "-o", str(out)] if cc == "gcc" else [cc, *flags, "-c", "mcu.c", "-o", f"{out}.o"]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        assert done.returncode == 0, f"{cc}: {done.stderr}"
    run = subprocess.run([str(tmp / "prog_gcc")], capture_output=True, text=True)
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert [int(v) for v in lines[: len(arrays)]] == [sum(a) for a in arrays]
    assert lines[len(arrays):] == [f"{v[0]} {v[1]}" for _c, v in extremes.values()]


# ---- config loader ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)
FIELDS = ["type", "version", "epochs", "batch_size", "lr", "weight_decay", "temperature", "alpha", "curriculum",
          "feature_pairs", "feature_weight", "seed", "grad_clip", "kind", "start", "end", "by", "name",
          "input_shape", "num_classes", "options"]
config_dicts = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=6)


@FAST
@given(config_dicts, st.sampled_from([Config, KDConfig, AlphaSchedule, Curriculum, ModelConfig]))
def test_random_dicts_give_a_config_or_a_config_error(data, cls):
    try:
        out = cls.from_dict(data)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert isinstance(out, Config)
        assert Config.from_dict(out.to_dict()) == out


@FAST
@given(st.binary(max_size=200) | config_dicts.map(lambda d: json.dumps(d).encode()))
def test_any_file_content_gives_a_config_or_a_config_error(tmp_path_factory, raw):
    path = tmp_path_factory.getbasetemp() / "random_config.json"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as err:
        assert str(err).startswith(str(path))


unit = st.floats(0.0, 1.0)
alpha = st.builds(AlphaSchedule, kind=st.sampled_from(["constant", "linear", "cosine", "exponential", "step"]),
                  start=unit, end=unit, rate=st.floats(0.01, 50), steps=st.integers(1, 20))
curriculum = st.builds(Curriculum, by=st.sampled_from(["confidence", "loss"]),
                       pacing=st.sampled_from(["linear", "root", "step"]),
                       start=st.floats(0.01, 1.0), saturate=st.floats(0.01, 1.0))
kd = st.builds(KDConfig, epochs=st.integers(1, 1000), batch_size=st.integers(1, 4096),
               lr=st.floats(1e-8, 10), weight_decay=st.floats(0, 1), temperature=st.floats(0.01, 100),
               alpha=alpha, curriculum=st.none() | curriculum,
               feature_pairs=st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), min_size=1, max_size=3),
               feature_weight=st.floats(0, 10), seed=st.integers(0, 2**31), grad_clip=st.floats(0, 10))


@FAST
@given(kd)
def test_to_dict_from_dict_round_trip_through_json(config):
    d = config.to_dict()
    assert d["type"] == "kd" and d["version"] == KDConfig._version
    assert Config.from_dict(d) == config
    assert Config.from_dict(json.loads(json.dumps(d))) == config
    assert KDConfig.from_dict(json.loads(config.to_json())) == config
