"""requirements/lock.txt agrees with pyproject.toml (else: `bash scripts/lock.sh`).

Every requirement of the dependencies, of the extras scripts/install.sh installs and of
requirements/torch-cpu.in is pinned in the lock to a version within its range; the lock's header
records the hash of those lists as they were when it was written; torch is not in the lock, and the
CPU build install.sh pins fits the extras' range.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
RELOCK = "pyproject.toml and requirements/lock.txt disagree: run `bash scripts/lock.sh`"


def _lockfile() -> ModuleType:
    path = REPO / "scripts" / "lockfile.py"
    spec = importlib.util.spec_from_file_location("scripts_lockfile", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lockfile = _lockfile()
LOCK_TEXT = (REPO / lockfile.LOCK).read_text()


def _pins() -> dict[NormalizedName, Version]:
    pins: dict[NormalizedName, Version] = {}
    for line in LOCK_TEXT.splitlines():
        if not line or line[0] in "# ":
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier  # exactly one `==`, asserted below
        assert spec.operator == "==" and not requirement.marker, f"not an exact pin: {line!r}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = Version(spec.version)
    return pins


PINS = _pins()


def _locked_requirements() -> list[Requirement]:
    inputs = lockfile.lock_inputs(REPO)
    return [
        Requirement(text)
        for key, texts in inputs.items()
        if key != "requires-python"
        for text in texts
    ]


def test_the_header_records_the_current_inputs() -> None:
    assert lockfile.recorded_hash(LOCK_TEXT) == lockfile.inputs_hash(REPO), RELOCK


@pytest.mark.parametrize("requirement", _locked_requirements(), ids=str)
def test_every_requirement_is_pinned_within_its_range(requirement: Requirement) -> None:
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        return  # not for this Python or platform
    name = canonicalize_name(requirement.name)
    if name == "torch":
        return  # left out on purpose: below
    assert name in PINS, f"{name} is not in the lock; {RELOCK}"
    assert requirement.specifier.contains(PINS[name], prereleases=True), (
        f"the lock has {name}=={PINS[name]}, outside {requirement}; {RELOCK}"
    )


def _cpu_torch_pin() -> Version:
    install = (REPO / "scripts" / "install.sh").read_text()
    (version,) = set(re.findall(r'"torch==([^"]+)"', install))
    return Version(version)


def test_torch_is_left_to_install_sh_and_its_cpu_pin_fits_the_extras() -> None:
    # a locked torch would either be PyPI's CUDA build (with the CUDA stack) or force the CPU one
    # onto GPU machines
    cuda = [name for name in PINS if name == "torch" or name.startswith(("nvidia-", "triton"))]
    assert cuda == []
    torch_ranges = [r for r in _locked_requirements() if canonicalize_name(r.name) == "torch"]
    assert torch_ranges
    for requirement in torch_ranges:
        assert requirement.specifier.contains(_cpu_torch_pin()), requirement


def test_torch_cpu_in_lists_what_the_pinned_cpu_build_requires() -> None:
    try:
        installed = Version(importlib.metadata.version("torch"))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("torch is not installed")
    if installed.public != str(_cpu_torch_pin()) or installed.local != "cpu":
        pytest.skip(f"the installed torch {installed} is not the pinned CPU build")
    listed = {
        canonicalize_name(Requirement(text).name)
        for text in lockfile.requirement_lines(REPO / lockfile.TORCH_CPU)
    }
    for text in importlib.metadata.requires("torch") or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            assert canonicalize_name(requirement.name) in listed, f"{text}: add it to torch-cpu.in"
