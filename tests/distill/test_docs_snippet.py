"""docs/distillation.md's first Python block runs as written and its students learn."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "distillation.md"


@pytest.mark.slow
def test_distillation_page_snippet_runs(capsys):
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out
    teacher, student = map(float, re.search(r"teacher ([0-9.]+), distilled student ([0-9.]+)", printed).groups())
    # 10 classes: chance is 0.1; a teacher or a student that did not learn fails these
    assert teacher > 0.9 and student > 0.8, printed
