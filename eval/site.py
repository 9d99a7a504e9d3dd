"""A static site of the recorded debates (`arena view`): plain HTML files that any browser opens
from disk, no server, nothing fetched from elsewhere.

Top to bottom: `page_name` (a safe file name for a model or run name, shared with the rank
report's links), `DebateSummary` (what a debates table row and a model page need of a debate),
`ModelRecord` (a model's wins, losses and ties, per opponent, and its closest losses),
`build_site`, which reads every tournament run through `storage.read_connection` (a bulk read;
a consistent snapshot while a tournament writes), and `write_site`, which renders the pages
from the Jinja templates `eval/templates/site_*.html.j2` into a folder:

    index.html                    the runs
    runs/<run>/debates-<k>.html   a run's debates, `PAGE_SIZE` per page, filterable and sortable
    debates/<debate_id>.html      one debate: its turns in order, every verdict and rationale
    models/<model>.html           a model's record, per opponent (`#vs-<opponent>`), and its
                                  closest losses

Reading needs no JavaScript; a small inline script per debates page filters its rows by model,
opponent, topic, winner and judge disagreement (also from the address: `?model=a&vs=b`) and
sorts them by a clicked column. The rank report links its leaderboard rows to the model pages
and its heatmap cells to a model page's section on that opponent (`arena rank --site`).

A debate's closest losses are the debates a model lost in which the most counting judges sided
with it (the share of its side's valid counting verdicts, a tie counting half); P(FOR) is not
used, as only log-probability judges record it.

The debate pages, most of the work, are rendered and written by forked worker processes while
the next debates are read: a run of `PARALLEL_FROM` debates or more is read in chunks of about
`CHUNK` (hash partitions of its debates), and each chunk goes to a new worker, forked when it has
been read, so that it inherits the chunk and nothing has to be sent; at most one worker per CPU
(8 at most) at once. Where the system does not fork, or with one CPU, all is done here. A worker's
`OSError` is raised here; an error or Ctrl-C here ends the workers.

Simplified on purpose: without workers a run is read at once (a 15,000-debate run is a few
hundred MB of text in memory); the filters act on the page shown, not on a run's other pages;
pages are rewritten whole on every run of `arena view` (the folder is replaced atomically).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import jinja2

from eval.transcripts import (
    ORDER,
    VARIANTS,
    DebateTranscript,
    Fetch,
    connection_fetch,
    gather,
    judges_disagree,
)
from eval.transcripts_render import (
    VERDICT_COLUMNS,
    about,
    headline,
    turn_heading,
    turn_usage,
    verdict_cells,
)
from storage import read_connection

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

PAGE_SIZE: Final = 250
"""Debates per page of a run's debates table."""
CLOSEST: Final = 10
"""Closest losses listed on a model page."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def page_name(name: str) -> str:
    """A file name stem for `name`: itself when it is safe, else a readable part and a hash.

    >>> page_name("sim-a"), page_name("org/model:7b")
    ('sim-a', 'org-model-7b-a0975b6b')
    """
    safe = _UNSAFE.sub("-", name).strip("-.")[:60]
    if safe == name and safe:
        return safe
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}".lstrip("-")


def model_href(name: str, opponent: str | None = None) -> str:
    """The model page's path from the site's root (and its section on `opponent`)."""
    anchor = f"#vs-{page_name(opponent)}" if opponent is not None else ""
    return f"models/{page_name(name)}.html{anchor}"


@dataclass(frozen=True)
class DebateSummary:
    """One row of a debates table."""

    debate_id: str
    run_id: str
    topic_id: str
    for_model: str
    against_model: str
    status: str
    winner: str | None
    winner_model: str | None
    votes: str
    """The counting valid verdicts: 'FOR 2 · AGAINST 1'."""
    support: dict[str, float]
    """Per side, the share of counting valid verdicts for it (a tie half to each)."""
    disagree: bool
    turns: int
    page: int
    """The page of its run's debates table that lists it."""


def summarise(t: DebateTranscript, page: int) -> DebateSummary:
    counted = [v.winner for v in t.verdicts if v.counts and v.valid and v.winner]
    tally = Counter(counted)
    share = {
        side: (tally[side] + tally["TIE"] / 2) / len(counted) if counted else 0.0
        for side in ("FOR", "AGAINST")
    }
    return DebateSummary(
        debate_id=t.debate.debate_id,
        run_id=t.debate.run_id,
        topic_id=t.debate.topic_id,
        for_model=t.debate.for_model,
        against_model=t.debate.against_model,
        status=t.debate.status,
        winner=t.debate.winner,
        winner_model=t.winner_model,
        votes=" · ".join(f"{s} {tally[s]}" for s in ("FOR", "AGAINST", "TIE") if tally[s]),
        support=share,
        disagree=judges_disagree(t),
        turns=len(t.turns),
        page=page,
    )


@dataclass
class ModelRecord:
    """A model's results over the decided debates it took part in (ties count as ties)."""

    name: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    undecided: int = 0
    per_opponent: dict[str, list[DebateSummary]] = field(default_factory=dict)
    losses_list: list[tuple[float, DebateSummary]] = field(default_factory=list)

    def add(self, d: DebateSummary) -> None:
        side = "FOR" if d.for_model == self.name else "AGAINST"
        opponent = d.against_model if side == "FOR" else d.for_model
        self.per_opponent.setdefault(opponent, []).append(d)
        if d.winner is None:
            self.undecided += 1
        elif d.winner == "TIE":
            self.ties += 1
        elif d.winner == side:
            self.wins += 1
        else:
            self.losses += 1
            self.losses_list.append((d.support[side], d))

    def closest_losses(self) -> list[tuple[float, DebateSummary]]:
        """The `CLOSEST` losses with the most support for this model, most first."""
        return sorted(self.losses_list, key=lambda x: (-x[0], x[1].debate_id))[:CLOSEST]

    def tally(self, opponent: str) -> Counter[str]:
        """Outcomes against `opponent`: won, lost, tie, ..."""
        return Counter(self.outcome(d) for d in self.per_opponent.get(opponent, []))

    def outcome(self, d: DebateSummary) -> str:
        side = "FOR" if d.for_model == self.name else "AGAINST"
        if d.winner is None:
            return d.status if d.status != "done" else "no verdict"
        return "tie" if d.winner == "TIE" else "won" if d.winner == side else "lost"


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    created_at: str
    debates: list[DebateSummary]
    pages: int
    topics: list[str]
    models: list[str]


@dataclass(frozen=True)
class SiteStats:
    """What `write_site` wrote."""

    runs: int
    debates: int
    files: int
    bytes: int
    largest: tuple[str, int]
    """The largest page (path from the folder) and its size in bytes."""


RUNS_SQL: Final = (
    "SELECT r.run_id, r.status, CAST(r.created_at AS VARCHAR) FROM runs r"
    " WHERE r.run_id IN (SELECT run_id FROM debates) ORDER BY r.created_at, r.run_id"
)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eval", "templates"),
        auto_reload=False,  # not a stat of the base template for every page
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        page_name=page_name,
        model_href=model_href,
        about=about,
        headline=headline,
        turn_heading=turn_heading,
        turn_usage=turn_usage,
        verdict_cells=verdict_cells,
        verdict_columns=VERDICT_COLUMNS,
        variants=VARIANTS,
    )
    return env


CHUNK: Final = 1_000
"""Debates read per query when the pages are written by workers: each chunk goes to a worker
while the next one is read."""

PARALLEL_FROM: Final = 500
"""Debates in a run from which its pages are written by forked workers (below: here)."""

_PENDING: list[tuple[DebateTranscript, DebateSummary]] = []
"""The chunk of debate pages that the next forked worker writes (it inherits this list)."""


def _runs(
    db: str | os.PathLike[str], chunked: bool
) -> Iterator[tuple[tuple[str, str, str], list[str], Iterator[list[DebateTranscript]]]]:
    """Each run with debates: (id, status, created), its debate ids in page order, and its
    transcripts, in chunks of about `CHUNK` debates (`chunked`) or all at once."""
    with read_connection(db, tables=["runs", "topics", "debates", "turns", "verdicts"]) as con:
        fetch = connection_fetch(con)
        for run in fetch(RUNS_SQL, [])[1]:
            run_id = str(run[0])
            ids = [
                str(row[0])
                for row in fetch(
                    f"SELECT d.debate_id FROM debates d WHERE d.run_id = ? ORDER BY {ORDER}",
                    [run_id],
                )[1]
            ]
            parts = max(1, len(ids) // CHUNK) if chunked and len(ids) >= PARALLEL_FROM else 1
            yield (run_id, str(run[1]), str(run[2])), ids, _chunks(fetch, run_id, parts)


def _chunks(fetch: Fetch, run_id: str, parts: int) -> Iterator[list[DebateTranscript]]:
    """The run's transcripts in `parts` hash partitions of its debates, each in page order (the
    partitions' queries together take about as long as one query of the whole run)."""
    where = "{id} IN (SELECT debate_id FROM debates WHERE run_id = ?"
    queries: list[tuple[str, list[object]]] = [(where + ")", [run_id])]
    if parts > 1:
        where += " AND hash(debate_id) % ? = ?)"
        queries = [(where, [run_id, parts, part]) for part in range(parts)]
    for sql, params in queries:
        with _collector_paused():
            chunk = gather(fetch, sql, params)
        yield chunk


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: reading a chunk makes about 15 tuples a debate
    and no cycles, and each collection on the way would walk the heap that grows (a third of
    the reading's time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _write_file(folder: Path, path: str, text: str) -> int:
    target = folder / path
    data = text.encode("utf-8")
    target.write_bytes(data)
    return len(data)


def _write_debate_pages(
    folder: Path, pages: list[tuple[DebateTranscript, DebateSummary]]
) -> list[tuple[str, int]]:
    """Render and write the debate pages `pages`; their paths and sizes."""
    template = _environment().get_template("site_debate.html.j2")
    written: list[tuple[str, int]] = []
    for t, summary in pages:
        path = f"debates/{page_name(summary.debate_id)}.html"
        text = template.render(t=t, d=summary, root="../")
        written.append((path, _write_file(folder, path, text)))
    return written


def _worker_count() -> int:
    """Worker processes for the debate pages: the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cpus or 1)


def _forked_worker(folder: Path, answer: Connection) -> None:
    """A forked worker's life: write the pages of `_PENDING` and send back their sizes, or the
    `OSError` that stopped it (as errno, message and file name). Ctrl-C is the parent's to
    handle (it ends its workers), and the parent's signal handlers are not for here."""
    import signal

    gc.freeze()  # the inherited objects: never collected here, so their pages stay shared
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    try:
        answer.send(("ok", _write_debate_pages(folder, _PENDING)))
    except OSError as error:
        answer.send(("error", error.errno, error.strerror or str(error), error.filename))
    finally:
        answer.close()


class _DebateWriter:
    """Writes the debate pages chunk by chunk: each chunk in a forked worker process while the
    next chunk is read, at most `_worker_count()` at once, where the system forks and there are
    two CPUs or more; else here, at once."""

    def __init__(self, folder: Path) -> None:
        import multiprocessing

        self.folder = folder
        self.written: dict[str, int] = {}
        self.workers = _worker_count()
        self.forks = self.workers >= 2 and "fork" in multiprocessing.get_all_start_methods()
        self.running: list[tuple[BaseProcess, Connection]] = []
        (folder / "debates").mkdir(parents=True, exist_ok=True)

    def write(self, pages: list[tuple[DebateTranscript, DebateSummary]]) -> None:
        if not self.forks or len(pages) < 2:
            self.written.update(_write_debate_pages(self.folder, pages))
            return
        import multiprocessing

        while len(self.running) >= self.workers:
            self._collect(self.running.pop(0))
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        _PENDING[:] = pages
        try:
            process = context.Process(target=_forked_worker, args=(self.folder, send), daemon=True)
            process.start()
        finally:
            _PENDING.clear()  # the worker has its own copy; here they may go
            send.close()
        self.running.append((process, receive))

    def _collect(self, worker: tuple[BaseProcess, Connection]) -> None:
        process, receive = worker
        try:
            answer = receive.recv()
        except EOFError:
            answer = ("died",)
        finally:
            receive.close()
            process.join()
        if answer[0] == "ok":
            self.written.update(answer[1])
        elif answer[0] == "error":
            raise OSError(answer[1], answer[2], answer[3])
        else:
            raise OSError(f"a worker writing debate pages ended with exit code {process.exitcode}")

    def finish(self) -> dict[str, int]:
        """Wait for the workers; the paths and sizes of every debate page written."""
        while self.running:
            self._collect(self.running.pop(0))
        return self.written

    def stop(self) -> None:
        """End the workers still running (after an error or an interruption here)."""
        for process, receive in self.running:
            process.terminate()
            process.join()
            receive.close()
        self.running.clear()


def write_site(db: str | os.PathLike[str], folder: Path) -> SiteStats:
    """Read every run with debates from `db` and write the site into `folder` (which must exist:
    the caller makes it, as a temporary to rename into place)."""
    env = _environment()
    runs: list[Run] = []
    records: dict[str, ModelRecord] = {}
    written: dict[str, int] = {}

    def write(path: str, text: str) -> None:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        written[path] = _write_file(folder, path, text)

    debates = _DebateWriter(folder)
    try:
        for (run_id, status, created), ids, chunks in _runs(db, chunked=debates.forks):
            position = {debate_id: k for k, debate_id in enumerate(ids)}
            found: dict[int, DebateSummary] = {}
            for transcripts in chunks:
                pages: list[tuple[DebateTranscript, DebateSummary]] = []
                for t in transcripts:
                    k = position[t.debate.debate_id]
                    found[k] = summarise(t, 1 + k // PAGE_SIZE)
                    pages.append((t, found[k]))
                debates.write(pages)
                del pages, transcripts
            summaries = [found[k] for k in sorted(found)]
            for summary in summaries:
                for name in (summary.for_model, summary.against_model):
                    records.setdefault(name, ModelRecord(name)).add(summary)
            runs.append(
                Run(
                    run_id=run_id,
                    status=status,
                    created_at=created,
                    debates=summaries,
                    pages=max(1, -(-len(summaries) // PAGE_SIZE)),
                    topics=sorted({s.topic_id for s in summaries}),
                    models=sorted({m for s in summaries for m in (s.for_model, s.against_model)}),
                )
            )
        written.update(debates.finish())
    finally:
        debates.stop()
    table = env.get_template("site_debates.html.j2")
    for run in runs:
        for page in range(1, run.pages + 1):
            rows = run.debates[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            write(
                f"runs/{page_name(run.run_id)}/debates-{page}.html",
                table.render(run=run, rows=rows, page=page, root="../../"),
            )
    model_page = env.get_template("site_model.html.j2")
    for record in records.values():
        write(model_href(record.name), model_page.render(m=record, root="../"))
    write(
        "index.html",
        env.get_template("site_runs.html.j2").render(runs=runs, models=sorted(records), root=""),
    )
    largest = max(written.items(), key=lambda item: item[1])
    return SiteStats(
        runs=len(runs),
        debates=sum(len(r.debates) for r in runs),
        files=len(written),
        bytes=sum(written.values()),
        largest=largest,
    )
