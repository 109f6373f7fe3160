"""Loading variant files: what is accepted, what is refused with FILE:LINE, and that
applied() installs and restores the replacements wherever the model binds them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from foliosim.model import rmap
from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_file, parse_text
from foliosim.variants import (
    BUILTIN,
    VariantError,
    builtin_path,
    load_variant,
    model_functions,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

KEEP_ALWAYS = """\
'''keep-always: lazyfree_range() keeps every lazyfree folio.'''
from foliosim.variants import replace
from foliosim.model.rmap import set_ptes

BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    set_ptes(t, i, pteval, pfn, nr_pages)
    return False
"""

# A clean MADV_FREE page meets reclaim: Linux discards it.
CLEAN_DISCARD = """\
swap off
mmap A 4K
write A 0 as old
madvise A 0 free
madvise A 0 pageout
expect A 0 none
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _failed_lines(obs):
    return [e["line"] for e in obs["events"] if e.get("op") == "expect" and not e["ok"]]


def _refusal(tmp_path, text):
    path = _write(tmp_path, "v.py", text)
    with pytest.raises(VariantError) as e:
        load_variant(path)
    return path, str(e.value)


def test_every_builtin_variant_loads_on_its_base_profile():
    for name in BUILTIN:
        v = load_variant(name)
        assert builtin_path(name).is_file()
        assert v.base == "linux-6.18" and v.replacements, name
        assert v.doc.startswith(name + ":"), name


def test_a_profile_name_is_a_variant_without_replacements():
    v = load_variant("linux-6.18")
    assert v.base == "linux-6.18" and v.replacements == {}


def test_the_old_revert_profile_name_means_pre_6_15_swapbacked():
    v = load_variant("linux-6.18-revert-faeb2831b517")
    assert v.replacements.keys() == load_variant("pre-6.15-swapbacked").replacements.keys()


def test_a_replaced_function_is_the_one_the_model_calls(tmp_path):
    path = _write(tmp_path, "keep.py", KEEP_ALWAYS)
    scenario = parse_text(CLEAN_DISCARD, "clean.scn")
    assert _failed_lines(ModelBackend().run(scenario)) == []
    with load_variant(path).applied():
        assert _failed_lines(ModelBackend().run(scenario)) == [6]
    # Restored on exit: the base profile discards again.
    assert _failed_lines(ModelBackend().run(scenario)) == []


def test_applied_rebinds_every_binding_and_restores_them(tmp_path, monkeypatch):
    import types

    original = rmap.try_to_unmap
    # Two importers of the function, one per import style.
    by_name = types.ModuleType("foliosim.probe_by_name")
    by_name.try_to_unmap = original  # from foliosim.model.rmap import try_to_unmap
    by_module = types.ModuleType("foliosim.probe_by_module")
    by_module.rmap = rmap  # from foliosim.model import rmap; rmap.try_to_unmap()
    by_module.table = {"unmap": original}  # a module's table of functions
    monkeypatch.setitem(sys.modules, by_name.__name__, by_name)
    monkeypatch.setitem(sys.modules, by_module.__name__, by_module)
    path = _write(
        tmp_path,
        "ttu.py",
        """\
        from foliosim.variants import replace
        BASE = "linux-6.18"

        @replace
        def try_to_unmap(m, folio, flags):
            return None
        """,
    )
    v = load_variant(path)
    new = v.replacements["try_to_unmap"]
    with v.applied():
        assert rmap.try_to_unmap is new
        assert by_name.try_to_unmap is new
        assert by_module.rmap.try_to_unmap is new
        assert by_module.table["unmap"] is new
    assert rmap.try_to_unmap is original and by_name.try_to_unmap is original
    assert by_module.table["unmap"] is original


def test_applied_restores_the_originals_when_the_run_raises(tmp_path):
    original = rmap.lazyfree_range
    v = load_variant(_write(tmp_path, "keep.py", KEEP_ALWAYS))
    with pytest.raises(RuntimeError), v.applied():
        raise RuntimeError("a model fault")
    assert rmap.lazyfree_range is original


def test_a_replacement_may_wrap_the_function_it_replaces(tmp_path):
    # Names in a variant file keep their import-time meaning: no recursion.
    path = _write(
        tmp_path,
        "wrap.py",
        """\
        from foliosim.model.rmap import lazyfree_range as base_lazyfree_range
        from foliosim.variants import replace
        BASE = "linux-6.18"
        calls = []

        @replace
        def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
            calls.append(folio)
            return base_lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages)
        """,
    )
    v = load_variant(path)
    with v.applied():
        obs = ModelBackend().run(parse_text(CLEAN_DISCARD, "clean.scn"))
    assert _failed_lines(obs) == []
    mod = sys.modules[v.replacements["lazyfree_range"].__module__]
    assert len(mod.calls) == 1


def test_a_file_that_fails_to_import_is_refused_at_its_line(tmp_path):
    path, msg = _refusal(
        tmp_path,
        """\
        from foliosim.variants import replace
        BASE = "linux-6.18"
        x = 1 // 0
        """,
    )
    reason = "fails to import: ZeroDivisionError: integer division or modulo by zero"
    assert msg == f"{path}:3: {reason}"


def test_a_syntax_error_is_refused_at_its_line(tmp_path):
    path, msg = _refusal(tmp_path, 'BASE = "linux-6.18"\n\ndef f(:\n    pass\n')
    assert msg.startswith(f"{path}:3: syntax error")


def test_an_import_of_a_missing_model_name_is_refused_at_its_line(tmp_path):
    path, msg = _refusal(
        tmp_path, 'BASE = "linux-6.18"\nfrom foliosim.model.rmap import no_such_function\n'
    )
    assert msg.startswith(f"{path}:2: fails to import: ImportError: cannot import name")


def test_replacing_a_function_the_model_does_not_have_is_refused(tmp_path):
    path, msg = _refusal(
        tmp_path,
        """\
        from foliosim.variants import replace
        BASE = "linux-6.18"


        @replace
        def commit_ttu_lazyfree_folio(m, vma, folio):
            return 0
        """,
    )
    assert msg == (
        f"{path}:5: @replace commit_ttu_lazyfree_folio(): the model has no function "
        "commit_ttu_lazyfree_folio()"
    )


def test_a_replacement_with_another_signature_is_refused(tmp_path):
    path, msg = _refusal(
        tmp_path,
        """\
        from foliosim.variants import replace
        BASE = "linux-6.18"

        @replace
        def folio_unmap_pte_batch(m, folio, vma, vpn, t):
            return 1
        """,
    )
    assert msg.startswith(f"{path}:4: @replace folio_unmap_pte_batch(m, folio, vma, vpn, t):")
    assert "the model's is folio_unmap_pte_batch(m: 'Machine'" in msg


def test_a_base_that_is_not_a_profile_is_refused_at_its_line(tmp_path):
    path, msg = _refusal(tmp_path, '"""doc."""\n\nBASE = "linux-2.4"\n')
    assert msg.startswith(f"{path}:3: BASE = 'linux-2.4': not a profile (known: linux-6.18")


def test_a_file_without_base_or_replacements_is_refused(tmp_path):
    path, msg = _refusal(tmp_path, "x = 1\n")
    assert msg.startswith(f"{path}:1: no BASE")
    path, msg = _refusal(tmp_path, 'BASE = "linux-6.18"\n')
    assert msg == f"{path}:1: replaces nothing (mark the replacing functions @replace)"


def test_an_unknown_name_is_refused_listing_what_would_work():
    with pytest.raises(VariantError) as e:
        load_variant("seed-v9")
    assert str(e.value).startswith(
        "seed-v9: unknown variant (known: linux-6.18, linux-6.18.44-fc, linux-6.12, linux-6.1, seed-v1"
    )


def test_model_functions_cover_the_kernel_named_unmap_path():
    names = model_functions()
    for name in (
        "lazyfree_range",
        "folio_unmap_pte_batch",
        "try_to_unmap_one",
        "folio_pte_batch",
        "get_and_clear_ptes",
        "set_ptes",
    ):
        assert name in names, name


def test_library_scenario_holds_under_the_variant_that_changes_nothing_it_tests():
    # reviewed only changes the form of lazyfree_range: the library's lazyfree
    # scenario still holds line by line.
    scenario = parse_file(str(SCENARIOS / "mthp-lazyfree-redirty.scn"))
    with load_variant("reviewed").applied():
        assert _failed_lines(ModelBackend(check=True).run(scenario)) == []
