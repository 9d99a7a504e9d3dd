"""The lock's inputs and the header that records them (used by scripts/lock.sh and the tests).

requirements/lock.txt pins every package that `scripts/install.sh dev` (extras dev, local, train)
and `scripts/install.sh local` install, except torch: install.sh pins the CPU build itself where
there is no NVIDIA GPU and leaves torch to pip where there is one. requirements/torch-cpu.in lists
what that CPU build requires, so that it is locked too. The header records a hash of these inputs,
so that a change to pyproject.toml's dependency lists without re-locking is caught.

    python scripts/lockfile.py extras   # the uv flags for the locked extras
    python scripts/lockfile.py stamp    # write the inputs' hash into the lock's header
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = Path("requirements/lock.txt")
TORCH_CPU = Path("requirements/torch-cpu.in")
LOCKED_EXTRAS = ("dev", "local", "train")
"""The extras `scripts/install.sh dev` installs; `local` is among them."""
HASH_PREFIX = "# inputs-sha256: "
HEADER = (
    "# Exact versions for scripts/install.sh, used as a pip constraints file (-c).\n"
    "# Refresh with `bash scripts/lock.sh`; never edit by hand. torch is left out on purpose.\n"
)


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements file: no comments, no blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def lock_inputs(root: Path = ROOT) -> dict[str, list[str]]:
    """What the lock is resolved from: pyproject's lists (sorted) and torch-cpu.in."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    inputs = {
        "requires-python": [project["requires-python"]],
        "dependencies": sorted(project["dependencies"]),
        "torch-cpu.in": sorted(requirement_lines(root / TORCH_CPU)),
    }
    for extra in LOCKED_EXTRAS:
        inputs[f"extra {extra}"] = sorted(project["optional-dependencies"][extra])
    return inputs


def inputs_hash(root: Path = ROOT) -> str:
    canonical = json.dumps(lock_inputs(root), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_hash(lock_text: str) -> str | None:
    """The hash in a lock's header, or None when it has none."""
    for line in lock_text.splitlines():
        if line.startswith(HASH_PREFIX):
            return line.removeprefix(HASH_PREFIX).strip()
    return None


def stamp(root: Path = ROOT) -> None:
    """Put our header (with the inputs' hash) on top of what uv wrote, replacing an old one."""
    path = root / LOCK
    body = path.read_text()
    if body.startswith(HEADER):
        body = body.removeprefix(HEADER).split("\n", 1)[1]  # and the old hash line
    path.write_text(f"{HEADER}{HASH_PREFIX}{inputs_hash(root)}\n{body}")


def main(argv: list[str]) -> int:
    if argv == ["extras"]:
        print(" ".join(f"--extra {extra}" for extra in LOCKED_EXTRAS))
    elif argv == ["stamp"]:
        stamp()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
