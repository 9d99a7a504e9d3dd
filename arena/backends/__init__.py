"""Backends: where model calls go. One module per provider, one provider spec class per backend.

- `base`: the seam (`Backend`, `BackendSpec` the provider spec, `GenerateSettings`, `Completion`).
- `registry`: `backend:` name -> (spec class, backend class) per role; `create_backend`.
- `sim`, `scripted`, `litellm_backend`, `openai_http` (vllm-server), `vllm_inprocess`, `local`.

A provider spec holds provider settings only (model, endpoint, limits, params); what a model does
in a tournament (a contestant's persona, a judge's verdict mode) is in the roles of
`arena.config.schema`, which wrap a provider spec.
"""

from __future__ import annotations

from arena.backends.base import (
    Backend,
    BackendSpec,
    Completion,
    GenerateSettings,
    GenerationParams,
    Message,
)
from arena.backends.registry import (
    Registered,
    RoleKind,
    backend_names,
    create_backend,
    provider_union,
    register,
    registered,
)

__all__ = [
    "Backend",
    "BackendSpec",
    "Completion",
    "GenerateSettings",
    "GenerationParams",
    "Message",
    "Registered",
    "RoleKind",
    "backend_names",
    "create_backend",
    "provider_union",
    "register",
    "registered",
]
