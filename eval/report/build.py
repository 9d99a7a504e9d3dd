"""`build_report`: the battles read from the database, rated and judged, as a `RankReport`.

Each judged debate is a battle between its FOR and its AGAINST model. The main table rates the
debates' majority verdicts (`debates.winner`), or one judge's valid verdicts with `judge`; below
it every judge gets a table of its own (ratings per judge and pooled, side by side). Reading goes
through `storage.run_query` with bound parameters, so it works while a tournament is running.

A judge's verdict on a debate is its row with `verdicts.counts` (the one that decides, one per
judge and debate); a judge shown each debate in both neutral-label orders also has rows with
`variant` 'for_a' and 'for_b', which give its swap consistency. Judge names are never parsed.

The math lives in `eval.ratings` (Bradley-Terry, Elo), `eval.judges` (judge quality) and
`eval.graph` (majority graph and cycles); this module reads, rounds and fills the typed report
(`eval.report.models`), which every output is rendered from.

`build_comparison` (`arena rank --compare A B`) rates the same battles with the same bootstrap
rounds, then takes B - A within each round (`eval.compare`) and counts the two models' debates
against each other by side: a `Comparison`.

Simplified on purpose: the whole selection is read into memory (a few numbers per debate and
verdict), and rounding happens here, once, so the JSON, tables and figures show the same digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from arena.core.errors import UserError
from eval.compare import SideRecord, head_to_head_record, paired_difference
from eval.graph import cycles, edges, majority_graph
from eval.judges import MISSING, kappa, side_bias, swap_consistency, verbosity
from eval.judges import cohen_kappa as _cohen
from eval.ratings import (
    A_WINS,
    B_WINS,
    TIE,
    Counts,
    Ties,
    aggregate,
    bootstrap,
    elo_bootstrap,
    head_to_head,
    observed_scores,
    online_elo,
    win_matrices,
)
from eval.report.models import (
    COMPARISON_SCHEMA_VERSION,
    JSON_SCHEMA_VERSION,
    Agreement,
    BootstrapSettings,
    Comparison,
    EloOverTime,
    Filters,
    HeadToHead,
    JudgeQuality,
    Judges,
    MajorityCycle,
    MajorityEdge,
    MajorityGraph,
    ModelRating,
    PairAgreement,
    RankReport,
    RatingTable,
    SideAdvantage,
    SideCounts,
    SwapConsistency,
    WinMatrices,
)
from storage import run_query

TIMELINE_POINTS = 200

_OUTCOME = {"FOR": A_WINS, "AGAINST": B_WINS, "TIE": TIE}

Method = Literal["bt", "elo"]


@dataclass(frozen=True)
class RankOptions:
    """What to rate and how; every field has the CLI's default."""

    run_id: str | None = None
    judge: str | None = None
    topics: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    method: Method = "bt"
    ties: Ties = "half"
    rounds: int = 1000
    seed: int = 0
    level: float = 0.95
    anchor: str | None = None
    k: float = 32.0


Query = tuple[str, list[object]]
"""SQL with `?` placeholders, and the values bound to them in order."""

SWAP_VARIANTS = ("for_a", "for_b")
"""`verdicts.variant` of the two neutral-label readings: FOR called Debater A, then B."""


def selected_debates_sql(options: RankOptions) -> Query:
    """SQL (and parameters) for the ids and order keys of the finished debates the options
    select."""
    where = ["d.status = 'done'"]
    params: list[object] = []
    if options.run_id is not None:
        where.append("d.run_id = ?")
        params.append(options.run_id)
    if options.topics:
        where.append("list_contains(?::VARCHAR[], d.topic_id)")
        params.append(list(options.topics))
    if options.categories:
        where.append("list_contains(?::VARCHAR[], t.category)")
        params.append(list(options.categories))
    sql = (
        "select d.debate_id, d.for_model, d.against_model, d.winner, d.updated_at"
        " from debates d join topics t on t.run_id = d.run_id and t.topic_id = d.topic_id"
        f" where {' and '.join(where)}"
    )
    return sql, params


def _debates_sql(options: RankOptions) -> Query:
    """The selected debates in debate order, with the characters each side spoke."""
    selected, params = selected_debates_sql(options)
    sql = (
        f"with s as ({selected})"
        " select s.debate_id, s.for_model, s.against_model, s.winner,"
        " coalesce(sum(length(u.text)) filter (where u.side = 'FOR'), 0),"
        " coalesce(sum(length(u.text)) filter (where u.side = 'AGAINST'), 0)"
        " from s left join turns u on u.debate_id = s.debate_id"
        " group by s.debate_id, s.for_model, s.against_model, s.winner, s.updated_at"
        " order by s.updated_at, s.debate_id"
    )
    return sql, params


def _verdicts_sql(options: RankOptions) -> Query:
    """The verdicts on the selected debates that count, and the neutral-label readings."""
    selected, params = selected_debates_sql(options)
    sql = (
        f"with s as ({selected})"
        " select v.debate_id, v.judge, v.variant, v.counts, v.winner, v.valid from verdicts v"
        " semi join s on s.debate_id = v.debate_id"
        " where v.counts or list_contains(?::VARCHAR[], v.variant)"
    )
    return sql, [*params, list(SWAP_VARIANTS)]


@dataclass
class _Data:
    debate_ids: list[str]
    for_model: list[str]
    against_model: list[str]
    majority: list[str | None]
    for_chars: npt.NDArray[np.float64]
    against_chars: npt.NDArray[np.float64]
    judges: list[str]
    """The judges with a verdict that counts on a selected debate, sorted."""
    labels: npt.NDArray[np.int64]
    """Debates x judges: the verdict that counts, MISSING where there is no valid one."""
    verdicts: npt.NDArray[np.int64]
    """Debates x judges: 1 where the judge gave a verdict that counts, valid or not."""
    swaps: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]
    """Judge -> its labels with FOR called Debater A and with FOR called Debater B, for the
    judges read both ways."""


def _check_filters(db: Path, options: RankOptions) -> None:
    def known(sql: str, params: Sequence[object]) -> list[str]:
        return sorted(str(r[0]) for r in run_query(db, sql, params).rows)

    if options.run_id is not None:
        runs = known("select run_id from runs", [])
        if options.run_id not in runs:
            raise UserError(f"--run: no run {options.run_id!r} in {db} (runs: {', '.join(runs)})")
    scope = "(? is null or run_id = ?)"  # no run given: every run
    run = [options.run_id, options.run_id]
    if options.topics:
        topics = known(f"select distinct topic_id from topics where {scope}", run)
        for t in options.topics:
            if t not in topics:
                raise UserError(f"--topic: no topic {t!r} (topics: {', '.join(topics)})")
    if options.categories:
        cats = known(
            f"select distinct category from topics where {scope} and category is not null", run
        )
        for c in options.categories:
            if c not in cats:
                raise UserError(f"--category: no category {c!r} (categories: {', '.join(cats)})")


def _load(db: Path, options: RankOptions) -> _Data:
    _check_filters(db, options)
    rows = run_query(db, *_debates_sql(options)).rows
    ids = [str(r[0]) for r in rows]
    position = {d: i for i, d in enumerate(ids)}
    verdict_rows = run_query(db, *_verdicts_sql(options)).rows
    judges = sorted({str(r[1]) for r in verdict_rows if r[3]})
    column = {j: i for i, j in enumerate(judges)}
    labels = np.full((len(ids), len(judges)), MISSING, dtype=np.int64)
    given = np.zeros((len(ids), len(judges)), dtype=np.int64)
    readings: dict[tuple[str, str], npt.NDArray[np.int64]] = {}
    for debate_id, judge, variant, counts, winner, valid in verdict_rows:
        i = position[str(debate_id)]
        label = _OUTCOME[str(winner)] if valid and winner is not None else MISSING
        if counts:
            j = column[str(judge)]
            given[i, j] = 1
            labels[i, j] = label
        if variant in SWAP_VARIANTS:
            key = (str(judge), str(variant))
            if key not in readings:
                readings[key] = np.full(len(ids), MISSING, dtype=np.int64)
            readings[key][i] = label
    swaps = {
        judge: (readings[(judge, "for_a")], readings[(judge, "for_b")])
        for judge in sorted({judge for judge, _ in readings})
        if (judge, "for_a") in readings and (judge, "for_b") in readings
    }
    return _Data(
        debate_ids=ids,
        for_model=[str(r[1]) for r in rows],
        against_model=[str(r[2]) for r in rows],
        majority=[None if r[3] is None else str(r[3]) for r in rows],
        for_chars=np.array([float(r[4]) for r in rows]),
        against_chars=np.array([float(r[5]) for r in rows]),
        judges=judges,
        labels=labels,
        verdicts=given,
        swaps=swaps,
    )


def _round(x: float | None, digits: int = 1) -> float | None:
    """`x` rounded for the report; None where it is undefined (None, NaN, infinite)."""
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _matrix(m: npt.NDArray[np.float64]) -> list[list[float | None]]:
    return [[_round(float(v), 4) for v in row] for row in m]


@dataclass(frozen=True)
class _Rated:
    """A leaderboard and what the main table's figures need from its fit."""

    table: RatingTable
    order: list[int]
    """Model indices in rank order."""
    counts: Counts
    predicted: npt.NDArray[np.float64]
    observed: npt.NDArray[np.float64]
    ratings: npt.NDArray[np.float64]
    """Unrounded ratings by model index (the leaderboard's)."""
    samples: npt.NDArray[np.float64]
    """The bootstrap rounds' ratings (rounds x models), for paired comparisons."""


def _rate(
    names: list[str],
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    outcome: npt.NDArray[np.int64],
    options: RankOptions,
) -> _Rated:
    """One leaderboard: rows per model in rank order, and the FOR-side advantage."""
    n = len(names)
    counts = aggregate(a, b, outcome, n)
    anchor = names.index(options.anchor) if options.anchor in names else None
    rng = np.random.default_rng(options.seed)
    side: SideAdvantage | None = None
    if options.method == "bt":
        if options.ties == "davidson" and not np.any(outcome == TIE):
            raise UserError("--ties davidson: these battles have no ties; use --ties half")
        result = bootstrap(
            counts,
            n,
            options.rounds,
            rng=rng,
            ties=options.ties,
            anchor=anchor,
            level=options.level,
        )
        ratings, lower, upper, rank = result.fit.ratings, result.lower, result.upper, result.rank
        side = SideAdvantage(
            for_advantage=_round(result.fit.side_advantage),
            lower=_round(result.side_lower),
            upper=_round(result.side_upper),
        )
        predicted, observed = win_matrices(result.fit, counts, n)
        tie_param = result.fit.tie_param
        samples = result.samples
    else:
        elo = elo_bootstrap(a, b, outcome, n, options.rounds, rng=rng, k=options.k)
        shift = elo.ratings[anchor] - 1000.0 if anchor is not None else 0.0
        ratings, lower, upper = elo.ratings - shift, elo.lower - shift, elo.upper - shift
        rank = elo.rank
        d = ratings[:, None] - ratings[None, :]
        predicted = 1.0 / (1.0 + 10.0 ** (-d / 400.0))
        np.fill_diagonal(predicted, np.nan)
        observed = observed_scores(counts, n)
        tie_param = None
        samples = elo.samples - shift
    points, games = head_to_head(counts, n)
    played, score = games.sum(axis=1), points.sum(axis=1)
    order = sorted(range(n), key=lambda i: (int(rank[i]), -ratings[i], names[i]))
    table = RatingTable(
        battles=int(a.size),
        models=[
            ModelRating(
                rank=int(rank[i]),
                model=names[i],
                rating=_round(ratings[i]),
                lower=_round(lower[i]),
                upper=_round(upper[i]),
                debates=int(played[i]),
                win_rate=_round(score[i] / played[i], 4) if played[i] else None,
            )
            for i in order
        ],
        side_advantage=side,
        tie_param=_round(tie_param, 4) if tie_param is not None else None,
    )
    return _Rated(table, order, counts, predicted, observed, ratings, samples)


def _matrices(rated: _Rated, names: list[str]) -> WinMatrices:
    perm = np.array(rated.order)
    return WinMatrices(
        models=[names[i] for i in rated.order],
        predicted=_matrix(rated.predicted[np.ix_(perm, perm)]),
        observed=_matrix(rated.observed[np.ix_(perm, perm)]),
    )


def _elo_over_time(
    rated: _Rated,
    names: list[str],
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    outcome: npt.NDArray[np.int64],
    k: float,
) -> EloOverTime:
    series = online_elo(a, b, outcome, len(names), k=k)
    picks = np.unique(np.linspace(0, a.size - 1, min(TIMELINE_POINTS, a.size)).astype(int))
    return EloOverTime(
        k=k,
        battle=[int(t) + 1 for t in picks],
        ratings={names[i]: [_round(series[t, i]) for t in picks] for i in rated.order},
    )


def _graph(rated: _Rated, names: list[str]) -> MajorityGraph:
    graph = majority_graph(rated.counts, names)
    found, truncated = cycles(graph)
    return MajorityGraph(
        edges=[
            MajorityEdge(winner=e.winner, loser=e.loser, points=e.points, debates=e.debates)
            for e in edges(graph)
        ],
        cycles=[MajorityCycle(models=c.models, debates=c.debates) for c in found],
        cycles_truncated=truncated,
    )


def _models(data: _Data, labels: Sequence[int]) -> list[str]:
    """The models of the debates that have a label, sorted."""
    seen = [i for i, y in enumerate(labels) if y != MISSING]
    return sorted({data.for_model[i] for i in seen} | {data.against_model[i] for i in seen})


def _battles(
    data: _Data, labels: Sequence[int], names: list[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    index = {name: i for i, name in enumerate(names)}
    keep = [i for i, y in enumerate(labels) if y != MISSING]
    a = np.array([index[data.for_model[i]] for i in keep], dtype=np.int64)
    b = np.array([index[data.against_model[i]] for i in keep], dtype=np.int64)
    return a, b, np.array([labels[i] for i in keep], dtype=np.int64)


def _judge_quality(data: _Data) -> Judges:
    judges = data.judges
    rows = []
    for j, judge in enumerate(judges):
        y = data.labels[:, j]
        given = int(data.verdicts[:, j].sum())
        valid = int(np.sum(y != MISSING))
        bias = side_bias(y)
        verb = verbosity(y, data.for_chars, data.against_chars)
        rows.append(
            JudgeQuality(
                judge=judge,
                verdicts=given,
                valid=valid,
                invalid_rate=_round((given - valid) / given, 4) if given else None,
                ties=bias.ties,
                for_rate=_round(bias.for_rate, 4),
                for_lower=_round(bias.lower, 4),
                for_upper=_round(bias.upper, 4),
                side_biased=bias.biased,
                verbosity_r=_round(verb.correlation, 4),
                verbosity_p=_round(verb.p_value, 4),
                longer_side_won=_round(verb.longer_side_won, 4),
            )
        )
    agreement = Agreement(statistic=None, kappa=None, debates=0, pairwise=[])
    if len(judges) >= 2:
        k, n, stat = kappa(data.labels)
        pairwise = []
        for p in range(len(judges)):
            for q in range(p + 1, len(judges)):
                kpq, npq = _cohen(data.labels[:, p], data.labels[:, q])
                pairwise.append(
                    PairAgreement(a=judges[p], b=judges[q], kappa=_round(kpq, 4), n=npq)
                )
        agreement = Agreement(
            statistic="cohen" if stat == "cohen" else "fleiss",
            kappa=_round(k, 4),
            debates=n,
            pairwise=pairwise,
        )
    swaps = []
    for judge, (for_a, for_b) in data.swaps.items():
        s = swap_consistency(for_a, for_b)
        swaps.append(
            SwapConsistency(
                judge=judge, agreement=_round(s.agreement, 4), kappa=_round(s.kappa, 4), n=s.n
            )
        )
    return Judges(per_judge=rows, agreement=agreement, swap=swaps)


def _main_battles(
    db: Path, options: RankOptions
) -> tuple[
    _Data,
    list[str],
    tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
]:
    """The selection read, the main table's models (sorted) and its battles."""
    data = _load(db, options)
    if options.judge is not None and options.judge not in data.judges:
        listing = ", ".join(data.judges) or "none"
        raise UserError(f"--judge: no verdicts by {options.judge!r} (judges: {listing})")
    if options.judge is None:
        main_labels = [MISSING if w is None else _OUTCOME[w] for w in data.majority]
    else:
        main_labels = data.labels[:, data.judges.index(options.judge)].tolist()
    names = _models(data, main_labels)
    if len(names) < 2:
        raise UserError(f"no judged debates between two or more models in {db}")
    if options.anchor is not None and options.anchor not in names:
        raise UserError(f"--anchor: no model {options.anchor!r} (models: {', '.join(names)})")
    return data, names, _battles(data, main_labels, names)


def build_report(db: Path, options: RankOptions) -> RankReport:
    """Everything `arena rank` shows (schema in docs/rank.md, generated from the types).

    Raises UserError for filters that name nothing in the database, or when fewer than two models
    have a judged debate.
    """
    data, names, (a, b, outcome) = _main_battles(db, options)
    main = _rate(names, a, b, outcome, options)
    per_judge: dict[str, RatingTable] = {}
    for j, judge in enumerate(data.judges):
        labels = data.labels[:, j].tolist()
        judged = _models(data, labels)
        ja, jb, jo = _battles(data, labels, judged)
        if len(judged) >= 2 and (
            options.method == "elo" or options.ties == "half" or np.any(jo == TIE)
        ):
            per_judge[judge] = _rate(judged, ja, jb, jo, options).table
    return RankReport(
        schema_version=JSON_SCHEMA_VERSION,
        method="bradley-terry" if options.method == "bt" else "elo",
        ties=options.ties if options.method == "bt" else "half",
        scale=(
            "elo: 400 points per factor 10 in odds, "
            + (f"{options.anchor} at 1000" if options.anchor else "mean 1000")
        ),
        judge=options.judge or "majority",
        run_id=options.run_id,
        filters=Filters(topics=list(options.topics), categories=list(options.categories)),
        debates=len(data.debate_ids),
        bootstrap=BootstrapSettings(rounds=options.rounds, seed=options.seed, level=options.level),
        battles=main.table.battles,
        models=main.table.models,
        side_advantage=main.table.side_advantage,
        tie_param=main.table.tie_param,
        matrices=_matrices(main, names),
        elo_over_time=_elo_over_time(main, names, a, b, outcome, options.k),
        graph=_graph(main, names),
        per_judge=per_judge,
        judges=_judge_quality(data),
    )


def _side(record: SideRecord) -> SideCounts:
    return SideCounts(
        battles=record.battles,
        first_wins=record.first_wins,
        second_wins=record.second_wins,
        ties=record.ties,
    )


def build_comparison(db: Path, options: RankOptions, first: str, second: str) -> Comparison:
    """`second`'s rating minus `first`'s, from the same bootstrap rounds as the leaderboard that
    `build_report` would show with these options (paired within each round: `eval.compare`),
    and their head-to-head record by side.

    Raises UserError for a model that has no judged debate in the selection, and for the same
    model twice (besides `build_report`'s own errors).
    """
    if first == second:
        raise UserError(f"--compare: give two different models, not {first!r} twice")
    _, names, (a, b, outcome) = _main_battles(db, options)
    for name in (first, second):
        if name not in names:
            raise UserError(
                f"--compare: no judged debates of {name!r} in the selection "
                f"(models: {', '.join(names)})"
            )
    i, j = names.index(first), names.index(second)
    rated = _rate(names, a, b, outcome, options)
    diff = paired_difference(rated.samples, rated.ratings, i, j, options.level)
    record = head_to_head_record(a, b, outcome, i, j)
    rows = {row.model: row for row in rated.table.models}
    return Comparison(
        schema_version=COMPARISON_SCHEMA_VERSION,
        first=first,
        second=second,
        method="bradley-terry" if options.method == "bt" else "elo",
        judge=options.judge or "majority",
        run_id=options.run_id,
        filters=Filters(topics=list(options.topics), categories=list(options.categories)),
        bootstrap=BootstrapSettings(rounds=options.rounds, seed=options.seed, level=options.level),
        battles=rated.table.battles,
        ratings=[rows[first], rows[second]],
        difference=_round(diff.difference),
        lower=_round(diff.lower),
        upper=_round(diff.upper),
        b_above=_round(diff.above, 4),
        head_to_head=HeadToHead(
            first_for=_side(record.first_for),
            second_for=_side(record.second_for),
            total=_side(record.total),
        ),
    )
