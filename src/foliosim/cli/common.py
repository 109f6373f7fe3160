"""What several subcommands share: reading scenarios, making backends, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from foliosim import variants
from foliosim.kernel.backend import KernelBackend
from foliosim.model.backend import ModelBackend
from foliosim.model.profile import NoProfileError, profile_for_kernel
from foliosim.scenario.ast import Scenario
from foliosim.scenario.parser import parse_text
from foliosim.variants import VariantBackend

DEFAULT_PROFILE = "linux-6.18"


class UsageError(Exception):
    """A refused command line or unreadable input: printed as one line, exit 2."""


def read_text(path: str) -> str:
    """The text of `path`, or a UsageError saying in one line why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not a text file (byte {e.start} is not UTF-8)") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}") from None


def read_scenario(path: str) -> Scenario:
    """Parse the scenario file `path`; raises ScenarioError or UsageError."""
    return parse_text(read_text(path), path)


def model_backend(
    profile: str = DEFAULT_PROFILE, check: bool = False, variant: str | None = None
) -> ModelBackend | VariantBackend:
    """The model backend for `profile`, or for a variant (built-in name or FILE.py).

    `profile` may itself name a variant (`equiv` takes either on each side);
    an unknown profile or a refused variant file is refused as usage.
    """
    if variant is not None:
        if profile != DEFAULT_PROFILE:
            raise UsageError(
                f"foliosim: --profile {profile} --variant {variant}: give one "
                "(a variant names its base profile in BASE)"
            )
        profile = variant
    option = "--variant" if variant is not None else "--profile"
    if profile in variants.BUILTIN or profile in variants.ALIASES or profile.endswith(".py"):
        try:
            return variants.VariantBackend(variants.load_variant(profile), check)
        except variants.VariantError as e:
            raise UsageError(str(e)) from None
    try:
        return ModelBackend(profile=profile, check=check)
    except (ValueError, KeyError) as e:
        reason = e.args[0] if e.args else str(e)
        if variant is not None:
            reason += f"; nor a variant (built in: {', '.join(variants.BUILTIN)}; or FILE.py)"
        raise UsageError(f"foliosim: {option} {profile}: {reason}") from None


def choose_profile(
    requested: str | None, with_kernel: bool, who: str, release: str | None = None
) -> tuple[str, str | None]:
    """The model profile to run, and the line saying why when it was not asked for.

    `--profile` wins.  Compared with the live kernel, the model takes the profile
    describing the running build (release string and sysfs files); none, or
    several, is refused in one line.  Otherwise DEFAULT_PROFILE.  `release` is a
    guest kernel's (foliosim.guest): its profile is chosen by the release alone.
    """
    if requested is not None:
        return requested, None
    if not with_kernel:
        return DEFAULT_PROFILE, None
    try:
        if release is not None:
            # A guest's sysfs is not ours to look at: the release names its build.
            profile = profile_for_kernel(release, lambda path: False)
        else:
            profile = profile_for_kernel()
    except NoProfileError as e:
        raise UsageError(f"{who}: {e}") from None
    where = "guest kernel" if release is not None else "kernel"
    release = release or os.uname().release
    return profile.name, f"{who}: model profile {profile.name}, the build of {where} {release}"


def kernel_backend() -> KernelBackend:
    """The live-kernel backend, refused up front (one line) if it cannot run here."""
    reason = KernelBackend.unavailable_reason()
    if reason:
        raise UsageError(f"foliosim: the kernel backend cannot run here: {reason}")
    return KernelBackend()
