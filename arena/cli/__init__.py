"""The `arena` command: one module per subcommand, each a thin layer over the module that does
the work; `common` holds the shared `--db` option and error reporting.

- `tournament`: run or continue a tournament (`arena.tournament`).
- `sql`: a read-only query (`storage.run_query`, `arena.sqlcmd`).
- `rank`: the leaderboard and reports (`eval`).
- `show`: debates turn by turn with their verdicts (`eval.transcripts`).
- `view`: a static HTML site of the debates (`eval.site`).
- `pairs`: preference pairs for DPO (`pairing`).
- `bbq`: the BBQ bias benchmark, a group of commands: `run` (`arena.bbq_run`), `report` and
  `score` (`eval.bbq`), `export` (`pairing.bbq_export`).
- `pcp`: paired political prompts, a group of commands: `run` (`arena.pcp_run`), `report`
  (`eval.pcp`), `build-train` (`arena.pcp_train_run`) and `overlap`.
- `train`: LoRA training on what the arena recorded (`training`): `dpo`.
- `models`: the models file, a group of commands: `add-adapter` (`training.contestant`), `list`.

A user's mistake is one line, `error: ...`, exit code 2, no traceback. Everything heavy (the
engine, the backends, pydantic models, DuckDB) is imported inside the commands, so that
`arena --help` starts fast. Nothing imports this package; it imports everything.
"""

from __future__ import annotations

import sys

import typer

from arena.cli import bbq, models, pairs, pcp, rank, show, sql, tournament, train, view

app = typer.Typer(
    name="arena",
    help="Tournaments of LLM debates, recorded in DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (tournament.tournament, sql.sql, rank.rank, show.show, view.view, pairs.pairs):
    app.command()(command)
app.add_typer(bbq.app, name="bbq")
app.add_typer(pcp.app, name="pcp")
app.add_typer(train.app, name="train")
app.add_typer(models.app, name="models")


def _version(value: bool) -> None:
    if value:
        from arena import __version__

        typer.echo(f"arena {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Tournaments of LLM debates, recorded in DuckDB."""


def _is(exc: BaseException, name: str) -> bool:
    """Whether `exc` is click's exception `name` (typer ships its own copy of click, so the
    classes are matched by name rather than imported from a private module)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main() -> None:
    """The `arena` console script (and `python -m arena`).

    click's own errors (an unknown option, a value of the wrong type) are printed as one
    `error:` line too, exit code 2, like every other mistake in what the user typed.
    """
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        ctx = getattr(exc, "ctx", None)
        if _is(exc, "NoArgsIsHelpError") and ctx is not None:
            typer.echo(ctx.get_help(), err=True)
            sys.exit(2)
        if not _is(exc, "UsageError"):
            raise
        command = f"{ctx.command_path}: " if ctx is not None else ""
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        typer.echo(f"error: {command}{message} (see --help)", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
