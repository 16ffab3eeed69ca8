"""Reports of a reconciliation run: terminal table, CSV, JSON and one HTML file.

The HTML report is self-contained (inline CSS, no scripts, no outside
resources) so finance staff can open it in any browser or mail it on: a
summary, the balance proof, every break with the bank's own raw text, and the
matched pairs. Every break names both sides: what the bank shows and what the
ledger shows.

Reports are built with the cyclic garbage collector paused. A run leaves
millions of statement lines and matching items alive, and named tuples stay
tracked by the collector for good (only exact tuples get untracked), so each
full collection a report's allocations set off walked all of them: at a
million lines that was 1.5 s of a 0.3 s CSV report. A report's values hold no
reference cycles.
"""

from __future__ import annotations

import html
import io
import json
from decimal import Decimal
from functools import wraps

from ledger.exports import csv_row, csv_writer
from ledger.money import format_minor

from .runs import RunResult
from .statements.source import gc_paused


def _collector_paused(report):
    @wraps(report)
    def build(*args, **kwargs):
        with gc_paused():
            return report(*args, **kwargs)
    return build

BREAK_LABELS = {
    "in_bank_not_in_ledger": "in the bank statement, not in the ledger",
    "in_ledger_not_in_bank": "in the ledger, not in the bank statement",
    "amount_mismatch": "same reference, different amounts",
    "duplicate": "repeated bank line",
    "date_outside_window": "same reference and amount, dates too far apart",
    "in_transit": "in the ledger, expected at the bank on the next business day",
    "ambiguous": "several equal candidates: not matched by guess",
}


def _money(minor, currency: str = "CNY") -> str:
    return "" if minor is None else format_minor(minor, currency, grouping=True)


@_collector_paused
def break_rows(run: RunResult) -> list[dict]:
    """One dict per break, both sides named."""
    rows = []
    for i, b in enumerate(run.result.breaks):
        bank = [run.bank[x] for x in b.bank_ids if x in run.bank]
        ledger = [run.ledger[x] for x in b.ledger_ids if x in run.ledger]
        rows.append({
            "break_id": run.break_ids[i] if i < len(run.break_ids) else None,
            "type": b.type,
            "meaning": BREAK_LABELS.get(b.type, b.type),
            "bank_line_ids": list(b.bank_ids),
            "posting_ids": list(b.ledger_ids),
            "bank_side": "; ".join(f"line {x['id']} {x['booking_date']} {_money(x['amount_minor'], b.currency)} "
                                   f"ref {x['bank_ref'] or '-'}" for x in bank) or "nothing",
            "ledger_side": "; ".join(f"posting {x['id']} (entry {x['entry_id']}, {x['kind']}) "
                                     f"{x['effective_date']} {_money(x['amount_minor'], b.currency)} "
                                     f"ref {x['external_ref'] or '-'}" for x in ledger) or "nothing",
            "bank_amount": format_minor(b.bank_amount_minor, b.currency),
            "ledger_amount": format_minor(b.ledger_amount_minor, b.currency),
            "detail": b.detail,
            "suggestion": (f"{b.suggestion.kind}: postings {', '.join(map(str, b.suggestion.ledger_ids))}"
                           if b.suggestion else ""),
            "raw": "\n".join(x["raw"] for x in bank),
        })
    return rows


@_collector_paused
def match_rows(run: RunResult) -> list[dict]:
    """One dict per match."""
    return [{"rule": mt.rule, "bank_lines": ", ".join(map(str, mt.bank_ids)),
             "postings": ", ".join(map(str, mt.ledger_ids)),
             "amount": format_minor(mt.amount_minor, mt.currency), "basis": mt.basis}
            for mt in run.result.matches]


@_collector_paused
def summary_lines(run: RunResult) -> list[str]:
    """The run in a few lines for the terminal."""
    s = run.result.summary
    p = run.balance
    cur = p.get("currency", "CNY")
    lines = [
        f"{'DRY RUN (nothing kept): ' if run.dry_run else ''}reconciliation of {run.account} "
        f"for {run.statement_date}" + (f", run {run.run_id}" if run.run_id else ""),
        "files: " + "; ".join(f"{f[0]} ({f[1]}, {f[3]} new lines, {f[4]} already imported)"
                              for f in run.imported.files),
        f"bank lines {s.bank_lines}, matched {s.matched_bank_lines}; ledger postings "
        f"{s.ledger_items}, matched {s.matched_ledger_items}",
        "matches: " + (", ".join(f"{r.rule} {r.count}" for r in s.matches) or "none"),
        "breaks: " + (", ".join(f"{b.type} {b.count}" for b in s.breaks) or "none"),
    ]
    if p.get("bank_closing_minor") is not None:
        lines.append(
            f"balance: bank closing {_money(p['bank_closing_minor'], cur)}, ledger "
            f"{_money(p['ledger_balance_minor'], cur)}, difference {_money(p['difference_minor'], cur)}, "
            f"explained by breaks {_money(p['explained_minor'], cur)}, unexplained "
            f"{_money(p['unexplained_minor'], cur)}")
    else:
        lines.append(f"balance: ledger {_money(p['ledger_balance_minor'], cur)}; {p.get('note', '')}")
    kept = [f"{len(ids)} {what}" for what, ids in (
        ("bank line(s)", run.kept.get("bank_line_ids", ())),
        ("posting(s)", run.kept.get("posting_ids", ()))) if ids]
    if kept:
        lines.append(f"kept for the next run: {' and '.join(kept)} an earlier run left open, dated "
                     f"after {run.statement_date} (their breaks stay open: `ledger breaks list`)")
    status = verdict(run)
    if run.result.breaks:
        status[0] += ": work them with `ledger breaks list`"
    return lines + status


def verdict(run: RunResult) -> list[str]:
    """What the run came to: ``["RECONCILED"]``, or each thing that keeps it from
    reconciling (breaks that remain; a balance difference no break explains; no
    closing balance to prove the ledger's against)."""
    if run.reconciled:
        return ["RECONCILED"]
    unexplained = run.balance.get("unexplained_minor")
    found = []
    if run.result.breaks:
        found.append(f"{len(run.result.breaks)} BREAK(S) REMAIN")
    if unexplained:
        found.append(f"BALANCE DOES NOT RECONCILE: {_money(unexplained, run.balance.get('currency', 'CNY'))} "
                     "of the difference between bank and ledger is explained by no break")
    if not run.balance_proved:
        found.append("BALANCE NOT PROVED: the statement gives no closing balance to prove the "
                     "ledger's against")
    return found


@_collector_paused
def to_json(run: RunResult) -> str:
    """The run as JSON: minor-unit integers and decimal strings, never floats."""
    return json.dumps({
        "run_id": run.run_id, "dry_run": run.dry_run, "account": run.account,
        "statement_date": run.statement_date.isoformat(), "reconciled": run.reconciled,
        "balance": run.balance, "files": [list(f) for f in run.imported.files],
        "matches": match_rows(run), "breaks": break_rows(run),
    }, ensure_ascii=False, indent=2, default=str)


@_collector_paused
def to_csv(run: RunResult) -> str:
    """The breaks as CSV (one row each, both sides named), written by the rule of every
    CSV the ledger writes (:func:`ledger.exports.csv_row`): the bank's own text (its
    description, its raw lines) never runs as a formula in a spreadsheet, and a line
    break inside it is written ``\\n``, so each break is one line."""
    buf = io.StringIO()
    columns = ["break_id", "type", "meaning", "bank_line_ids", "posting_ids", "bank_side",
               "ledger_side", "bank_amount", "ledger_amount", "detail", "suggestion", "raw"]
    writer = csv_writer(buf)
    writer.writerow(columns)
    for row in break_rows(run):
        row["bank_line_ids"] = " ".join(map(str, row["bank_line_ids"]))   # ids a space apart
        row["posting_ids"] = " ".join(map(str, row["posting_ids"]))
        for amount in ("bank_amount", "ledger_amount"):   # numbers, not text
            row[amount] = Decimal(row[amount])
        writer.writerow(csv_row(map(row.get, columns)))
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
margin:2em;color:#1b1f24}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;width:100%;font-size:.9em}th,td{border:1px solid #d0d7de;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;
font-variant-numeric:tabular-nums}pre{margin:0;white-space:pre-wrap;font-size:.85em;background:#f6f8fa}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#cf222e;font-weight:bold}
"""


@_collector_paused
def to_html(run: RunResult) -> str:
    """A self-contained HTML report of the run."""
    e = html.escape
    p = run.balance
    cur = p.get("currency", "CNY")
    status = "".join(f'<p class="{"ok" if run.reconciled else "bad"}">{e(v)}</p>' for v in verdict(run))
    proof_rows = [("Bank closing balance", _money(p.get("bank_closing_minor"), cur) or "not given"),
                  ("Ledger balance of " + run.account, _money(p["ledger_balance_minor"], cur)),
                  ("Difference", _money(p.get("difference_minor"), cur)),
                  ("Explained by breaks", _money(p.get("explained_minor"), cur)),
                  ("Unexplained", _money(p.get("unexplained_minor"), cur))]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Reconciliation {e(str(run.statement_date))}</title><style>{_CSS}</style></head><body>",
        f"<h1>Custody reconciliation — {e(run.account)} — {e(str(run.statement_date))}</h1>",
        status,
        "<h2>Summary</h2><ul>" + "".join(f"<li>{e(line)}</li>" for line in summary_lines(run)) + "</ul>",
        "<h2>Balance proof</h2><table>" + "".join(
            f"<tr><th>{e(k)}</th><td class=\"num\">{e(v)}</td></tr>" for k, v in proof_rows) + "</table>",
        "<h2>Breaks</h2>",
    ]
    rows = break_rows(run)
    if rows:
        parts.append("<table><tr><th>#</th><th>type</th><th>bank side</th><th>ledger side</th>"
                     "<th>bank amount</th><th>ledger amount</th><th>detail</th><th>bank's raw text</th></tr>")
        for r in rows:
            parts.append(
                f"<tr><td>{e(str(r['break_id'] or ''))}</td><td>{e(r['type'])}<br><small>{e(r['meaning'])}"
                f"</small></td><td>{e(r['bank_side'])}</td><td>{e(r['ledger_side'])}</td>"
                f"<td class=\"num\">{e(r['bank_amount'])}</td><td class=\"num\">{e(r['ledger_amount'])}</td>"
                f"<td>{e(r['detail'])}{'<br>' + e(r['suggestion']) if r['suggestion'] else ''}</td>"
                f"<td><pre>{e(r['raw'])}</pre></td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Matched pairs</h2>")
    matches = match_rows(run)
    if matches:
        parts.append("<table><tr><th>rule</th><th>bank lines</th><th>postings</th><th>amount</th>"
                     "<th>basis</th></tr>" + "".join(
                         f"<tr><td>{e(x['rule'])}</td><td>{e(x['bank_lines'])}</td><td>{e(x['postings'])}</td>"
                         f"<td class=\"num\">{e(x['amount'])}</td><td>{e(x['basis'])}</td></tr>"
                         for x in matches) + "</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
