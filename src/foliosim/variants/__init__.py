"""Variants of the model: small Python files that replace named model functions.

A variant file says which profile it starts from (`BASE = "linux-6.18"`) and
replaces kernel-named functions of foliosim.model with functions of the same
signature, marked `@replace`.  `load_variant()` imports and checks such a file
(or a built-in one by name, or a plain profile name: no replacements);
`with variant.applied(): ...` runs the model with the replacements installed.
docs/variants.md shows how to write one.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from foliosim.model.backend import ModelBackend
from foliosim.model.profile import PROFILES

F = TypeVar("F", bound=Callable[..., Any])

# The built-in variants, by CLI name; each is the file of that name in this
# package with dashes and dots written as underscores.
BUILTIN = (
    "seed-v1",
    "reviewed",
    "seed-v4",
    "per-pte",
    "batched-swap",
    "bug-pte-restore",
    "bug-oob-batch",
    "bug-stale-nr-pages",
    "pre-6.15-swapbacked",
    "slow-paths",
)

# Old names that now mean a built-in variant.
ALIASES = {"linux-6.18-revert-faeb2831b517": "pre-6.15-swapbacked"}

_REPLACE_MARK = "__foliosim_replace__"


class VariantError(Exception):
    """A variant file or name that cannot be used: `FILE:LINE: reason`."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


def replace(func: F) -> F:
    """Mark `func` as the replacement of the model function of the same name."""
    setattr(func, _REPLACE_MARK, True)
    return func


@dataclass
class Variant:
    """A base profile plus the model functions a variant file replaces."""

    name: str
    base: str
    replacements: dict[str, Callable[..., Any]] = field(default_factory=dict)
    path: str | None = None  # the file it came from; None for a plain profile
    doc: str = ""  # the first line of the file's docstring

    @contextmanager
    def applied(self) -> Iterator[Variant]:
        """Install the replacements in every module that binds the originals; restore on exit."""
        from foliosim.model import cost

        undo: list[tuple[dict[str, Any], str, Any]] = []
        # The model's shortcuts stand for loops of the functions replaced here.
        cost.VARIANTS_APPLIED += bool(self.replacements)
        try:
            for name, new in self.replacements.items():
                current = model_functions()[name][1]
                for namespace in _namespaces():
                    for key, value in list(namespace.items()):
                        if value is current:
                            namespace[key] = new
                            undo.append((namespace, key, current))
                        elif type(value) is dict:
                            # A module's table of functions (lru.MOVE_FN).
                            for k, v in list(value.items()):
                                if v is current:
                                    value[k] = new
                                    undo.append((value, k, current))
            yield self
        finally:
            for namespace, key, old in reversed(undo):
                namespace[key] = old
            cost.VARIANTS_APPLIED -= bool(self.replacements)


def _model_modules() -> list[ModuleType]:
    from foliosim import model

    mods = [model]
    for info in pkgutil.walk_packages(model.__path__, "foliosim.model."):
        mods.append(importlib.import_module(info.name))
    return mods


_MODEL_FUNCTIONS: dict[str, tuple[ModuleType, Callable[..., Any]]] | None = None
# Names defined in more than one model module: name -> the modules.
_AMBIGUOUS: dict[str, list[str]] = {}


def model_functions() -> dict[str, tuple[ModuleType, Callable[..., Any]]]:
    """Every function defined in foliosim.model: name -> (its module, the function it binds now)."""
    global _MODEL_FUNCTIONS
    if _MODEL_FUNCTIONS is None:
        found: dict[str, tuple[ModuleType, Callable[..., Any]]] = {}
        for mod in _model_modules():
            for key, value in vars(mod).items():
                if inspect.isfunction(value) and value.__module__ == mod.__name__:
                    if key in found:
                        _AMBIGUOUS.setdefault(key, [found[key][0].__name__]).append(mod.__name__)
                    found[key] = (mod, value)
        _MODEL_FUNCTIONS = found
    # The current binding in the defining module: a variant being applied
    # replaces whatever is installed there now (so applications nest).
    return {k: (mod, getattr(mod, k)) for k, (mod, _) in _MODEL_FUNCTIONS.items()}


def _namespaces() -> Iterator[dict[str, Any]]:
    # Every foliosim module may bind a replaced function, whatever its import
    # style (`from foliosim.model.rmap import f` or `rmap.f`).  Variant files
    # are left alone: in a variant file a name means what it was bound to at
    # import, so a replacement can wrap the function it replaces.
    for name, mod in list(sys.modules.items()):
        if mod is not None and name.startswith("foliosim."):
            yield vars(mod)


_PREFIX = "foliosim_variant_"


def builtin_path(name: str) -> Path:
    """The file of a built-in variant."""
    return Path(__file__).with_name(re.sub(r"[-.]", "_", name) + ".py")


def load_variant(name_or_path: str) -> Variant:
    """The variant a name (built-in, profile) or a FILE.py means; VariantError if unusable."""
    name = ALIASES.get(name_or_path, name_or_path)
    if name in PROFILES:
        return Variant(name=name, base=name)
    if name in BUILTIN:
        v = _load_file(builtin_path(name), name)
        if name_or_path != name:
            v.name = name_or_path
        return v
    path = Path(name_or_path)
    if path.suffix != ".py":
        known = ", ".join([*PROFILES, *BUILTIN])
        raise VariantError(
            name_or_path, None, f"unknown variant (known: {known}; or a variant file FILE.py)"
        )
    if not path.is_file():
        raise VariantError(name_or_path, None, "no such variant file")
    return _load_file(path, name_or_path)


def _load_file(path: Path, name: str) -> Variant:
    shown = str(path) if name in BUILTIN else name  # as the user wrote it
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VariantError(shown, None, f"cannot read: {e}") from None
    module_name = _PREFIX + re.sub(r"\W", "_", str(path.resolve()))
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = mod
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as e:
        del sys.modules[module_name]
        raise VariantError(shown, e.lineno or 1, f"syntax error: {e.msg}") from None
    except BaseException as e:  # any failure to import is a refusal
        del sys.modules[module_name]
        if isinstance(e, KeyboardInterrupt):
            raise
        line = _line_in(e, path)
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise VariantError(shown, line, f"fails to import: {reason}") from None
    base = getattr(mod, "BASE", None)
    if base is None:
        raise VariantError(shown, 1, 'no BASE = "linux-6.18" (the profile the variant starts from)')
    if not isinstance(base, str) or base not in PROFILES:
        raise VariantError(
            shown,
            _assignment_line(source, "BASE"),
            f"BASE = {base!r}: not a profile (known: {', '.join(PROFILES)})",
        )
    known = model_functions()
    replacements: dict[str, Callable[..., Any]] = {}
    for value in vars(mod).values():
        if not (callable(value) and getattr(value, _REPLACE_MARK, False)):
            continue
        if getattr(value, "__module__", None) != module_name:
            continue  # a replacement imported from another variant file
        line = value.__code__.co_firstlineno
        fname = value.__name__
        if fname not in known:
            raise VariantError(
                shown, line, f"@replace {fname}(): the model has no function {fname}()"
            )
        if fname in _AMBIGUOUS:
            where = " and ".join(_AMBIGUOUS[fname])
            raise VariantError(
                shown, line, f"@replace {fname}(): ambiguous, the model defines it in {where}"
            )
        original = known[fname][1]
        want, got = _shape(original), _shape(value)
        if want != got:
            raise VariantError(
                shown,
                line,
                f"@replace {fname}{inspect.signature(value)}: the model's is "
                f"{fname}{inspect.signature(original)} (same parameters needed)",
            )
        replacements[fname] = value
    if not replacements:
        raise VariantError(shown, 1, "replaces nothing (mark the replacing functions @replace)")
    doc = (mod.__doc__ or "").strip().splitlines()
    first = doc[0] if doc else ""
    return Variant(name=name, base=base, replacements=replacements, path=str(path), doc=first)


def _shape(func: Callable[..., Any]) -> list[tuple[str, Any, bool]]:
    params = inspect.signature(func).parameters.values()
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in params]


def _line_in(e: BaseException, path: Path) -> int:
    # The innermost frame in the variant file: where its import failed.
    line = 1
    target = str(path.resolve())
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename and str(Path(frame.filename).resolve()) == target:
            line = frame.lineno or line
    return line


def _assignment_line(source: str, name: str) -> int:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return 1
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.lineno
    return 1


class VariantBackend(ModelBackend):
    """The model backend on a variant's base profile, each run with its replacements applied."""

    def __init__(self, variant: Variant, check: bool = False) -> None:
        super().__init__(profile=variant.base, check=check)
        self.variant = variant

    def run(self, scenario: Any, trace: Any = None, final: bool = True) -> dict[str, Any]:
        """ModelBackend.run() with the variant's replacements installed."""
        with self.variant.applied():
            obs: dict[str, Any] = super().run(scenario, trace=trace, final=final)
        if self.variant.replacements:
            obs["backend"]["variant"] = self.variant.name
        return obs


def variant_backend(name_or_path: str, check: bool = False) -> Any:
    """A model backend for a profile (plain) or a variant (wrapped); VariantError if unusable."""
    variant = load_variant(name_or_path)
    if not variant.replacements:
        return ModelBackend(profile=variant.base, check=check)
    return VariantBackend(variant, check)


def variant_names() -> tuple[str, ...]:
    """Every name `load_variant()` accepts without a file: profiles and built-ins."""
    return (*PROFILES, *BUILTIN)
