"""`arena view`: write a static site of the recorded debates into a folder (`eval.site`).

The folder is refused before any reading when it is taken (without `--force`), holds the
database, or cannot be made; the site is written into a temporary folder beside it and renamed
into place (`arena.core.files.atomic_output`), so `--out` holds the whole site or what was there
before. While a tournament writes the file, the site is of a consistent snapshot of it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, EXIT_WRITE, fail, interruptible, reported


def view(
    db: Path = DB_OPTION,
    out: Path = typer.Option(Path("site"), "--out", "-o", help="The folder to write the site to."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out folder."),
) -> None:
    """Write a static HTML site of the debates: runs, debates tables, debate and model pages.

    No server and nothing fetched from elsewhere: open OUT/index.html in a browser.
    """
    import errno

    from arena.core.files import atomic_output, check_output
    from eval.site import write_site

    def stopped(name: str) -> str:
        return f"interrupted by {name}: {out} is as it was, and no scratch is left"

    with reported(), interruptible(stopped):
        check_output(out, force=force, protected=[db], directory=True)
        if not db.is_file():
            fail(f"--db: no file {db}")
        try:
            with atomic_output(out, force=force, protected=[db], directory=True) as tmp:
                tmp.mkdir()
                stats = write_site(db, tmp)
        except OSError as error:
            code = EXIT_WRITE if error.errno == errno.ENOSPC else 2
            fail(f"{out}: could not write the site: {error.strerror or error}", code=code)
    size = stats.bytes / 2**20
    typer.echo(
        f"wrote {out}/index.html: {stats.runs} run{'' if stats.runs == 1 else 's'},"
        f" {stats.debates} debates,"
        f" {stats.files} pages, {size:.1f} MiB"
    )
