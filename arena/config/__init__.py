"""Config files and tournament settings, validated before anything runs.

- `schema`: the pydantic models (topics, roles wrapping provider specs, tournament settings).
- `errors`: every mistake as one line, `file:line: field: problem`, for any input file or flag.
- `load`: each file parsed once; `load_tournament` reads and cross-checks everything.
- `inputs`: an input file read without trusting it (a regular file, a size cap, bounded YAML),
  and the limits a run needs `--yes` or `--max-input-mb` to pass (`InputLimits`).

The names below are imported on first use, so that importing `arena.config.errors` (as the
`arena pairs` command does) does not load every backend module the schema needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ContestantRole": "arena.config.schema",
    "JudgeRole": "arena.config.schema",
    "ModelsFile": "arena.config.schema",
    "RetrySettings": "arena.config.schema",
    "Topic": "arena.config.schema",
    "TopicsFile": "arena.config.schema",
    "TournamentConfig": "arena.config.schema",
    "TournamentSettings": "arena.config.schema",
    "InputLimits": "arena.config.inputs",
    "check_environment": "arena.config.load",
    "check_plan": "arena.config.load",
    "load_models": "arena.config.load",
    "load_topics": "arena.config.load",
    "load_tournament": "arena.config.load",
    "parse_yaml": "arena.config.load",
    "resolve_settings": "arena.config.load",
    "ConfigError": "arena.core.errors",
}

if TYPE_CHECKING:
    from arena.config.inputs import InputLimits
    from arena.config.load import (
        check_environment,
        check_plan,
        load_models,
        load_topics,
        load_tournament,
        parse_yaml,
        resolve_settings,
    )
    from arena.config.schema import (
        ContestantRole,
        JudgeRole,
        ModelsFile,
        RetrySettings,
        Topic,
        TopicsFile,
        TournamentConfig,
        TournamentSettings,
    )
    from arena.core.errors import ConfigError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'arena.config' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConfigError",
    "ContestantRole",
    "InputLimits",
    "JudgeRole",
    "ModelsFile",
    "RetrySettings",
    "Topic",
    "TopicsFile",
    "TournamentConfig",
    "TournamentSettings",
    "check_environment",
    "check_plan",
    "load_models",
    "load_topics",
    "load_tournament",
    "parse_yaml",
    "resolve_settings",
]
