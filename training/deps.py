"""Whether the `train` extra is installed, asked without importing it.

`arena train` calls `require_train_extra()` before it imports anything heavy, so that a missing
package is one line naming the extra (`pip install 'debate-arena[train]'`) instead of a traceback
from deep inside an import. This module imports nothing but the standard library, so that the
check itself is cheap and cannot fail the same way.
"""

from __future__ import annotations

import importlib.util

from arena.core.errors import UserError

TRAIN_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
"""The modules of the `train` extra (pyproject.toml), in the order they are reported."""
INSTALL_HINT = "pip install 'debate-arena[train]'"


def missing_train_modules() -> list[str]:
    """The modules of the `train` extra that cannot be imported here (none are imported)."""
    return [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]


def require_train_extra() -> None:
    """Raise a one-line `UserError` naming the missing modules and the extra to install."""
    missing = missing_train_modules()
    if missing:
        raise UserError(
            f"arena train needs the train extra ({', '.join(missing)} not installed): "
            f"{INSTALL_HINT}"
        )
