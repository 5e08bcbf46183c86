"""docs/export.md's table of ops per target says what the code accepts (a doc that drifts misleads users)."""
import re
from pathlib import Path

import pytest

from firmware_export.ops import OpUse, accepted_by

TABLE_ROW = re.compile(r"^\| `([a-z0-9_]+)`: .*? \| (yes|\*\*no\*\*) \| (yes|\*\*no\*\*) \| (yes|\*\*no\*\*) \| "
                       r"(yes|\*\*no\*\*) \| .* \|$")
DOC = Path(__file__).resolve().parents[2] / "docs" / "export.md"


def _rows():
    rows = [TABLE_ROW.match(line) for line in DOC.read_text().splitlines()]
    return [(m.group(1), [m.group(k) == "yes" for k in range(2, 6)]) for m in rows if m]


@pytest.mark.parametrize("op,claims", _rows())
def test_the_table_row_matches_the_targets_declarations(op, claims):
    accepted = accepted_by([OpUse(op, "layer")])
    assert [t in accepted for t in ("onnx", "tflite", "tflm", "c")] == claims


def test_the_table_is_there():
    assert len(_rows()) >= 25
