"""Bank-line fingerprints are the same in every version: re-imports stay idempotent."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from hypothesis import given, settings, strategies as st

from reconcile.importing import fingerprint
from reconcile.statements.model import StatementLine

texts = st.one_of(st.none(), st.text(max_size=30))
SHARED: dict = {}


def reference(line, occurrence):
    """The fingerprint as first defined: SHA-256 of the JSON array of the line's content."""
    doc = [line.account, line.booking_date.isoformat(), line.amount_minor, line.currency,
           line.bank_ref, line.end_to_end_ref, line.counterparty, line.description, occurrence]
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False).encode()).hexdigest()


@settings(max_examples=200, deadline=None)
@given(account=st.text(min_size=1, max_size=20), day=st.dates(), amount=st.integers(-10**15, 10**15),
       currency=st.sampled_from(["CNY", "USD", "JPY"]), bank_ref=texts, e2e=texts,
       counterparty=texts, description=texts, occurrence=st.integers(0, 5))
def test_fingerprint_is_the_json_array_hash(account, day, amount, currency, bank_ref, e2e,
                                            counterparty, description, occurrence):
    line = StatementLine(account, day, None, amount, currency, bank_ref, e2e, counterparty,
                         description, "booked", "0" * 64, "line 1", "raw")
    assert fingerprint(line, occurrence) == reference(line, occurrence)
    # with the cache an import shares across its lines (hits from earlier examples too)
    assert fingerprint(line, occurrence, SHARED) == reference(line, occurrence)


def test_fingerprint_of_known_chinese_line():
    line = StatementLine("6222000011112222", dt.date(2026, 11, 23), None, -150, "CNY", "B000000000001",
                         None, "用户 \"引号\"\n", "手续费\t", "booked", "0" * 64, "line 2", "raw")
    assert fingerprint(line, 1) == reference(line, 1)
    assert fingerprint(line, 0) != fingerprint(line, 1)


line_values = st.builds(
    lambda account, day, amount, currency, bank_ref, e2e, counterparty, description: StatementLine(
        account, day, None, amount, currency, bank_ref, e2e, counterparty, description, "booked",
        "0" * 64, "line 1", "raw"),
    account=st.sampled_from(["6222000011112222", "acct \"2\""]), day=st.dates(),
    amount=st.integers(-10**15, 10**15), currency=st.sampled_from(["CNY", "USD"]),
    bank_ref=texts, e2e=texts, counterparty=st.sampled_from([None, "用户1", "O'Brien"]),
    description=texts)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line_values, max_size=12))
def test_a_batch_of_fingerprints_is_the_lines_fingerprints(lines):
    """The batch an import computes is, line for line, the first-occurrence fingerprint."""
    from reconcile.importing import fingerprints

    assert fingerprints(lines, {}) == [reference(line, 0) for line in lines]
    shared: dict = {}
    assert fingerprints(lines + lines, shared) == [reference(line, 0) for line in lines + lines]
