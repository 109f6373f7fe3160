"""`foliosim run` on random and mutated text: one line and exit 2, or a clean run; never a traceback."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foliosim.cli.main import main

VALID = (
    "swap 64M\nmmap A 8\nwrite A all\nmadvise A all free\nwrite A 0-1\n"
    "fork p1\np1: madvise A all pageout\nread A all\nexpect A 0-1 data w5\n"
)
ERROR_LINE = re.compile(r"^\S+:\d+:\d+: \S.*\n$")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = list(VALID)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = draw(st.sampled_from(list("0123456789-,:# \nABp_.zx\t") + ["\x00", "é"]))
        if op == "insert" or not text:
            text.insert(i, ch)
        elif op == "delete":
            del text[min(i, len(text) - 1)]
        else:
            text[min(i, len(text) - 1)] = ch
    return "".join(text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(mutated(), st.text(max_size=80)))
def test_any_text_gives_a_report_or_one_error_line(text, tmp_path_factory, capsys):
    path = tmp_path_factory.mktemp("bad") / "x.scn"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main(["run", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 2:
        assert ERROR_LINE.match(err), err
        assert out == ""
    else:
        assert code in (0, 1) and err == ""
