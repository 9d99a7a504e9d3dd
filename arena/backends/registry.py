"""The backend registry: a backend's name (`backend:` in models.yaml) to its provider spec class
and its `Backend` class, for each role.

Every backend serves contestants and judges with the same spec and class, except `sim`, which
is a simulated debater under `models:` and a simulated judge under `judges:` (its judge reads
transcripts and has a noise, a side bias, a letter bias). So there are two tables, one per role,
each a plain dict from name to `Registered(spec, backend)`, filled by `register` below.

    >>> registered("judge")["sim"].spec.__name__, registered("contestant")["sim"].spec.__name__
    ('SimJudgeSpec', 'SimSpec')
    >>> backend_names()
    ('sim', 'scripted', 'litellm', 'vllm-server', 'vllm', 'local')

To add a backend: write its module here (a `BackendSpec` subclass with a `backend: Literal[...]`
tag, and a `Backend` subclass whose constructor takes that spec) and add one `register` line at
the bottom of this file. Heavy client libraries are imported inside the backend, never at module
level.

Simplified on purpose: the tables are filled when this module is imported, and the config schema
builds its discriminated unions from them when it is imported; a backend registered later is not
seen by the config loader. There are no plugins (entry points) yet.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from types import MappingProxyType
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import Field

from arena.backends.base import Backend, BackendSpec
from arena.backends.litellm_backend import LiteLLMBackend, LiteLLMSpec
from arena.backends.local import LocalBackend, LocalSpec
from arena.backends.openai_http import VllmServerBackend, VllmServerSpec
from arena.backends.scripted import ScriptedBackend, ScriptedSpec
from arena.backends.sim import SimBackend, SimJudgeBackend, SimJudgeSpec, SimSpec
from arena.backends.vllm_inprocess import VllmBackend, VllmSpec

RoleKind = Literal["contestant", "judge"]
ROLES: tuple[RoleKind, ...] = ("contestant", "judge")


@dataclass(frozen=True)
class Registered:
    """One backend for one role: the spec class its entries validate to, and the class that
    serves them (constructed with the spec)."""

    spec: type[BackendSpec]
    backend: type[Backend]


_TABLES: dict[RoleKind, dict[str, Registered]] = {role: {} for role in ROLES}
_BACKEND_OF: dict[type[BackendSpec], type[Backend]] = {}


def register(
    name: str,
    spec: type[BackendSpec],
    backend: type[Backend],
    *,
    roles: tuple[RoleKind, ...] = ROLES,
) -> None:
    """Make `backend: <name>` mean `spec` and `backend` for the given roles."""
    tags = get_args(spec.model_fields["backend"].annotation)
    if tags != (name,):
        raise ValueError(f"{spec.__name__}.backend must be Literal[{name!r}], not {tags}")
    for role in roles:
        _TABLES[role][name] = Registered(spec, backend)
    _BACKEND_OF[spec] = backend


def registered(role: RoleKind) -> Mapping[str, Registered]:
    """The backends for one role, by name, in the order they were registered (read-only)."""
    return MappingProxyType(_TABLES[role])


def backend_names() -> tuple[str, ...]:
    """Every registered backend name, in registration order."""
    return tuple(dict.fromkeys(name for role in ROLES for name in _TABLES[role]))


def provider_union(role: RoleKind) -> Any:
    """The pydantic type of a role's provider spec: the role's spec classes, discriminated by
    `backend` (so that an error names the field of the right backend)."""
    classes = [entry.spec for entry in _TABLES[role].values()]
    return Annotated[reduce(operator.or_, classes), Field(discriminator="backend")]


class _HasProvider(Protocol):
    @property
    def provider(self) -> BackendSpec: ...


def create_backend(spec: BackendSpec | _HasProvider) -> Backend:
    """The backend instance that serves one provider spec (`role.provider`; a role is accepted
    too, for its provider)."""
    provider = spec if isinstance(spec, BackendSpec) else spec.provider
    for cls in type(provider).__mro__:
        backend = _BACKEND_OF.get(cls)
        if backend is not None:
            return backend(provider)
    raise TypeError(f"no backend registered for {type(provider).__name__}")


register("sim", SimSpec, SimBackend, roles=("contestant",))
register("sim", SimJudgeSpec, SimJudgeBackend, roles=("judge",))
register("scripted", ScriptedSpec, ScriptedBackend)
register("litellm", LiteLLMSpec, LiteLLMBackend)
register("vllm-server", VllmServerSpec, VllmServerBackend)
register("vllm", VllmSpec, VllmBackend)
register("local", LocalSpec, LocalBackend)
