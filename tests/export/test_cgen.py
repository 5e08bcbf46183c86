import shutil
import subprocess

import pytest

from firmware_export.cgen import banner, comment

# Each would end a block comment early if passed through: '*/', a backslash-newline splice that
# turns '*\<newline>/' into '*/', and the trigraph '??/' (a backslash under -trigraphs).
CLOSERS = ["*/ int evil; /*", "*\\\n/ int evil; /*", "*??/\n/ int evil; /*", "**\\\r\n/ int evil;"]


@pytest.mark.parametrize("text", CLOSERS)
def test_comment_text_has_no_closer_splice_or_trigraph(text):
    body = comment(text)[3:-4]
    assert "*/" not in body and "\\" not in body and "\n" not in body and "??" not in body


@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc not installed")
def test_hostile_comments_compile_as_comments(tmp_path):
    src = banner("cgen test", {"names": CLOSERS}) + "".join(comment(t) for t in CLOSERS)
    src += "int ok(void) { return 1; }\n"
    (tmp_path / "c.c").write_text(src)
    done = subprocess.run(["gcc", "-std=c99", "-trigraphs", "-Wall", "-Wextra", "-Werror", "-pedantic",
                           "-c", "c.c", "-o", "c.o"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
