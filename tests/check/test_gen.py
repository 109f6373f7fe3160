"""The scenario generator draws only what the parser accepts, and covers the contract."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, seed, settings

from foliosim.check import gen
from foliosim.scenario import ast
from foliosim.scenario.parser import parse_text
from foliosim.scenario.printer import to_text

_SETTINGS = settings(
    max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)


def _without_lines(s: ast.Scenario) -> list[tuple]:
    # What a command means, without where it sits: the printer spells labels out.
    out = []
    for c in s.commands:
        fields = {k: getattr(c, k) for k in c.__dataclass_fields__ if k not in ("line", "text")}
        out.append((type(c).__name__, sorted(fields.items())))
    return out


@_SETTINGS
@given(gen.scenarios(mthp=True))
def test_generated_scenarios_print_and_parse_back_to_themselves(scenario):
    text = to_text(scenario)
    parsed = parse_text(text, "gen.scn")
    assert _without_lines(parsed) == _without_lines(scenario)


@_SETTINGS
@given(gen.scenarios(mthp=True))
def test_generator_text_is_what_the_parser_keeps(scenario):
    # Each command's `text` is the printer's line, which the parser keeps, line for line.
    parsed = parse_text(to_text(scenario), "gen.scn")
    assert parsed.commands == scenario.commands


@_SETTINGS
@given(gen.scenarios(mthp=False))
def test_scenarios_stay_small_and_order_0_without_mthp(scenario):
    cmds = scenario.commands
    assert 1 <= len(cmds) <= gen.MAX_COMMANDS
    mmaps = [c for c in cmds if isinstance(c, ast.Mmap)]
    assert len(mmaps) <= gen.MAX_MMAPS
    assert all(1 <= m.pages <= gen.MAX_PAGES and m.offset + m.pages <= 512 for m in mmaps)
    assert sum(isinstance(c, ast.Fork) for c in cmds) <= gen.MAX_CHILDREN
    assert not any(isinstance(c, (ast.Mthp, ast.Thp)) for c in cmds)
    assert not any(isinstance(c, ast.Madvise) and c.advice == "hugepage" for c in cmds)
    assert not any(isinstance(c, ast.Exit) and c.proc == "p0" for c in cmds)


def _draw_many(mthp: bool, n: int, memcg: bool = False) -> list[ast.Scenario]:
    drawn: list[ast.Scenario] = []

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @seed(12345)
    @given(gen.scenarios(mthp=mthp, memcg=memcg))
    def collect(s):
        drawn.append(s)

    collect()
    return drawn


def test_every_command_and_advice_of_the_contract_is_drawn():
    drawn = _draw_many(mthp=True, n=800)
    kinds = Counter(gen.command_kind(c) for s in drawn for c in s.commands)
    advices = Counter(c.advice for s in drawn for c in s.commands if isinstance(c, ast.Madvise))
    wanted = set(gen.COMMAND_KINDS) - set(gen.MEMCG_KINDS)
    assert wanted <= set(kinds), wanted - set(kinds)
    assert not set(gen.MEMCG_KINDS) & set(kinds)
    assert set(ast.ADVICES) <= set(advices), set(ast.ADVICES) - set(advices)
    assert any(isinstance(c, ast.Swap) and c.pages is None for s in drawn for c in s.commands)
    mmaps = [c for s in drawn for c in s.commands if isinstance(c, ast.Mmap)]
    assert any(m.droppable for m in mmaps) and any(m.offset for m in mmaps)
    runs = [c.runs for s in drawn for c in s.commands if isinstance(c, ast.Write)]
    assert any(len(r) > 1 for r in runs)  # several runs
    assert any(len(r) == 1 and r[0][0] == r[0][1] for r in runs)  # one page
    # Forks by a child, children that act, and an exit of a child.
    assert any(isinstance(c, ast.Fork) and c.child == "p2" for s in drawn for c in s.commands)
    assert any(c.proc != "p0" for s in drawn for c in s.commands if not isinstance(c, ast.Fork))


def test_without_mthp_no_thp_setting_is_ever_drawn():
    drawn = _draw_many(mthp=False, n=200)
    kinds = Counter(gen.command_kind(c) for s in drawn for c in s.commands)
    assert kinds["mthp"] == kinds["thp"] == 0
    assert kinds["write"] > 0 and kinds["madvise"] > 0


def test_with_memcg_the_memcg_commands_are_drawn_and_never_beside_a_fork():
    drawn = _draw_many(mthp=False, n=300, memcg=True)
    kinds = Counter(gen.command_kind(c) for s in drawn for c in s.commands)
    assert set(gen.MEMCG_KINDS) <= set(kinds)
    assert kinds["fork"] > 0
    for s in drawn:
        has_memcg = any(gen.command_kind(c) in gen.MEMCG_KINDS for c in s.commands)
        assert not (has_memcg and any(isinstance(c, ast.Fork) for c in s.commands))
    limits = {c.pages for s in drawn for c in s.commands if isinstance(c, ast.MemcgLimit)}
    assert limits <= set(gen.MEMCG_LIMITS)
