"""An adapter back in the arena: `arena models add-adapter` writes its models.yaml entry.

Top to bottom:

1. `read_adapter` reads the adapter folder: PEFT's `adapter_config.json` (a LoRA, its rank: the
   largest of `r` and `rank_pattern`, and the base it names, `base_model_name_or_path`) and our
   `arena.json` when there is one (the base as given to `arena train dpo --base`, and the folder
   it resolved to). Nothing is loaded: no torch, no `train` extra needed.
2. `adapter_entry` builds the new entry. BASE is an entry of the models file (its backend, model,
   params and persona are copied; the adapter is the only change) or a model id. On `local` and
   `vllm` the entry names the folder (`adapter:`, as an absolute path, so the file works from
   any directory); on `vllm-server` its `model` is the LoRA's served name, and the `vllm serve
   ... --enable-lora --lora-modules NAME=DIR --max-lora-rank R` line that serves it is returned.
   The adapter must have been trained on BASE's model, as far as its files say.
3. `add_adapter` checks the whole resulting file as `arena tournament` reads it
   (`arena.config.load.check_models`) and writes it atomically. An existing file keeps its text,
   comments included: the entry is appended as text after the last entry of `models:` (in the
   style of that entry, flow `{...}` or block), and the result is parsed back and compared with
   what was meant before it is written. A file that does not exist is created with the base, the
   adapter and the embedded judge (`arena.defaults`), ready for a tournament.

Every mistake (no adapter folder, a name taken, a base that is neither an entry nor the
adapter's base) is a `UserError` raised before anything is written.

Simplified on purpose: "trained on BASE" compares names and resolved paths; a served model name
that differs from the base's path (`--served-model-name`) cannot be matched, hence
`check_base=False`. The `vllm` backend's engine takes `max_lora_rank` from the first entry of a
base model, so an adapter above the base entry's is refused rather than set on the new entry.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from arena.config.errors import entry_error
from arena.config.load import check_models, parse_yaml
from arena.core.errors import ConfigError, UserError
from training.adapters import (
    ADAPTER_CONFIG,
    check_vllm_compatible,
    read_record,
    vllm_max_lora_rank,
)

AdapterBackend = Literal["local", "vllm", "vllm-server"]
BACKENDS: tuple[AdapterBackend, ...] = ("local", "vllm", "vllm-server")
"""The backends that serve a LoRA adapter."""
DEFAULT_API_BASE = "http://127.0.0.1:8000/v1"
"""Where `vllm serve` listens by default: the `api_base` of a new vllm-server entry."""
VLLM_DEFAULT_MAX_LORA_RANK = 64
"""`backend: vllm`'s default `max_lora_rank` (`arena.backends.vllm_inprocess.VllmSpec`)."""
EMBEDDED_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter folder says about itself."""

    folder: Path
    """The folder, resolved."""
    rank: int
    """The largest LoRA rank in it (`r`, `rank_pattern`)."""
    bases: tuple[str, ...]
    """The names it gives its base: `arena.json`'s `base` and `base_resolved`, PEFT's
    `base_model_name_or_path` (empty when it names none)."""
    serve_base: str | None
    """What `vllm serve` should load: the base's resolved folder, else the first name."""


def read_adapter(folder: Path) -> AdapterInfo:
    """Read `folder`'s `adapter_config.json` and `arena.json`; UserError when it is not a LoRA
    adapter folder."""
    if not folder.is_dir():
        raise UserError(f"--adapter: no folder {folder}")
    config_path = folder / ADAPTER_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"--adapter: {folder} has no {ADAPTER_CONFIG}: not a PEFT adapter folder"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"--adapter: {config_path} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"--adapter: {config_path} is not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"--adapter: {config_path}: peft_type is {config['peft_type']!r}, not LORA")
    ranks = [config.get("r"), *(config.get("rank_pattern") or {}).values()]
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in ranks):
        raise UserError(f"--adapter: {config_path}: r is {config.get('r')!r}, not a LoRA rank")
    record = read_record(folder) or {}
    names = [record.get("base"), record.get("base_resolved"), config.get("base_model_name_or_path")]
    bases = tuple(dict.fromkeys(n for n in names if isinstance(n, str) and n))
    resolved = record.get("base_resolved")
    return AdapterInfo(
        folder=folder.resolve(),
        rank=max(int(r) for r in ranks),
        bases=bases,
        serve_base=resolved if isinstance(resolved, str) and resolved else next(iter(bases), None),
    )


def _same_model(a: str, b: str) -> bool:
    """Whether two model names are the same: equal, or paths to the same folder."""
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def trained_on(info: AdapterInfo, model: str) -> bool:
    """Whether the adapter names `model` as its base (True when it names none)."""
    return not info.bases or any(_same_model(model, base) for base in info.bases)


@dataclass(frozen=True)
class NewEntries:
    """What `adapter_entry` decided: the entry, and what else the file and the user need."""

    entry: dict[str, Any]
    base_entry: dict[str, Any] | None = None
    """An entry for BASE itself, when BASE is a model id and the file is new."""
    serve: str | None = None
    """The `vllm serve` command line (vllm-server)."""
    notes: list[str] = field(default_factory=list)


def _entry_named(entries: list[Any], name: str) -> int | None:
    return next(
        (i for i, e in enumerate(entries) if isinstance(e, Mapping) and e.get("name") == name),
        None,
    )


def adapter_entry(
    name: str,
    base: str,
    info: AdapterInfo,
    entries: list[Any],
    *,
    backend: AdapterBackend | None,
    api_base: str,
    check_base: bool,
    new_file: bool,
    source: str,
    positions: Mapping[Any, int],
) -> NewEntries:
    """The models.yaml entry `name` for the adapter `info` on `base`; see the module docstring.

    `entries`: the file's `models:` list as parsed (empty for a new file)."""
    taken = _entry_named(entries, name)
    if taken is not None:
        raise entry_error(
            source, ("models", taken, "name"), f"an entry is named {name!r} already", positions
        )
    index = _entry_named(entries, base)
    notes: list[str] = []
    base_entry = None
    if index is not None:
        found = copy.deepcopy(dict(entries[index]))
        on = found.get("backend")
        if on not in BACKENDS:
            raise UserError(
                f"--base: entry {base!r} of {source} is on backend {on!r}; an adapter runs on "
                f"{', '.join(BACKENDS)}"
            )
        if backend is not None and backend != on:
            raise UserError(
                f"--backend {backend}: entry {base!r} of {source} is on backend {on}; leave "
                "--backend out, or give a base entry on that backend"
            )
        backend = on
        model = str(found.get("model") or EMBEDDED_MODEL)
        if check_base and not trained_on(info, model):
            raise UserError(
                f"--adapter: {info.folder} was trained on {info.bases[0]!r}, not on {model!r} "
                f"(the model of entry {base!r}); --skip-base-check if they are the same model"
            )
        entry = {"name": name, **{k: v for k, v in found.items() if k != "name"}}
    else:
        if not trained_on(info, base):
            known = ", ".join(str(e.get("name")) for e in entries if isinstance(e, Mapping))
            listing = (
                f"no entry of {source} is named so (models: {known})"
                if known
                else (f"{source} has no entries")
            )
            raise UserError(
                f"--base: unknown base {base!r}: {listing}, and {info.folder} was trained on "
                f"{info.bases[0]!r}"
            )
        if not info.bases:
            notes.append(f"{info.folder} names no base model: make sure it was trained on {base}")
        backend = backend or "local"
        model = base
        entry = {"name": name, "backend": backend, "model": base}
        if backend == "vllm-server":
            entry["api_base"] = api_base
        if new_file:
            base_entry = {**entry, "name": Path(base).name or base}
            if base_entry["name"] == name:
                raise UserError(f"NAME {name!r} is the base model's name: choose another")
    return _finish(entry, name, backend, model, info, notes, base_entry)


def _finish(
    entry: dict[str, Any],
    name: str,
    backend: AdapterBackend,
    model: str,
    info: AdapterInfo,
    notes: list[str],
    base_entry: dict[str, Any] | None,
) -> NewEntries:
    """Point `entry` at the adapter on `backend`; for vLLM, check that it can be served."""
    folder = str(info.folder)
    if backend == "local":
        entry["adapter"] = folder
        return NewEntries(entry, base_entry, None, notes)
    problems = check_vllm_compatible(info.folder)
    if problems:
        raise UserError(f"--adapter: vLLM cannot serve {folder}: {'; '.join(problems)}")
    rank = vllm_max_lora_rank(info.rank) or info.rank
    if backend == "vllm":
        limit = entry.get("max_lora_rank", VLLM_DEFAULT_MAX_LORA_RANK)
        if isinstance(limit, int) and info.rank > limit:
            raise UserError(
                f"--adapter: rank {info.rank} is above the base's max_lora_rank {limit}: set "
                f"max_lora_rank: {rank} on the base entry first (one vLLM engine serves both)"
            )
        entry["adapter"] = folder
        return NewEntries(entry, base_entry, None, notes)
    entry.pop("adapter", None)
    entry["model"] = name
    served = info.serve_base or model
    words = ["vllm", "serve", served]
    if not _same_model(served, model):
        words += ["--served-model-name", model]
    words += ["--enable-lora", "--lora-modules", f"{name}={folder}", "--max-lora-rank", str(rank)]
    return NewEntries(entry, base_entry, shlex.join(words), notes)


# --- the file -----------------------------------------------------------------------------------


def _last_scalar_end(node: yaml.Node) -> int:
    """Where the last scalar (or flow collection) under `node` ends, as a text index."""
    while isinstance(node, yaml.CollectionNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return int(node.end_mark.index)


def append_entry(text: str, entry: Mapping[str, Any]) -> str:
    """`text` (a models file, parsed) with `entry` appended to its `models:` list as text.

    >>> print(append_entry("models:\\n  - {name: a, backend: sim}  # mine\\njudges: []\\n",
    ...                    {"name": "b", "backend": "sim"}), end="")
    models:
      - {name: a, backend: sim}  # mine
      - {name: b, backend: sim}
    judges: []
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    seq = next(
        (v for k, v in getattr(root, "value", []) if getattr(k, "value", None) == "models"), None
    )
    if not isinstance(seq, yaml.SequenceNode):
        raise ValueError("no models: list")
    flow = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10**9).strip()
    if seq.flow_style:  # models: [..., ...]
        close = text.rindex("]", 0, seq.end_mark.index)
        return text[:close] + (", " if seq.value else "") + flow + text[close:]
    last = seq.value[-1]
    if isinstance(last, yaml.CollectionNode) and last.flow_style:
        item = f"- {flow}\n"
    else:
        item = yaml.safe_dump([dict(entry)], default_flow_style=None, sort_keys=False)
    end = _last_scalar_end(last)
    if end > 0 and text[end - 1] == "\n":
        cut = end
    else:
        newline = text.find("\n", end)
        cut = len(text) if newline < 0 else newline + 1
    head = text[:cut] if text[:cut].endswith("\n") else text[:cut] + "\n"
    pad = " " * seq.start_mark.column
    return head + "".join(pad + line for line in item.splitlines(keepends=True)) + text[cut:]


@dataclass(frozen=True)
class Added:
    """What `add_adapter` wrote."""

    path: Path
    entry: dict[str, Any]
    created: bool
    serve: str | None
    notes: list[str]


def add_adapter(
    models: Path,
    name: str,
    base: str,
    adapter: Path,
    *,
    backend: AdapterBackend | None = None,
    api_base: str = DEFAULT_API_BASE,
    check_base: bool = True,
) -> Added:
    """Append the adapter's entry to `models` (created when absent); UserError on a mistake,
    with the file unchanged."""
    from arena.core.files import atomic_output

    info = read_adapter(adapter)
    source = str(models)
    created = not models.exists()
    if created:
        data: Any = {"models": []}
        positions: dict[Any, int] = {}
        text = ""
    else:
        data, positions = parse_yaml(models)
        text = models.read_text(encoding="utf-8")
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise ConfigError(source, "models", "expected a list of model entries to append to")
    made = adapter_entry(
        name,
        base,
        info,
        data["models"],
        backend=backend,
        api_base=api_base,
        check_base=check_base,
        new_file=created,
        source=source,
        positions=positions,
    )
    if created:
        from arena.defaults import DEFAULT_MODELS

        wanted = {
            "models": [*([made.base_entry] if made.base_entry else []), made.entry],
            "judges": copy.deepcopy(DEFAULT_MODELS["judges"]),
        }
        new_text = (
            "# Written by `arena models add-adapter`: the base model, its adapter, and the\n"
            "# embedded model as the judge (any judge will do: see docs/training.md).\n"
            + yaml.safe_dump(wanted, sort_keys=False)
        )
    else:
        wanted = {**data, "models": [*data["models"], made.entry]}
        new_text = append_entry(text, made.entry)
    check_models(wanted, source, positions)
    if yaml.safe_load(new_text) != wanted:  # the text says what was meant, or nothing is written
        raise UserError(
            f"{models}: could not append to this file's text; add the entry by hand: "
            + yaml.safe_dump(made.entry, default_flow_style=True, sort_keys=False, width=10**9)
        )
    with atomic_output(models, force=not created) as tmp:
        tmp.write_text(new_text, encoding="utf-8")
    return Added(models, made.entry, created, made.serve, made.notes)
