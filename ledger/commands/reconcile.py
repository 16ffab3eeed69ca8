"""CLI of the daily reconciliation: ``ledger reconcile`` and ``ledger breaks``."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from contextlib import suppress
from pathlib import Path

import click

from .common import db_option, emit, format_option, library_errors, to_json
from .core import open_book, parse_date

EXIT_BREAKS = 3


def _writable_file(ctx, param, value):
    """An output file, checked before anything is read or written: its directory
    exists and can be written to, and the file, if there already, can be replaced."""
    if value is None:
        return value
    path = Path(value)
    folder = path.parent
    if not folder.is_dir():
        problem = (f"{folder} is not a directory" if folder.exists()
                   else f"directory {folder} does not exist")
        raise click.BadParameter(f"cannot write {value}: {problem}", ctx, param)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write {value}: directory {folder} is not writable", ctx, param)
    if path.exists() and not os.access(path, os.W_OK):
        raise click.BadParameter(f"cannot write {value}: the file is not writable", ctx, param)
    return value


def _write_report(run, path: str, text: str, what: str) -> None:
    """Write a report of a run that is already kept: a failure now says under which id
    the run was saved and that the report was not written, instead of a traceback."""
    target = Path(path)
    existed = target.exists()
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        if not existed:
            with suppress(OSError):
                target.unlink()          # no half-written report left behind
        kept = "dry run, nothing was kept" if run.dry_run else f"run {run.run_id} was saved"
        raise click.ClickException(f"{kept}, but the {what} was not written to {path}: "
                                   f"{exc.strerror or exc}") from exc


@click.command("reconcile")
@click.argument("statements", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--account", default="assets:custody:bank", show_default=True,
              help="The ledger account the statement is of.")
@click.option("--date", "date_", help="Statement business day (default: the statement's last day).")
@click.option("--dry-run", is_flag=True, help="Do everything, keep nothing.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
              help="Column-mapping file for another bank's CSV layout.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), callback=_writable_file,
              help="Also write the self-contained HTML report here (its directory must exist).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr while files are read and lines imported "
                   "(default: when attached to a terminal and printing a table).")
@db_option
@format_option
@library_errors
def reconcile_cmd(statements, account, date_, dry_run, mapping, html_path, progress, db_url, fmt):
    """Import bank STATEMENTS, match them to the ledger, report every break.

    Exit code 0 when fully reconciled, 3 when breaks remain or the balance does
    not reconcile (or cannot be proved: no closing balance), 2 on bad input (an unwritable --html path included: nothing
    is imported then), 1 when the run was kept but its report could not be written.

    Example:

        ledger reconcile custody-20261122.csv --html recon-20261122.html
    """
    from reconcile import report
    from reconcile.runs import parse_files, reconcile_parsed

    # The date and the files are checked before the database is opened: a refused
    # command neither creates nor migrates one.
    day = parse_date(date_, "--date")
    if progress is None:
        progress = sys.stderr.isatty() and fmt == "table"
    if progress:
        parsed = []
        sizes = {p: Path(p).stat().st_size for p in statements}
        with click.progressbar(statements, label="reading  ", file=sys.stderr,
                               length=sum(sizes.values()) or 1,
                               item_show_func=lambda p: p and Path(p).name) as files:
            for path in statements:   # each file parsed and proved before anything is written
                parsed += parse_files([path], mapping=mapping)
                files.update(sizes[path], path)
        total = sum(len(s.lines) for _, pf in parsed for s in pf.statements)
        with click.progressbar(length=total or 1, label="importing", file=sys.stderr,
                               show_pos=True) as lines:
            run = reconcile_parsed(open_book(db_url), parsed, account=account, statement_date=day,
                                   dry_run=dry_run, progress=lines.update)
    else:
        parsed = parse_files(statements, mapping=mapping)
        run = reconcile_parsed(open_book(db_url), parsed, account=account, statement_date=day,
                               dry_run=dry_run)
    if fmt == "json":
        click.echo(report.to_json(run))
    elif fmt == "csv":
        click.echo(report.to_csv(run), nl=False)
    else:
        for line in report.summary_lines(run):
            click.echo(line)
        rows = report.break_rows(run)
        if rows:
            click.echo("")
            emit(rows, ["break_id", "type", "bank_side", "ledger_side"], "table")
    if html_path:
        _write_report(run, html_path, report.to_html(run), "HTML report")
        click.echo(f"HTML report: {html_path}", err=fmt != "table")
    if not run.reconciled:
        sys.exit(EXIT_BREAKS)


@click.group("breaks")
def breaks_group():
    """Work the breaks found by reconciliation runs.

    Example:

        ledger breaks list
    """


def _break_row(b) -> dict:
    from ..money import DEFAULT_CURRENCY, from_minor

    resolution = _resolution(b.resolution) or {}
    return {"id": b.id, "date": b.statement_date, "type": b.type, "state": b.state,
            "amount": from_minor(b.amount_minor, b.detail.get("currency", DEFAULT_CURRENCY)),
            "bank_lines": ",".join(map(str, b.bank_line_ids)),
            "postings": ",".join(map(str, b.posting_ids)),
            "resolved_by": resolution.get("resolved_by"), "resolved_at": resolution.get("resolved_at"),
            "detail": b.detail.get("detail", "")}


def _resolution(resolution: dict | None) -> dict | None:
    """A stored resolution with its time (naive UTC in the database) marked as UTC."""
    if resolution is None:
        return None
    return {**resolution, "resolved_at": _utc(resolution["resolved_at"])}


def _utc(at: dt.datetime) -> str:
    """ISO 8601 with the UTC designator, as the journal export writes its times."""
    if at.tzinfo is not None:
        at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"


@breaks_group.command("list")
@click.option("--all", "all_", is_flag=True, help="Include resolved, cleared and superseded breaks.")
@db_option
@format_option
@library_errors
def breaks_list_cmd(all_, db_url, fmt):
    """List open breaks (or all of them).

    Example:

        ledger breaks list --format csv
    """
    from reconcile.runs import list_breaks

    rows = [_break_row(b) for b in list_breaks(open_book(db_url), state=None if all_ else "open")]
    emit(rows, ["id", "date", "type", "state", "amount", "bank_lines", "postings", "resolved_by",
                "resolved_at", "detail"], fmt)


@breaks_group.command("show")
@click.argument("break_id", type=int)
@db_option
@library_errors
def breaks_show_cmd(break_id, db_url):
    """Show one break, both sides (the bank lines with the bank's raw text, the postings
    with their entries' kind and reference) and its resolution, as JSON.

    Example:

        ledger breaks show 7
    """
    from reconcile.runs import list_breaks

    found = list_breaks(open_book(db_url), state=None, break_id=break_id)
    if not found:
        raise click.ClickException(f"no break {break_id}")   # not there: exit 1
    b = found[0]
    click.echo(to_json({**_break_row(b), "bank_lines": b.bank_lines, "ledger_postings": b.postings,
                        "detail": b.detail, "resolution": _resolution(b.resolution)}))


@breaks_group.command("resolve")
@click.argument("break_id", type=int)
@click.option("--action", required=True, type=click.Choice(["adjust", "accept-timing", "match-with"]))
@click.option("--note", required=True, help="Why.")
@click.option("--by", "by", required=True, help="Who resolves it.")
@click.option("--account", help="For adjust: the platform-owned account that takes the difference.")
@click.option("--with", "with_id", type=int, help="For match-with: the posting or bank line id.")
@click.option("--pair", "pair", metavar="BANK_LINE:POSTING",
              help="For match-with on a break with several items on both sides: the bank line "
                   "and the posting that belong together.")
@db_option
@library_errors
def breaks_resolve_cmd(break_id, action, note, by, account, with_id, pair, db_url):
    """Resolve a break, recording who, when and why.

    Example:

        ledger breaks resolve 7 --action adjust --account expenses:platform:bank_fees --note "bank fee for Nov" --by "Li Na"
    """
    from reconcile.runs import resolve

    ids = None
    if pair is not None:
        bank_id, _, posting_id = pair.partition(":")
        if not (bank_id.strip().isdigit() and posting_id.strip().isdigit()):
            raise click.BadParameter(f"{pair!r}: give BANK_LINE:POSTING, two ids", param_hint="--pair")
        ids = (int(bank_id), int(posting_id))
    b = resolve(open_book(db_url), break_id, action=action, note=note, by=by, account=account,
                match_with=with_id, pair=ids)
    resolution = json.dumps(_resolution(b.resolution), default=str, ensure_ascii=False)
    click.echo(f"break {b.id} {b.state}: {resolution}")


COMMANDS = [reconcile_cmd, breaks_group]
