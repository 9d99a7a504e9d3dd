"""`arena models`: the models file, a group of commands.

- `add-adapter NAME --base BASE --adapter DIR [--models FILE] [--backend ...]`: a LoRA adapter
  as a contestant (`training.contestant`): its entry appended to FILE (created when absent, with
  the base and the embedded judge), checked as `arena tournament` reads the file, written whole
  or not at all, its comments kept. With `vllm-server` it prints the `vllm serve` line.
- `list [--models FILE]`: the file's contestants and judges as a table.

A mistake (no adapter folder, a name taken, an unknown base, a file that does not validate) is
one `error:` line, exit code 2, and the file is unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import fail, reported

app = typer.Typer(help="The models file: add an adapter, list the entries.", no_args_is_help=True)

MODELS_OPTION = typer.Option(Path("models.yaml"), "--models", help="The models file.")


@app.callback()
def _group() -> None:
    """The models file: add an adapter, list the entries."""


class AdapterBackend(StrEnum):
    local = "local"
    vllm = "vllm"
    vllm_server = "vllm-server"


@app.command("add-adapter")
def add_adapter(
    name: str = typer.Argument(..., help="The new contestant's name."),
    base: str = typer.Option(
        ..., "--base", help="An entry of the models file, or the model id the adapter is on."
    ),
    adapter: Path = typer.Option(..., "--adapter", help="The adapter folder (arena train dpo)."),
    models: Path = MODELS_OPTION,
    backend: AdapterBackend | None = typer.Option(
        None,
        "--backend",
        help="local, vllm or vllm-server (default: the base entry's; local for a model id).",
    ),
    api_base: str = typer.Option(
        "http://127.0.0.1:8000/v1",
        "--api-base",
        help="vllm-server with a model id as base: where `vllm serve` listens.",
    ),
    skip_base_check: bool = typer.Option(
        False,
        "--skip-base-check",
        help="Do not require the adapter's recorded base to be BASE's model (a served name).",
    ),
) -> None:
    """Append an adapter as a contestant to the models file (created when absent)."""
    from training.contestant import add_adapter as add

    with reported():
        added = add(
            models,
            name,
            base,
            adapter,
            backend=None if backend is None else backend.value,
            api_base=api_base,
            check_base=not skip_base_check,
        )
    for note in added.notes:
        typer.echo(f"note: {note}", err=True)
    how = "created" if added.created else "appended to"
    typer.echo(f"{how} {added.path}: {added.entry['name']} on {added.entry['backend']}")
    if added.serve:
        typer.echo(f"serve it: {added.serve}")


@app.command("list")
def list_models(models: Path = MODELS_OPTION) -> None:
    """The models file's contestants and judges as a table."""
    from rich.console import Console
    from rich.table import Table

    from arena.config import load_models

    if not models.is_file():
        fail(f"--models: no file {models}")
    with reported():
        parsed = load_models(models)
    table = Table("role", "name", "backend", "model", "adapter", title=str(models))
    for role, entries in (("contestant", parsed.models), ("judge", parsed.judges)):
        for entry in entries:
            spec = entry.provider
            table.add_row(
                role,
                entry.name,
                spec.backend,
                str(getattr(spec, "model", "") or ""),
                str(getattr(spec, "adapter", "") or ""),
            )
    Console().print(table)
