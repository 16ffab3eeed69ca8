"""Auditor commands: trial balance, journal, statements, exports, period close, db roles."""

from __future__ import annotations

import datetime as dt
import io
import sys
from contextlib import contextmanager

import click
from sqlalchemy.exc import DBAPIError

from .. import exports, periods
from .. import reports as rp
from ..money import format_minor
from .common import BadInput, db_option, emit, library_errors, to_json
from .core import db_group, open_book, parse_date

REPORT_FORMATS = ("table", "csv", "json", "xlsx")


def report_format_option(func):
    """``--format table|csv|json|xlsx``."""
    return click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="table",
                        show_default=True, help="Output format (xlsx needs --output).")(func)


def output_option(func):
    """``--output FILE`` (default: standard output)."""
    return click.option("--output", "-o", "output", type=click.Path(dir_okay=False, writable=True),
                        help="Write to FILE instead of standard output.")(func)


def seal_option(func):
    """``--no-seal``: read only, do not seal queued entries first."""
    return click.option("--no-seal", is_flag=True,
                        help="Do not seal queued entries into the chain first (read only).")(func)


def _book(db_url, no_seal: bool):
    book = open_book(db_url)
    if not no_seal:
        try:
            book.seal()
        except DBAPIError:
            pass  # a read-only role cannot seal; the footer counts what is unsealed
    return book


def _cannot_write(output: str, exc: OSError) -> BadInput:
    why = exc.strerror or str(exc)
    return BadInput(f"--output {output}: cannot write the file: {why}")


@contextmanager
def _output_file(output: str | None, *, newline: str | None = ""):
    """``--output FILE`` opened for writing (standard output without it).

    A file that cannot be created (a missing directory, no permission) is
    bad input: exit code 2 with the reason, not a traceback.
    """
    if not output:
        yield sys.stdout
        return
    try:
        fh = open(output, "w", encoding="utf-8", newline=newline)
    except OSError as exc:
        raise _cannot_write(output, exc) from exc
    with fh:
        yield fh


def _write_text(text: str, output: str | None) -> None:
    if output:
        with _output_file(output) as fh:
            fh.write(text)
        click.echo(f"written to {output}", err=True)
    else:
        click.echo(text, nl=False)


def _xlsx(report, output: str | None) -> None:
    from xlsxwriter.exceptions import FileCreateError

    if not output:
        raise BadInput("--format xlsx needs --output FILE")
    try:
        exports.write_xlsx(report, output)
    except FileCreateError as exc:
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], OSError) else OSError(str(exc))
        raise _cannot_write(output, cause) from exc
    click.echo(f"written to {output}", err=True)


def _csv(rows: list[dict], columns: list[str], footer: rp.Footer | None) -> str:
    """The rows as CSV (cells by :func:`ledger.exports.csv_row`), then the ``# `` footer."""
    buf = io.StringIO()
    writer = exports.csv_writer(buf)
    writer.writerow(columns)
    for r in rows:
        writer.writerow(exports.csv_row(r.get(c) for c in columns))
    if footer is not None:
        for line in footer.lines():
            buf.write(f"# {line}\n")
    return buf.getvalue()


def _table(rows: list[dict], columns: list[str], title: str, footer: rp.Footer) -> str:
    from .common import render_table

    return "\n".join([title, render_table(rows, columns), "", *footer.lines()]) + "\n"


def _out(report, rows, columns, title, fmt, output) -> None:
    if fmt == "xlsx":
        _xlsx(report, output)
    elif fmt == "json":
        _write_text(to_json(report.to_dict()) + "\n", output)
    elif fmt == "csv":
        _write_text(_csv(rows, columns, report.footer), output)
    else:
        _write_text(_table(rows, columns, title, report.footer), output)


def _amount(minor: int, currency: str):
    from ..money import from_minor

    return from_minor(minor, currency)


# --- trial balance ----------------------------------------------------------------
@click.command("trial-balance")
@click.option("--as-of", help="Balances at the end of this effective date (default: everything).")
@click.option("--depth", type=click.IntRange(min=1), help="Roll accounts up to this many code segments.")
@click.option("--all", "include_zero", is_flag=True, help="Include accounts with a zero balance.")
@report_format_option
@output_option
@seal_option
@db_option
@library_errors
def trial_balance_cmd(as_of, depth, include_zero, fmt, output, no_seal, db_url):
    """Trial balance as of a date: debit and credit columns with equal totals.

    The footer names the book, the as-of date, the last entry included, the
    chain hash at that point and when the report was produced. JSON carries
    minor-unit integers and decimal strings.

    Example:

        ledger trial-balance --as-of 2026-11-30 --depth 2 --format xlsx --output tb.xlsx
    """
    book = _book(db_url, no_seal)
    tb = rp.trial_balance(book, parse_date(as_of, "--as-of"), depth, include_zero=include_zero)
    rows = [{"account": r.account, "type": r.type, "currency": r.currency,
             "debit": _amount(r.debit_minor, r.currency),
             "credit": _amount(r.credit_minor, r.currency)} for r in tb.rows]
    for cur, (debit, credit) in sorted(tb.totals.items()):
        rows.append({"account": "TOTAL", "type": "", "currency": cur,
                     "debit": _amount(debit, cur), "credit": _amount(credit, cur)})
    title = f"Trial balance as of {tb.footer.as_of or 'all dates'}" + (
        f", rolled up to depth {depth}" if depth else "")
    _out(tb, rows, ["account", "type", "currency", "debit", "credit"], title, fmt, output)


# --- journal ------------------------------------------------------------------------
@click.command("journal")
@click.option("--from", "date_from", help="First effective date (default: the beginning).")
@click.option("--to", "date_to", help="Last effective date (default: the end).")
@click.option("--format", "fmt", type=click.Choice(exports.JOURNAL_FORMATS), default="csv",
              show_default=True, help="CSV (one row per posting) or JSON Lines (one entry per line).")
@output_option
@seal_option
@db_option
@library_errors
def journal_cmd(date_from, date_to, fmt, output, no_seal, db_url):
    """Every entry with its postings, kind, references, metadata, links and hashes.

    Streamed in constant memory, by effective date then entry id. As of
    --to: a commit, void or reversal dated later is not shown. The footer
    (book, as-of date, last entry included, chain hash, when produced)
    ends the file: "# " comment lines after the CSV rows, a last
    {"footer": ...} line in JSON Lines.

    Example:

        ledger journal --from 2026-11-01 --to 2026-11-30 --format jsonl --output nov.jsonl
    """
    dates = {"date_from": parse_date(date_from, "--from"), "date_to": parse_date(date_to, "--to")}
    rp.check_range(dates["date_from"], dates["date_to"])  # before any file is created
    book = _book(db_url, no_seal)
    with _output_file(output) as fh:
        count = exports.write_journal(book, fh, fmt=fmt, **dates)
    click.echo(f"{count} entries", err=True)


# --- statements ---------------------------------------------------------------------
@click.command("statement")
@click.argument("account")
@click.option("--from", "date_from", required=True, help="First effective date.")
@click.option("--to", "date_to", required=True, help="Last effective date.")
@report_format_option
@output_option
@seal_option
@db_option
@library_errors
def statement_cmd(account, date_from, date_to, fmt, output, no_seal, db_url):
    """An account's opening balance, each movement with the running balance, closing balance.

    Amounts are on the account's normal side: for a user wallet this is what
    the user is shown.

    Example:

        ledger statement liabilities:users:u1:available --from 2026-11-01 --to 2026-11-30
    """
    book = _book(db_url, no_seal)
    st = rp.account_statement(book, account, parse_date(date_from, "--from"),
                              parse_date(date_to, "--to"))
    cur = st.currency
    rows = [{"date": st.date_from, "entry": None, "kind": "opening balance", "reference": None,
             "memo": None, "amount": None, "balance": _amount(st.opening_minor, cur)}]
    rows += [{"date": mv.effective_date, "entry": mv.entry_id, "kind": mv.kind,
              "reference": mv.external_ref, "memo": mv.memo, "amount": _amount(mv.amount_minor, cur),
              "balance": _amount(mv.balance_minor, cur)} for mv in st.movements]
    rows.append({"date": st.date_to, "entry": None, "kind": "closing balance", "reference": None,
                 "memo": None, "amount": None, "balance": _amount(st.closing_minor, cur)})
    title = f"Statement of {account} ({cur}) from {st.date_from} to {st.date_to}"
    _out(st, rows, ["date", "entry", "kind", "reference", "memo", "amount", "balance"], title,
         fmt, output)


def _line_rows(report) -> list[dict]:
    rows = [{"account": ln.account, "type": ln.type, "currency": ln.currency,
             "amount": _amount(ln.amount_minor, ln.currency)} for ln in report.lines]
    for cur, totals in sorted(report.totals.items()):
        for name, value in totals.items():
            rows.append({"account": f"TOTAL {name.replace('_', ' ')}", "type": "",
                         "currency": cur, "amount": _amount(value, cur)})
    return rows


@click.command("balance-sheet")
@click.option("--as-of", help="At the end of this effective date (default: everything).")
@click.option("--depth", type=click.IntRange(min=1), help="Roll accounts up to this many code segments.")
@report_format_option
@output_option
@seal_option
@db_option
@library_errors
def balance_sheet_cmd(as_of, depth, fmt, output, no_seal, db_url):
    """Assets, liabilities, equity and earnings to date; checked to balance.

    Exits 4 when assets differ from liabilities + equity + net income.

    Example:

        ledger balance-sheet --as-of 2026-11-30 --depth 2
    """
    book = _book(db_url, no_seal)
    bs = rp.balance_sheet(book, parse_date(as_of, "--as-of"), depth)
    title = f"Balance sheet as of {bs.footer.as_of or 'all dates'}"
    _out(bs, _line_rows(bs), ["account", "type", "currency", "amount"], title, fmt, output)
    if not bs.balanced:
        for cur, t in sorted(bs.totals.items()):
            if t["difference"]:
                click.echo(f"NOT BALANCED in {cur}: assets - liabilities - equity - net income = "
                           f"{format_minor(t['difference'], cur)}", err=True)
        sys.exit(4)


@click.command("income-statement")
@click.option("--from", "date_from", required=True, help="First effective date.")
@click.option("--to", "date_to", required=True, help="Last effective date.")
@click.option("--depth", type=click.IntRange(min=1), help="Roll accounts up to this many code segments.")
@report_format_option
@output_option
@seal_option
@db_option
@library_errors
def income_statement_cmd(date_from, date_to, depth, fmt, output, no_seal, db_url):
    """Income and expenses of a period and the net income.

    Example:

        ledger income-statement --from 2026-11-01 --to 2026-11-30 --format json
    """
    book = _book(db_url, no_seal)
    inc = rp.income_statement(book, parse_date(date_from, "--from"), parse_date(date_to, "--to"),
                              depth)
    title = f"Income statement from {inc.date_from} to {inc.date_to}"
    _out(inc, _line_rows(inc), ["account", "type", "currency", "amount"], title, fmt, output)


# --- export -------------------------------------------------------------------------
@click.group("export")
def export_group():
    """Export the books for other tools.

    Example:

        ledger export beancount --output books.beancount && bean-check books.beancount
    """


@export_group.command("beancount")
@click.option("--memo", type=click.Choice(["include", "exclude"]), default="include",
              show_default=True, help="Memo accounts under Assets:Memo, or left out.")
@output_option
@seal_option
@db_option
@library_errors
def export_beancount_cmd(memo, output, no_seal, db_url):
    """The whole book as a beancount file that bean-check accepts.

    Account codes map to beancount names by type (assets:custody:bank ->
    Assets:Custody:Bank, risk_reserve -> RiskReserve); memo accounts go
    under Assets:Memo. Each open directive keeps the original code.

    Example:

        ledger export beancount --output books.beancount
    """
    book = _book(db_url, no_seal)
    with _output_file(output, newline=None) as fh:
        count = exports.write_beancount(book, fh, memo=memo)
    click.echo(f"{count} transactions", err=True)


# --- periods ------------------------------------------------------------------------
@click.group("period")
def period_group():
    """Close accounting periods and list the closes.

    Example:

        ledger period close 2026-11 --by auditor-li && ledger period list
    """


@period_group.command("close")
@click.argument("period")
@click.option("--by", "closed_by", help="Who closes it (recorded).")
@db_option
@library_errors
def period_close_cmd(period, closed_by, db_url):
    """Close PERIOD (YYYY-MM, YYYY or YYYY-MM-DD) through its last day.

    Afterwards no entry dated on or before that day can be posted:
    corrections go into an open period, referencing the original. Periods
    close in order: a date on or before the last close is refused, and so is
    a period that has not ended yet. The close writes a balance checkpoint
    of every account, so later as-of reports need not scan the history.

    Example:

        ledger period close 2026-11 --by finance-wang
    """
    label, through = periods.parse_period(period)
    book = open_book(db_url)
    today = dt.datetime.now(dt.timezone.utc).date()
    closed = book.close_period(through, label, closed_by, today=today)
    click.echo(f"closed {closed.label} through {closed.closed_through}: "
               f"{closed.checkpointed_accounts} account balances checkpointed")
    if closed.open_pending:
        shown = ", ".join(map(str, closed.open_pending))
        click.echo(f"warning: pending entries dated in the closed period are still open ({shown}"
                   f"{', ...' if len(closed.open_pending) == periods.OPEN_PENDING_SHOWN else ''}): their holds stay until "
                   f"each is completed with a date after {closed.closed_through}", err=True)


@period_group.command("list")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@library_errors
def period_list_cmd(db_url, fmt):
    """List the closed periods, oldest first.

    Example:

        ledger period list --format json
    """
    book = open_book(db_url)
    rows = [{"period": p.label, "closed_through": p.closed_through, "closed_at": p.closed_at,
             "closed_by": p.closed_by, "checkpoints": p.checkpointed_accounts}
            for p in book.periods()]
    emit(rows, ["period", "closed_through", "closed_at", "closed_by", "checkpoints"], fmt)


# --- database roles -----------------------------------------------------------------
@db_group.command("roles")
@click.option("--writer", default="ledger_writer", show_default=True, help="Writer role name.")
@click.option("--auditor", default="ledger_auditor", show_default=True, help="Auditor role name.")
@db_option
@library_errors
def db_roles_cmd(writer, auditor, db_url):
    """Create or refresh the writer (append only) and auditor (read only) roles. PostgreSQL only.

    The writer may SELECT and INSERT, update only running balances, and
    delete only from the seal queue; the auditor may only SELECT. Make
    log-in users members: CREATE ROLE app LOGIN IN ROLE ledger_writer.

    Example:

        ledger db roles --db postgresql+psycopg2://owner@db/ledger
    """
    from .. import db as dbmod
    from ..roles import RolesNotSupported, create_roles

    engine = dbmod.make_engine(db_url)
    try:
        if engine.dialect.name == "postgresql":
            dbmod.upgrade(engine)
        create_roles(engine, writer, auditor)
    except RolesNotSupported as exc:
        raise BadInput(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"roles ready: {writer} (append only), {auditor} (read only)")


# ``db roles`` joins the core ``db`` group (registered by the core commands).
COMMANDS = [trial_balance_cmd, journal_cmd, statement_cmd, balance_sheet_cmd, income_statement_cmd,
            export_group, period_group]
