"""The request and content hashes, written out by hand for speed, are the canonical JSON's.

Stored hashes never change: an entry written by an earlier version must still verify, and a
retry of its request must still be recognised as the same request. The fixed digests below
were taken with the generic encoder (``canonical_json`` of the document); the property tests
compare the written-out text with that encoder for any values.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from ledger import chain, postings
from ledger.postings import Draft

TODAY = dt.date(2026, 11, 23)
HEADER = {"id": 41, "book_id": 3, "idempotency_key": 'top-up:u1:2026-11-23 "新"',
          "request_hash": "ab" * 32, "kind": "top_up", "phase": "posted",
          "effective_date": dt.date(2026, 11, 23), "external_ref": "bank\\ref\n1", "memo": None,
          "metadata_json": '{"note":"it\'s"}', "pending_id": None, "reverses_id": 7,
          "posting_count": 2, "created_at": dt.datetime(2026, 11, 23, 9, 30, 0, 5)}
POSTINGS = [(1, 12, -12345, "CNY", False), (0, 11, 12345, "CNY", False)]


def test_content_hash_is_unchanged():
    assert chain.content_hash(HEADER, POSTINGS) == (
        "c3de54de524ab351f01e9a6ac924fef215dba79809610e8c631f71d884070631")


def test_request_hash_is_unchanged():
    drafts = [
        Draft((("assets:custody:bank", D("100.50")), ("liabilities:users:u1:available",
                                                       D("-100.5"))), "k1", "top_up"),
        Draft((("assets:custody:bank", 10050, "CNY"), ("liabilities:users:u1:available", -10050)),
              'k2 "新"', "fee", dt.date(2026, 11, 23), "pending", "ref\\1", "memo\nline",
              {"b": D("1.5"), "a": [1, "x"]}, reverses_id=9, minor=True),
        Draft((("a", "1,000.00"), ("b", -1000)), "k3", "transfer",
              metadata={"when": dt.date(2026, 1, 2)}),
    ]
    assert [postings._prepare(d, TODAY, completions=True).request_hash for d in drafts] == [
        "2ef49089969da226ef4d761ebf3f78c6fecf80d06a6cebb134633cc872145982",
        "8017133209306f6e33c620ff5abcc1a361b5ea4a8eb5d7b9c3f8605297fdfa43",
        "4bddd9d21d9f47689411664ca7b941fbde6f4a2e6f1d1ec79a4e9bbd9931245d",
    ]


def generic_content_hash(header, rows):
    import hashlib

    doc = chain._content_doc(header, sorted(
        (int(p[0]), int(p[1]), int(p[2]), p[3], bool(p[4])) for p in rows))
    return hashlib.sha256(chain.canonical_json(doc).encode()).hexdigest()


text = st.text(max_size=12)
optional_text = st.none() | text
optional_id = st.none() | st.integers(-2**63, 2**63 - 1) | st.booleans()
posting = st.tuples(st.integers(0, 50), st.integers(1, 10**6), st.integers(-10**15, 10**15),
                    text | st.integers(0, 9), st.booleans())


@given(key=text, request_hash=text, kind=text, phase=text, external_ref=optional_text,
       memo=optional_text, metadata=optional_text, pending_id=optional_id,
       reverses_id=optional_id, rows=st.lists(posting, max_size=4, unique_by=lambda p: p[0]),
       day=st.dates(), created=st.datetimes())
def test_written_out_content_hash_is_the_canonical_one(key, request_hash, kind, phase,
                                                       external_ref, memo, metadata, pending_id,
                                                       reverses_id, rows, day, created):
    header = {**HEADER, "idempotency_key": key, "request_hash": request_hash, "kind": kind,
              "phase": phase, "external_ref": external_ref, "memo": memo,
              "metadata_json": metadata, "pending_id": pending_id, "reverses_id": reverses_id,
              "effective_date": day, "created_at": created, "posting_count": len(rows)}
    expected = generic_content_hash(header, rows)
    assert chain.content_hash(header, rows) == expected
    hasher = chain.ContentHasher()   # and again with the batch's texts already written
    hasher.hash(header, sorted(rows))
    assert hasher.hash(header, sorted(
        (int(p[0]), int(p[1]), int(p[2]), p[3], bool(p[4])) for p in rows)) == expected


amount = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6,
                     max_value=10**6)
leg = st.tuples(st.text(min_size=1, max_size=8), amount) | st.tuples(
    st.text(min_size=1, max_size=8), amount, st.none() | st.text(max_size=4) | st.integers())


@given(legs=st.lists(leg, min_size=2, max_size=4), kind=st.text(min_size=1, max_size=8)
       .filter(str.strip), external_ref=optional_text, memo=optional_text,
       day=st.none() | st.dates(), pending_id=optional_id, reverses_id=optional_id,
       metadata=st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4) | amount,
                                            max_size=3))
def test_written_out_request_hash_is_the_canonical_one(legs, kind, external_ref, memo, day,
                                                       pending_id, reverses_id, metadata):
    import hashlib

    draft = Draft(tuple(legs), "key", kind, day, "posted", external_ref, memo, metadata,
                  pending_id=pending_id, reverses_id=reverses_id)
    prepared = postings._prepare(draft, TODAY, completions=True)
    doc = postings._request_doc(draft, prepared.amounts, prepared.metadata_json)
    assert prepared.request_hash == hashlib.sha256(
        chain.canonical_json(doc).encode()).hexdigest()
