"""`foliosim plot` (issue 13): a point after every line, the memcg's fields, a PNG."""

from __future__ import annotations

from foliosim.cli import plot
from foliosim.cli.main import main
from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_text

TEXT = (
    "swap off\nmmap heap 256\nwrite heap all\nmadvise heap all free\n"
    "expect heap smaps Rss 1024\nmemcg limit 1536K\nmmap svc 256\nwrite svc all\n"
)


def test_each_line_but_expects_gets_a_point_with_rss_lazyfree_and_the_lru_lists():
    scenario = parse_text(TEXT, "t.scn")
    obs = ModelBackend().run(plot.probed(scenario))
    pts = plot.points(obs, scenario)
    assert [p["line"] for p in pts] == [1, 2, 3, 4, 6, 7, 8]
    assert pts[-1]["text"] == "write svc all"
    # The write over the limit took lazyfree pages from the heap: its Rss dropped.
    assert pts[-2]["maps"]["p0 heap"] == 1024
    assert pts[-1]["maps"]["p0 heap"] < 1024 and pts[-1]["maps"]["p0 svc"] == 1024
    assert pts[-1]["inactive_file"] == pts[-1]["LazyFree"] < pts[-2]["LazyFree"]
    assert pts[-1]["usage"] is None  # the model's counter has no kernel memory


def test_plot_writes_a_png(tmp_path):
    scn = tmp_path / "t.scn"
    scn.write_text(TEXT)
    out = tmp_path / "t.png"
    assert main(["plot", str(scn), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
