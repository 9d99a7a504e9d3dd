"""debate-arena: tournaments of LLM debates, recorded in DuckDB, ranked, turned into training data.

The public API, for use from Python (the `arena` command is a thin layer over it):

- `load_tournament(topics_path, models_path, flags)`: read and validate the config files.
- `Tournament(config, store, run_id)`: the debate task played by the runner over a round robin;
  `await Tournament.run()` plays every debate.
- `Backend`, `Message`, `GenerateSettings`, `Completion`: the seam to model providers.

Names are imported on first use, so that `arena --help` does not pay for pydantic and friends.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Backend": "arena.backends",
    "Completion": "arena.backends",
    "GenerateSettings": "arena.backends",
    "Message": "arena.backends",
    "TournamentConfig": "arena.config",
    "load_tournament": "arena.config",
    "Tournament": "arena.tournament",
    "BackendError": "arena.core.errors",
    "ConfigError": "arena.core.errors",
    "UserError": "arena.core.errors",
}

if TYPE_CHECKING:
    from arena.backends import Backend, Completion, GenerateSettings, Message
    from arena.config import TournamentConfig, load_tournament
    from arena.core.errors import BackendError, ConfigError, UserError
    from arena.tournament import Tournament


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'arena' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Backend",
    "BackendError",
    "Completion",
    "ConfigError",
    "GenerateSettings",
    "Message",
    "Tournament",
    "TournamentConfig",
    "UserError",
    "__version__",
    "load_tournament",
]
