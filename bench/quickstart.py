"""The README's first command, measured: wall time and how the embedded contestants' turns read.

Runs `arena tournament --topics examples/quickstart.yaml` (no `--models`: the embedded
SmolLM2-135M-Instruct plays three contestants) from one or more checkouts, in a fresh interpreter
each time, and reads what each run recorded; or reads DuckDB files that runs already wrote.
Figures, per database:

- wall time: of the whole command (interpreter start, imports and model load included) when this
  script ran it, else the run's `updated_at - created_at` from the `runs` table;
- FOR win rate: the share of debates whose `debates.winner` is FOR, among debates with a winner
  (TIE in the denominator), with the counts beside it;
- loop share: the share of turns in which one sequence of 6 words occurs three or more times (a
  word: a lowercase `\\w+` token), the mark of a small model repeating itself;
- echo share: the share of replies (turns after the first) that mostly repeat the turn before
  them, the opponent's: at least half of the reply's 6-word sequences occur in that turn;
- short share: the share of turns under 20 characters (stripped), such as "[Your first turn]";
- on-topic share (a rough check that a decoding does not push turns off their motion): the share
  of turns with a word that starts like one of their motion's content words (its first four
  letters; content words have four letters or more and are not in `MOTION_FILLER`);
- swap consistency, per judge that read every debate twice with the debater letters swapped: the
  share of debates where both readings name the same winner (both readings valid). Two layouts
  are read: rows `<judge>` and `<judge>:swapped` (before migration 0003), and a `variant` column
  with rows 'for_a' and 'for_b' (after it).

Checkouts given with `--repo` run in turn, round after round (`--rounds`), so that before and
after see the same machine load; the one-minute load average is printed beside each run, because
these machines are shared and a busy core slows torch down several times over.

    python bench/quickstart.py /tmp/a.duckdb /tmp/b.duckdb              # read existing runs
    python bench/quickstart.py --repo /tmp/before --db /tmp/qs/before.duckdb
    python bench/quickstart.py --repo /tmp/before --repo . --rounds 2 --out /tmp/qs
    python bench/quickstart.py --repo . --models /tmp/m.yaml --out /tmp/qs   # other contestants
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

WORD = re.compile(r"\w+")
LOOP_NGRAM = 6
LOOP_REPEATS = 3
SHORT_CHARS = 20
MOTION_FILLER = frozenset(
    {"this", "house", "would", "believes", "that", "should", "from", "with", "than", "into"}
)


def motion_stems(motion: str) -> set[str]:
    """The first four letters of a motion's content words.

    >>> sorted(motion_stems("This house would ban private cars from city centres."))
    ['cars', 'cent', 'city', 'priv']
    """
    words = WORD.findall(motion.lower())
    return {w[:4] for w in words if len(w) >= 4 and w not in MOTION_FILLER}


def on_topic(text: str, stems: set[str]) -> bool:
    """Whether `text` has a word that starts with one of `stems`."""
    return any(word[:4] in stems for word in WORD.findall(text.lower()) if len(word) >= 4)


def word_grams(text: str, n: int = LOOP_NGRAM) -> set[tuple[str, ...]]:
    """The distinct sequences of `n` words in `text`."""
    words = WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echoes(reply: str, previous: str) -> bool:
    """Whether at least half of `reply`'s 6-word sequences occur in `previous`.

    >>> said = "Cars pollute the air of our cities."
    >>> echoes(said + " Ban them.", said), echoes("Buses pollute less per rider than cars.", said)
    (True, False)
    """
    grams = word_grams(reply)
    return bool(grams) and 2 * len(grams & word_grams(previous)) >= len(grams)


def has_loop(text: str, n: int = LOOP_NGRAM, repeats: int = LOOP_REPEATS) -> bool:
    """Whether one sequence of `n` words occurs `repeats` or more times in `text`.

    >>> has_loop("I will argue. " * 3)
    False
    >>> has_loop("I am going to make an argument. " * 3)
    True
    """
    words = WORD.findall(text.lower())
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return any(count >= repeats for count in grams.values())


@dataclass
class Figures:
    """What one run recorded, summed up."""

    label: str
    wall_s: float | None = None
    load: str = ""
    debates: int = 0
    done: int = 0
    winners: Counter[str] = field(default_factory=Counter)
    turns: int = 0
    loops: int = 0
    short: int = 0
    replies: int = 0
    echoed: int = 0
    topical: int = 0
    mean_chars: float = 0.0
    at_length: int = 0
    consistency: dict[str, tuple[int, int]] = field(default_factory=dict)
    """judge -> (debates whose two readings agree, debates with two valid readings)."""

    @property
    def for_rate(self) -> float | None:
        decided = sum(self.winners.values())
        return self.winners["FOR"] / decided if decided else None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"describe {table}").fetchall()}


def swap_consistency(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Per judge with two readings of a debate: (readings that agree, debates read twice)."""
    if "variant" in _columns(con, "verdicts"):
        query = """
            select a.judge, count(*) filter (where a.winner = b.winner), count(*)
            from verdicts a join verdicts b using (debate_id, judge)
            where a.variant = 'for_a' and b.variant = 'for_b' and a.valid and b.valid
            group by a.judge order by a.judge
        """
    else:
        query = """
            select a.judge, count(*) filter (where a.winner = b.winner), count(*)
            from verdicts a join verdicts b
              on b.debate_id = a.debate_id and b.judge = a.judge || ':swapped'
            where a.valid and b.valid
            group by a.judge order by a.judge
        """
    return {judge: (same, total) for judge, same, total in con.execute(query).fetchall()}


def read_figures(db: Path, label: str | None = None, wall_s: float | None = None) -> Figures:
    """The figures of the (last) run recorded in `db`."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        figures = Figures(label or str(db), wall_s=wall_s)
        if wall_s is None:
            row = con.execute(
                "select epoch(max(updated_at) - min(created_at)) from runs"
            ).fetchone()
            figures.wall_s = float(row[0]) if row and row[0] is not None else None
        figures.debates, figures.done = con.execute(
            "select count(*), count(*) filter (where status = 'done') from debates"
        ).fetchone() or (0, 0)
        for winner, count in con.execute(
            "select winner, count(*) from debates where winner is not null group by winner"
        ).fetchall():
            figures.winners[winner] = count
        rows = con.execute(
            """
            select t.text, t.finish_reason, p.motion, t.debate_id, t.turn_index
            from turns t join debates d using (debate_id)
            join topics p on p.run_id = d.run_id and p.topic_id = d.topic_id
            """
        ).fetchall()
        texts = [(text or "", reason) for text, reason, *_ in rows]
        figures.topical = sum(
            on_topic(text or "", motion_stems(motion)) for text, _, motion, *_ in rows
        )
        by_turn = {(debate, index): text or "" for text, _, _, debate, index in rows}
        for (debate, index), text in by_turn.items():
            previous = by_turn.get((debate, index - 1))
            if previous is not None:
                figures.replies += 1
                figures.echoed += echoes(text, previous)
        figures.turns = len(texts)
        figures.loops = sum(has_loop(text) for text, _ in texts)
        figures.short = sum(len(text.strip()) < SHORT_CHARS for text, _ in texts)
        figures.at_length = sum(reason == "length" for _, reason in texts)
        if texts:
            figures.mean_chars = sum(len(text) for text, _ in texts) / len(texts)
        figures.consistency = swap_consistency(con)
        return figures
    finally:
        con.close()


def run_quickstart(
    repo: Path, db: Path, models: Path | None, topics: Path | None, label: str
) -> Figures:
    """Run the quickstart command from `repo` into a fresh `db`, timing the whole command; what
    it printed goes to the `.log` file beside `db`."""
    if db.exists():
        db.unlink()
    command = [
        sys.executable,
        "-m",
        "arena",
        "tournament",
        "--topics",
        str(topics or repo / "examples" / "quickstart.yaml"),
        "--db",
        str(db),
    ]
    if models is not None:
        command += ["--models", str(models)]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    db.with_suffix(".log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{label}: the command failed with exit status {done.returncode}")
    figures = read_figures(db, label, wall)
    figures.load = f"{load_before:.1f}-{load_after:.1f}"
    return figures


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%} ({part}/{whole})" if whole else "-"


def print_table(rows: list[Figures]) -> None:
    """One Markdown row per run."""
    print(
        "| run | load avg | wall s | debates done | FOR win rate (F/A/T) | loop share | "
        "echo share | short share | on-topic share | mean chars | at max tokens | "
        "swap consistency |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for f in rows:
        rate = "-" if f.for_rate is None else f"{f.for_rate:.0%}"
        wins = f"{f.winners['FOR']}/{f.winners['AGAINST']}/{f.winners['TIE']}"
        swap = (
            ", ".join(f"{judge} {_share(s, t)}" for judge, (s, t) in f.consistency.items()) or "-"
        )
        wall = "-" if f.wall_s is None else f"{f.wall_s:.1f}"
        print(
            f"| {f.label} | {f.load or '-'} | {wall} | {f.done}/{f.debates} | {rate} ({wins}) "
            f"| {_share(f.loops, f.turns)} | {_share(f.echoed, f.replies)} "
            f"| {_share(f.short, f.turns)} "
            f"| {_share(f.topical, f.turns)} | {f.mean_chars:.0f} "
            f"| {_share(f.at_length, f.turns)} | {swap} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dbs", nargs="*", type=Path, help="databases to read (nothing is run)")
    parser.add_argument("--repo", action="append", type=Path, default=[], help="checkout to run")
    parser.add_argument("--db", type=Path, help="the database to write (one --repo, one round)")
    parser.add_argument("--out", type=Path, help="folder for the databases of several runs")
    parser.add_argument("--rounds", type=int, default=1, help="runs per checkout, alternating")
    parser.add_argument("--models", type=Path, help="a models file (default: the embedded model)")
    parser.add_argument("--topics", type=Path, help="a topics file (default: the quickstart's)")
    args = parser.parse_args()

    rows = [read_figures(db) for db in args.dbs]
    repos = [repo.resolve() for repo in args.repo]
    if args.db is not None and (len(repos) != 1 or args.rounds != 1):
        parser.error("--db takes one --repo and one round; use --out for more")
    if repos and args.db is None and args.out is None:
        parser.error("--repo needs --db or --out")
    for round_ in range(args.rounds):
        for index, repo in enumerate(repos):
            label = f"{repo.name or repo} #{round_ + 1}"
            if args.db is not None:
                db = args.db.resolve()
            else:
                args.out.mkdir(parents=True, exist_ok=True)
                db = args.out.resolve() / f"quickstart-{index}-{repo.name}-{round_ + 1}.duckdb"
            models = args.models.resolve() if args.models else None
            topics = args.topics.resolve() if args.topics else None
            rows.append(run_quickstart(repo, db, models, topics, label))
            print(f"done: {label} -> {db}", file=sys.stderr, flush=True)
    if not rows:
        parser.error("give databases to read, or --repo to run")
    print_table(rows)


if __name__ == "__main__":
    main()
