"""Backends: where model calls go. One module per provider, one spec class per config entry.

To add a backend: write its spec (a `BackendSpec` subclass with a `backend: Literal[...]` tag) and
its `Backend` subclass in a module here, add the spec to the unions below and a branch to
`create_backend`. Heavy client libraries are imported inside the backend, never at module level.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from arena.backends.base import (
    Backend,
    BackendSpec,
    Completion,
    GenerateSettings,
    GenerationParams,
    Message,
)
from arena.backends.litellm_backend import LiteLLMBackend, LiteLLMSpec
from arena.backends.local import LocalBackend, LocalSpec
from arena.backends.openai_http import VllmServerBackend, VllmServerSpec
from arena.backends.scripted import ScriptedBackend, ScriptedSpec
from arena.backends.sim import SimBackend, SimJudgeBackend, SimJudgeSpec, SimSpec
from arena.backends.vllm_inprocess import VllmBackend, VllmSpec

ContestantSpec = Annotated[
    SimSpec | ScriptedSpec | LiteLLMSpec | VllmServerSpec | VllmSpec | LocalSpec,
    Field(discriminator="backend"),
]
"""A `models:` entry."""
JudgeSpec = Annotated[
    SimJudgeSpec | ScriptedSpec | LiteLLMSpec | VllmServerSpec | VllmSpec | LocalSpec,
    Field(discriminator="backend"),
]
"""A `judges:` entry."""

BACKEND_NAMES = ("sim", "scripted", "litellm", "vllm-server", "vllm", "local")


def create_backend(spec: BackendSpec) -> Backend:
    """The backend instance that serves one config entry."""
    if isinstance(spec, SimSpec):
        return SimBackend(spec)
    if isinstance(spec, SimJudgeSpec):
        return SimJudgeBackend(spec)
    if isinstance(spec, ScriptedSpec):
        return ScriptedBackend(spec)
    if isinstance(spec, LiteLLMSpec):
        return LiteLLMBackend(spec)
    if isinstance(spec, VllmServerSpec):
        return VllmServerBackend(spec)
    if isinstance(spec, LocalSpec):
        return LocalBackend(spec)
    if isinstance(spec, VllmSpec):
        return VllmBackend(spec)
    raise TypeError(f"no backend for {type(spec).__name__}")


__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendSpec",
    "Completion",
    "ContestantSpec",
    "GenerateSettings",
    "GenerationParams",
    "JudgeSpec",
    "Message",
    "create_backend",
]
