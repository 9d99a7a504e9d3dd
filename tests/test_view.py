"""`arena view`: the static site of a sim tournament, opened in headless Chromium: the runs page
lists the run, a filter narrows a debates table, a debate page shows its turns and verdicts, and
the rank report's links reach the debate pages. Plus pagination, refusals and atomic writes."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from arena.cli import app
from eval import site as site_module
from eval.site import page_name, write_site
from eval.transcripts import DebateTranscript
from tests.conftest import query, sim_models, tournament

JUDGES = [
    {"name": "plain", "backend": "sim", "noise": 1.0},
    {"name": "swap", "backend": "sim", "noise": 1.5, "swap_check": True, "letter_bias": 1.0},
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("view")
    models = sim_models({"a": 1.0, "b": 0.0, "c": -1.0}, judges=JUDGES, turns=4)
    models["models"][1]["think_rate"] = 1.0
    result = tournament(tmp, models, 2)
    assert result.returncode == 0, result.stderr
    return tmp / "arena.duckdb"


def arena(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def site(db: Path) -> Path:
    out = db.parent / "site"
    code, stdout, stderr = arena("view", "--db", db, "--out", out)
    assert code == 0, stderr
    assert stdout.startswith(f"wrote {out}/index.html: 1 run, 12 debates, 17 pages, ")
    return out


def dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium serialises it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium package)")
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def rows_of(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>", body)


def test_pages_are_self_contained(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 17  # index, 1 debates page, 12 debates, 3 models
    for page in pages:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and " src=" not in text
        assert ("<script" in text) == page.name.startswith("debates-")
    assert not [p for p in site.parent.iterdir() if p.name.startswith(".arena-tmp-")]


def test_runs_page_lists_the_run(db: Path, site: Path, tmp_path: Path) -> None:
    [(run,)] = query(db, "SELECT run_id FROM runs")
    html = dom((site / "index.html").as_uri(), tmp_path / "profile")
    assert f'<a href="runs/{run}/debates-1.html">{run}</a>' in html


def test_a_filter_narrows_the_debates_table(db: Path, site: Path, tmp_path: Path) -> None:
    [(run,)] = query(db, "SELECT run_id FROM runs")
    page = site / "runs" / run / "debates-1.html"
    everything = rows_of(dom(page.as_uri(), tmp_path / "profile"))
    assert len(everything) == 12 and not any("hidden" in r for r in everything)
    pair = {
        d
        for (d,) in query(
            db, "SELECT debate_id FROM debates WHERE 'b' NOT IN (for_model, against_model)"
        )
    }
    filtered = rows_of(dom(page.as_uri() + "?model=a&vs=c", tmp_path / "profile"))
    shown = [r for r in filtered if "hidden" not in r]
    assert len(shown) == len(pair) == 4
    assert {re.search(r'data-for="(\w+)"', r).group(1) for r in shown} == {"a", "c"}  # type: ignore[union-attr]
    disagree = query(
        db,
        "SELECT count(DISTINCT debate_id) FROM (SELECT debate_id FROM verdicts WHERE valid"
        " GROUP BY debate_id HAVING count(DISTINCT winner) > 1)",
    )[0][0]
    flagged = rows_of(dom(page.as_uri() + "?disagree=1", tmp_path / "profile"))
    assert 0 < sum("hidden" not in r for r in flagged) == disagree < 12


def test_a_debate_page_shows_its_turns_and_verdicts(db: Path, site: Path, tmp_path: Path) -> None:
    [(debate_id, motion)] = query(
        db,
        "SELECT debate_id, motion FROM debates JOIN topics USING (run_id, topic_id)"
        " WHERE for_model = 'b' ORDER BY debate_id LIMIT 1",
    )
    html = dom((site / "debates" / f"{debate_id}.html").as_uri(), tmp_path / "profile")
    assert f"<h1>{motion}</h1>" in html
    turns = query(
        db, f"SELECT side, role FROM turns WHERE debate_id = '{debate_id}' ORDER BY turn_index"
    )
    headings = re.findall(r'<h3 class="(\w+)">Turn (\d) · (\w+) · (\w+) ·', html)
    assert [(side, role) for side, _, _, role in headings] == turns
    assert [int(i) for _, i, _, _ in headings] == [1, 2, 3, 4]
    assert html.count("<summary>thinking") == 2  # b speaks FOR: turns 1 and 3
    verdicts = query(db, f"SELECT judge, variant FROM verdicts WHERE debate_id = '{debate_id}'")
    table = html.split('<table id="verdicts">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 1 + len(verdicts) == 4
    for judge, variant in verdicts:
        assert f"<td>{judge}</td><td>{variant}:" in table


def test_the_rank_report_links_reach_debate_pages(db: Path, site: Path, tmp_path: Path) -> None:
    report = site.parent / "report.html"
    code, _, err = arena(
        "rank",
        "--db",
        db,
        "--format",
        "html",
        "--site",
        "site",
        "--out",
        report,
        "--force",
        "--bootstrap",
        "20",
    )
    assert code == 0, err
    html = dom(report.as_uri(), tmp_path / "profile")
    assert '<a href="site/models/a.html">a</a>' in html  # a leaderboard row
    cell = 'href="site/models/a.html#vs-c"'
    assert cell in html  # a heatmap cell: a against c
    model_page = dom((site / "models" / "a.html").as_uri(), tmp_path / "profile")
    section = model_page.split('id="vs-c"', 1)[1].split("</table>", 1)[0]
    linked = re.findall(r'href="\.\./debates/(\w+)\.html"', section)
    expected = query(
        db,
        "SELECT debate_id FROM debates WHERE 'b' NOT IN (for_model, against_model) ORDER BY 1",
    )
    assert sorted(linked) == [d for (d,) in expected]
    target = site / "debates" / f"{linked[0]}.html"
    assert linked[0] in dom(target.as_uri(), tmp_path / "profile")


def test_pages_split_a_run_and_debates_link_back(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(site_module, "PAGE_SIZE", 5)
    out = tmp_path / "site"
    out.mkdir()
    stats = write_site(db, out)
    [(run,)] = query(db, "SELECT run_id FROM runs")
    pages = sorted((out / "runs" / page_name(run)).iterdir())
    assert [p.name for p in pages] == ["debates-1.html", "debates-2.html", "debates-3.html"]
    listed = [re.findall(r"debates/(\w+)\.html", p.read_text()) for p in pages]
    assert [len(x) for x in listed] == [5, 5, 2]
    assert sorted(d for page in listed for d in page) == sorted(
        d for (d,) in query(db, "SELECT debate_id FROM debates")
    )
    last = (out / "debates" / f"{listed[2][0]}.html").read_text()
    assert f'runs/{run}/debates-3.html"' in last
    assert stats.debates == 12 and stats.files == 19
    assert stats.largest[1] == max(p.stat().st_size for p in out.rglob("*.html"))


def _workers_by_chunks_of_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forked workers for the test database's small run: chunks of 4 debates, 2 at once."""
    monkeypatch.setattr(site_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(site_module, "CHUNK", 4)
    monkeypatch.setattr(site_module, "_worker_count", lambda: 2)


_WRITE_DEBATES = site_module._write_debate_pages


def _marked(
    folder: Path, pages: list[tuple[DebateTranscript, site_module.DebateSummary]]
) -> list[tuple[str, int]]:
    """`_write_debate_pages` that leaves its process id in $ARENA_TEST_PIDS."""
    (Path(os.environ["ARENA_TEST_PIDS"]) / str(os.getpid())).touch()
    return _WRITE_DEBATES(folder, pages)


def test_forked_workers_write_the_same_site(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run's debate pages are written by forked workers, chunk by chunk as they are
    read: the same bytes as one process writes, from more than one process."""
    one = tmp_path / "one"
    one.mkdir()
    monkeypatch.setattr(site_module, "_worker_count", lambda: 1)
    write_site(db, one)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("ARENA_TEST_PIDS", str(pids))
    monkeypatch.setattr(site_module, "_write_debate_pages", _marked)
    _workers_by_chunks_of_4(monkeypatch)  # 12 debates: 3 chunks
    forked = tmp_path / "forked"
    forked.mkdir()
    stats = write_site(db, forked)
    workers = {int(p.name) for p in pids.iterdir()}
    assert len(workers) == 3 and os.getpid() not in workers  # a worker per chunk
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(forked) for p in forked.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (forked / f).read_bytes() for f in files)
    assert stats.files == len(files) == 17 and site_module._PENDING == []


def test_a_worker_that_cannot_write_stops_the_site(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's OSError comes back as the same error here (ENOSPC: `arena view` exits 4)."""
    monkeypatch.setattr(site_module, "_write_debate_pages", _full)
    _workers_by_chunks_of_4(monkeypatch)
    out = tmp_path / "site"
    out.mkdir()
    with pytest.raises(OSError) as raised:
        write_site(db, out)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == "debates/x.html"


def _slow(
    folder: Path, pages: list[tuple[DebateTranscript, site_module.DebateSummary]]
) -> list[tuple[str, int]]:
    time.sleep(120)
    raise AssertionError("a stopped worker must not get here")


def test_an_error_here_ends_the_workers(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error (or Ctrl-C) while a later chunk is read ends the workers still writing: the
    error comes at once, and no worker outlives `write_site`."""
    import multiprocessing

    calls: list[str] = []
    summarise = site_module.summarise

    def failing(t: DebateTranscript, page: int) -> site_module.DebateSummary:
        calls.append(t.debate.debate_id)
        if len(calls) > 4:  # the second chunk: the first one's worker is asleep
            raise KeyboardInterrupt
        return summarise(t, page)

    monkeypatch.setattr(site_module, "_write_debate_pages", _slow)
    monkeypatch.setattr(site_module, "summarise", failing)
    _workers_by_chunks_of_4(monkeypatch)
    out = tmp_path / "site"
    out.mkdir()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        write_site(db, out)
    assert time.monotonic() - started < 60 and multiprocessing.active_children() == []


def _full(
    folder: Path, pages: list[tuple[DebateTranscript, site_module.DebateSummary]]
) -> list[tuple[str, int]]:
    raise OSError(errno.ENOSPC, "No space left on device", "debates/x.html")


def test_refusals_leave_the_folder_as_it_was(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code, stdout, err = arena("view", "--db", db, "--out", out)
    assert code == 2 and stdout == ""
    assert err.startswith("error: ") and "--force" in err and len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    code, _, err = arena("view", "--db", db, "--out", db)
    assert code == 2 and "database" in err
    code, _, err = arena("view", "--db", tmp_path / "none.duckdb", "--out", tmp_path / "s")
    assert code == 2 and "none.duckdb" in err and not (tmp_path / "s").exists()
    other = tmp_path / "other.duckdb"  # a DuckDB file, but not one of ours
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE x (a INTEGER)")
    code, _, err = arena("view", "--db", other, "--out", tmp_path / "s")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "not a debate-arena database" in err and not (tmp_path / "s").exists()
    code, _, err = arena("view", "--db", db, "--out", out, "--force")
    assert code == 0, err
    assert not (out / "mine.txt").exists() and (out / "index.html").is_file()


def test_page_names_are_safe_and_distinct() -> None:
    names = ["sim-a", "org/model", "org:model", "a b", "../x", ""]
    stems = [page_name(n) for n in names]
    assert stems[0] == "sim-a"
    assert len(set(stems)) == len(stems)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", s) and not s.startswith(".") for s in stems)
