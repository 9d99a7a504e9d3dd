"""`arena pcp build-train`: read the topics, leave out the evaluation topics, take every topic
through the generator (`arena.tasks.pcp_train`), then write the training prompts.

The same life as a BBQ run (`arena.bbq_run`), with the PCT-prompt task in the generic runner:
concurrency, retries, the budget, the progress display, live reads, and resuming (a rerun of
the same command asks only for the steps the store does not hold; once every topic is done it
asks for nothing and writes the same file).

Everything the user gave is read and checked before the store is opened: a missing or empty
topics file, a `--pairs` file of the wrong shape, a missing `--pairs` (without
`--allow-eval-topics`), a bad models.yaml or an unknown `--generator`, an `--out` that may not
be written; each is one line naming the file (and field), exit code 2, and neither the database
nor `--out` is created.

Evaluation topics are left out twice (`arena.protocol.pcp_train` defines the match): a topic of
the list that mentions one is not planned, so no call is spent on it; a generated helpfulness
request that mentions one is dropped from the output. So `arena pcp overlap` finds nothing in
the output against the same pairs file.

`--out` is written from the store's rows, once the run is complete (exit code 0), whole or not
at all (`arena.core.files`); topics in the list's order, helpfulness rows first, as in the
published set. An existing `--out` is replaced only with `--force`, or when it already holds
exactly the rows this run writes (then it is left as it is): a rerun of the same command
succeeds and leaves the same file. A run that is not complete writes nothing; the command that
continues it is printed.

Exit codes, as for BBQ runs: 0 every topic done and `--out` written, 1 some calls failed (rerun
to retry them), 2 a user error, 3 the budget stopped new topics, 4 the database or `--out`
could not be written (a full disk), 130 interrupted.

Simplified on purpose: no sampling of the rows (the published recipe keeps a seeded 500 of each
kind; every usable row is written here), and `--out` is compared with what would be written by
its bytes alone.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from arena.config.bbq import load_bbq_models
from arena.config.inputs import InputLimits
from arena.config.load import check_environment, remember_secrets
from arena.config.schema import ContestantRole
from arena.core.clock import now
from arena.core.errors import ConfigError, UserError
from arena.core.files import OutputRefused, refuse_never_written
from arena.driver import (
    EXIT_OK,
    EXIT_USER,
    EXIT_WRITE,
    Job,
    StopSignals,
    Wording,
    continue_command,
    drive,
    report_items,
)
from arena.protocol.pcp import load_topic_pairs
from arena.protocol.pcp_train import (
    Assembled,
    EvalTopic,
    assemble,
    eval_topics,
    eval_topics_in,
    load_topic_list,
    load_train_rows,
    train_rows_text,
    write_train_rows,
)
from arena.runner import Runner, RunSummary
from arena.tasks.pcp_train import (
    Generators,
    Outcome,
    PCTSettings,
    PCTTask,
    PCTUnit,
    check_run,
    default_run_id,
    is_finished,
    plan,
    record_run,
    recorded_steps,
    resolve_settings,
    stored_outcome,
)
from storage import Store

EMBEDDED = (
    "No --models given: the embedded model smollm2-135m-instruct generates (smollm2-greedy). "
    "It is far too small to write usable training prompts (most replies will not read as the "
    "JSON asked for): give --models and --generator for a real set."
)


def load_generators(
    models: Path | None,
    generator: str | None,
    anchor_generator: str | None,
    limits: InputLimits | None = None,
) -> Generators:
    """The generator (and anchor generator) named among a models.yaml's `models:` (or the
    embedded model without a file). Without `--generator`, a file's only model."""
    roles = load_bbq_models(models, limits)
    source = str(models) if models is not None else "the built-in default model"
    by_name = {role.name: role for role in roles}
    known = ", ".join(by_name)

    def pick(name: str | None, flag: str) -> ContestantRole:
        if name is None:
            if len(roles) > 1:
                raise ConfigError(
                    "command line", flag, f"{source} has several models ({known}): name one"
                )
            return roles[0]
        if name not in by_name:
            raise ConfigError(
                "command line", flag, f"no model {name!r} in {source} (it has: {known})"
            )
        return by_name[name]

    chosen = pick(generator, "--generator")
    anchors = pick(anchor_generator, "--anchor-generator") if anchor_generator else chosen
    used = [chosen, anchors]
    remember_secrets(used)
    check_environment(roles, "models", source, {r.name for r in used})
    return Generators(chosen, anchors)


def select_topics(
    topics: Sequence[str], exclude: Sequence[EvalTopic]
) -> tuple[list[str], list[str]]:
    """(the topics to plan, those left out because they mention an evaluation topic)."""
    keep: list[str] = []
    left_out: list[str] = []
    for topic in topics:
        (left_out if exclude and eval_topics_in(topic, exclude) else keep).append(topic)
    return keep, left_out


def check_out(out: Path, force: bool, protected: Sequence[Path]) -> None:
    """Refuse an `--out` that may never be written (a database, an input file, a folder), and,
    without `force`, an existing one that is not a training-prompt file (a rerun may leave one
    that already holds the same rows)."""
    refuse_never_written(out, protected=protected)
    if force or not (out.exists() or out.is_symlink()):
        return
    try:
        load_train_rows(out)
    except ConfigError:
        raise OutputRefused(
            f"{out} exists and is not a training-prompt file; give --force to replace it, "
            "or another name"
        ) from None


def build_train(
    topics_path: Path,
    out: Path,
    db: Path,
    flags: Mapping[str, Any],
    *,
    pairs_path: Path | None = None,
    allow_eval_topics: bool = False,
    models: Path | None = None,
    generator: str | None = None,
    anchor_generator: str | None = None,
    run_id: str | None = None,
    force: bool = False,
    quiet: bool = False,
    console: Console | None = None,
    argv: list[str] | None = None,
    limits: InputLimits | None = None,
) -> int:
    """Build (or continue building) a training-prompt set; returns the exit code. Raises
    `UserError` on bad input, before the database is opened and `--out` written."""
    console = console or Console(stderr=True, soft_wrap=True)
    settings = resolve_settings(flags)
    topics = load_topic_list(topics_path)
    exclude: list[EvalTopic] = []
    if pairs_path is not None:
        pairs = load_topic_pairs(pairs_path)
        if not allow_eval_topics:
            exclude = eval_topics(pairs)
    elif not allow_eval_topics:
        raise UserError(
            "--pairs: give the evaluation topic pairs (a pcp_topics.json) whose topics to leave "
            "out of the training set, or --allow-eval-topics to keep them"
        )
    planned, left_out = select_topics(topics, exclude)
    if not planned:
        raise UserError(
            f"{topics_path}: every one of its {len(topics)} topics mentions an evaluation topic "
            f"of {pairs_path}; nothing is left to build"
        )
    if settings.limit is not None:
        planned = planned[: settings.limit]
    generators = load_generators(models, generator, anchor_generator, limits)
    protected = [p for p in (db, topics_path, pairs_path, models) if p is not None]
    check_out(out, force, protected)
    if models is None:
        console.print(EMBEDDED, highlight=False)
    run_id = run_id or default_run_id(generators, settings)
    units = plan(run_id, planned)
    inputs = {
        "topics": str(topics_path),
        "topics_in_file": len(topics),
        "topics_planned": len(units),
        "eval_topics_left_out": len(left_out),
        "pairs": str(pairs_path) if pairs_path is not None else None,
        "allow_eval_topics": allow_eval_topics,
    }
    if left_out:
        console.print(
            f"left out {len(left_out)} of {len(topics)} topics that mention an evaluation topic"
            f" of {pairs_path} (--allow-eval-topics keeps them)",
            highlight=False,
        )
    command = continue_command(argv)
    with StopSignals() as signals:
        job = PCTJob(generators, settings, units, inputs, run_id, db)
        code = drive(job, db, command, quiet, console, signals)
    if code != EXIT_OK or job.outcome is None:
        console.print(f"{out} not written: the run is not complete.", highlight=False)
        return code
    return _write_out(assemble(job.outcome.results, exclude), out, force, protected, console)


def _write_out(
    assembled: Assembled,
    out: Path,
    force: bool,
    protected: Sequence[Path],
    console: Console,
) -> int:
    """Write the rows to `out`, unless it already holds exactly them."""
    rows = assembled.rows
    sentiment = sum(r.query_type == "sentiment" for r in rows)
    counts = f"{len(rows)} rows ({len(rows) - sentiment} helpfulness, {sentiment} sentiment)"
    if assembled.dropped_prompts:
        console.print(
            f"dropped {len(assembled.dropped_prompts)} generated requests that mention an "
            "evaluation topic",
            highlight=False,
        )
    if not rows:
        console.print(f"no usable rows: {out} not written", highlight=False)
        return EXIT_OK
    text = train_rows_text(rows)
    if not force and out.is_file():
        try:
            same = out.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if same:
            console.print(f"{out} already holds these {counts}; left as it is", highlight=False)
            return EXIT_OK
    try:
        write_train_rows(rows, out, force=force, protected=[p for p in protected if p is not None])
    except OutputRefused:
        raise
    except OSError as error:
        console.print(
            f"error: {out}: could not write the training set: {error.strerror or error}",
            highlight=False,
        )
        return EXIT_WRITE if error.errno == errno.ENOSPC else EXIT_USER
    console.print(f"wrote {counts} to {out}", highlight=False)
    return EXIT_OK


class PCTJob(Job):
    """A PCT-prompt run as `arena.driver.drive` plays it."""

    def __init__(
        self,
        generators: Generators,
        settings: PCTSettings,
        units: Sequence[PCTUnit],
        inputs: Mapping[str, Any],
        run_id: str,
        db: str | os.PathLike[str],
    ) -> None:
        self.generators = generators
        self.settings = settings
        self.units = units
        self.inputs = inputs
        self.run_id = run_id
        self.db = db
        self.store: Store | None = None
        self.outcome: Outcome | None = None
        """What the store holds for the planned topics, read once the units were played."""

    def start(self, store: Store, command: str) -> bool:
        settings = self.settings
        existed = check_run(store, self.generators, settings, self.run_id)
        task = PCTTask(self.generators, settings, store, self.run_id)
        self.runner = Runner.for_task(task, store, self.run_id, task.backends(), settings)
        record_run(store, self.generators, settings, self.run_id, self.inputs, command, now())
        self.store = store
        return existed

    async def play(self) -> RunSummary:
        if self.store is None:
            raise AssertionError("unreachable: play before start")
        summary = await self.runner.run(self.units, len(self.units))
        self.outcome = stored_outcome(self.store, self.run_id, self.units)
        return summary

    def held(self, store: Store) -> str:
        states = recorded_steps(store, self.run_id, self.units)
        done = sum(is_finished(states.get(u.topic_id)) for u in self.units)
        return f" {done}/{len(self.units)} topics are fully recorded;"

    def report(
        self,
        summary: RunSummary | None,
        command: str,
        console: Console,
        stopped_by: str | None,
    ) -> None:
        details = []
        if summary is not None and self.outcome is not None:
            o = self.outcome
            details.append(
                f"  topics: {o.kept} kept, {o.no_divide} without a clear left/right divide, "
                f"{o.classified - o.kept - o.no_divide} unreadable classifications; "
                f"steps with nothing usable: {o.unreadable} unreadable, {o.truncated} anchors "
                "cut at --max-tokens"
            )
        report_items(
            console,
            self.runner,
            summary,
            Wording("topics", "steps"),
            command,
            stopped_by,
            None,
            details,
        )
