"""The ``ledger`` command, driven with click's CliRunner."""

from __future__ import annotations

import json
import re

import click
import pytest
from click.testing import CliRunner

from cli import main


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


def test_every_command_has_help_with_an_example():
    missing = [" ".join(path) for path, command in all_commands(main)
               if "Example" not in (command.help or "")]
    assert missing == []


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "ledger" in result.output


ENTRY = {"key": "topup-B001", "kind": "top_up", "effective_date": "2026-11-22",
         "external_ref": "B001",
         "postings": [["assets:custody:bank", 100.10], ["liabilities:users:u1:available", "-100.10"]]}


@pytest.fixture
def url(db_url):
    assert invoke("init", "--db", db_url).exit_code == 0
    assert invoke("account", "open", "assets:custody:bank", "--db", db_url).exit_code == 0
    assert invoke("account", "open", "liabilities:users:u1:available", "--no-overdraft",
                  "--db", db_url).exit_code == 0
    return db_url


def test_post_file_balance_and_verify(url):
    result = invoke("post", "-", "--db", url, input=json.dumps(ENTRY) + "\n")
    assert result.exit_code == 0, result.output
    assert "1 posted, 0 already there" in result.output
    again = invoke("post", "-", "--db", url, input=json.dumps(ENTRY) + "\n")
    assert "0 posted, 1 already there" in again.output
    result = invoke("balance", "liabilities:users:u1:available", "--db", url, "--format", "json")
    data = json.loads(result.output)
    assert data[0]["posted"] == "100.10" and data[0]["available"] == "100.10"
    result = invoke("verify", "--db", url)
    assert result.exit_code == 0 and "OK" in result.output


def test_bad_file_names_every_bad_line_and_posts_nothing(url):
    lines = [json.dumps(ENTRY), '{"key": "x"}', "not json",
             json.dumps({**ENTRY, "key": "d", "effective_date": "2026-13-01"})]
    result = invoke("post", "-", "--db", url, input="\n".join(lines) + "\n")
    assert result.exit_code == 2
    assert "line 2: field 'postings'" in result.output
    assert "line 3: not JSON" in result.output
    assert "line 4: field 'effective_date'" in result.output
    balance = invoke("balance", "assets:custody:bank", "--db", url, "--format", "csv")
    assert "0.00" in balance.output and "100.10" not in balance.output


def test_ledger_error_in_a_file_names_the_line(url):
    bad = {**ENTRY, "key": "second", "postings": [["assets:custody:bank", "1"],
                                                  ["liabilities:users:nobody:available", "-1"]]}
    overdraw = {**ENTRY, "key": "third", "postings": [["liabilities:users:u1:available", "500"],
                                                      ["assets:custody:bank", "-500"]]}
    result = invoke("post", "-", "--db", url, input=json.dumps(ENTRY) + "\n" + json.dumps(overdraw) + "\n")
    assert result.exit_code == 2
    assert "line 2 (key 'third')" in result.output and "InsufficientFundsError" in result.output
    result = invoke("post", "-", "--db", url, input=json.dumps(bad) + "\n")
    assert result.exit_code == 2 and "unknown account" in result.output



def reported(output: str) -> dict[int, str]:
    """The problems a refused ``ledger post`` reports, by line number."""
    found = {}
    for text in output.replace("; line ", "\nline ").splitlines():
        match = re.match(r"\s*(?:Error: nothing posted; )?line (\d+)\b(.*)", text)
        if match:
            found[int(match[1])] = match[2]
    return found


def test_every_bad_line_is_named_with_its_problem_and_nothing_is_posted(url):
    assert invoke("post", "-", "--db", url, input=json.dumps({**ENTRY, "key": "earlier"}) + "\n"
                  ).exit_code == 0
    bank, user = "assets:custody:bank", "liabilities:users:u1:available"
    lines = [
        json.dumps(ENTRY),                                                          # fine
        json.dumps({"key": "nobody", "postings": [[bank, "1"], ["liabilities:users:x:available", "-1"]]}),
        json.dumps({"key": "fine", "postings": [[bank, "0.001"], [user, "-0.001"]]}),
        json.dumps({"key": "uneven", "postings": [[bank, "3"], [user, "-2"]]}),
        json.dumps({**ENTRY, "memo": "other content"}),                             # line 1's key
        "not json",
        json.dumps(ENTRY),                                                          # line 1 again
        json.dumps({"key": "earlier", "postings": [[bank, "7"], [user, "-7"]]}),  # used before
        '{"key": "huge", "postings": [["%s", 1e400], ["%s", -1e400]]}' % (bank, user),
        json.dumps({"key": "zero", "postings": [[bank, 0], [user, 0]]}),
        json.dumps({"key": "spend", "postings": [[user, "500"], [bank, "-500"]]}),
    ]
    result = invoke("post", "-", "--db", url, input="\n".join(lines) + "\n")
    assert result.exit_code == 2, result.output
    # A line that is not an entry is named first, before anything is tried against the ledger.
    found = reported(result.output)
    assert sorted(found) == [6] and found[6].startswith(": not JSON"), result.output
    assert "the well-formed lines were not tried against the ledger yet" in result.output
    lines[5] = ""                                                 # mended (numbers stay)
    result = invoke("post", "-", "--db", url, input="\n".join(lines) + "\n")
    assert result.exit_code == 2, result.output
    assert "nothing posted; 8 bad lines" in result.output
    found = reported(result.output)
    assert sorted(found) == [2, 3, 4, 5, 8, 9, 10, 11], result.output
    assert found[2].startswith(" (key 'nobody'): UnknownAccountError")
    assert "PrecisionError" in found[3] and "0.001 CNY is finer than the minor unit" in found[3]
    assert "UnbalancedEntryError" in found[4] and "CNY off by 1.00" in found[4]
    assert "IdempotencyConflictError" in found[5] and "line 1" in found[5]
    assert "IdempotencyConflictError" in found[8] and "was used for entry" in found[8]
    assert "AmountError" in found[9] and "beyond the limit of ±10,000,000,000,000.00 CNY" in found[9]
    assert "ZeroAmountError" in found[10]
    assert "InsufficientFundsError" in found[11]
    balance = invoke("balance", "assets:custody:bank", "--db", url, "--format", "json")
    assert json.loads(balance.output)[0]["posted"] == "100.10"   # the earlier post alone


def test_amounts_beyond_the_limit_in_a_file_are_named_not_a_traceback(url):
    bank, user = "assets:custody:bank", "liabilities:users:u1:available"
    for amount in ("1e400", "1e999999999", "9" * 5000, "92233720368547758.07", "10000000000000.01"):
        line = '{"key": "huge", "postings": [["%s", %s], ["%s", -%s]]}' % (bank, amount, user, amount)
        result = invoke("post", "-", "--db", url, input=line + "\n")
        assert result.exit_code == 2, result.output
        assert "nothing posted; line 1 (key 'huge'): AmountError: " in result.output
        assert "beyond the limit of ±10,000,000,000,000.00 CNY per posting" in result.output
    limit = '{"key": "limit", "postings": [["%s", 10000000000000.00], ["%s", "-1e13"]]}' % (bank, user)
    assert invoke("post", "-", "--db", url, input=limit + "\n").exit_code == 0


def test_verify_exit_code_4_on_tampering(url, backend):
    invoke("post", "-", "--db", url, input=json.dumps(ENTRY) + "\n")
    import ledger

    book = ledger.open(url)
    book.seal()
    with book.engine.begin() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("ALTER TABLE posting DISABLE TRIGGER USER")
            conn.exec_driver_sql("UPDATE posting SET amount_minor = amount_minor * 2")
            conn.exec_driver_sql("ALTER TABLE posting ENABLE TRIGGER USER")
        else:
            conn.exec_driver_sql("DROP TRIGGER trg_posting_no_update")
            conn.exec_driver_sql("UPDATE posting SET amount_minor = amount_minor * 2")
    book.dispose()
    result = invoke("verify", "--db", url)
    assert result.exit_code == 4
    assert "was altered" in result.output


def test_db_current_and_account_list(url):
    assert "up to date" in invoke("db", "current", "--db", url).output
    result = invoke("account", "list", "--db", url, "--format", "csv")
    assert result.output.splitlines()[0] == "code,type,currency,no_overdraft,closed,balance,available"
    assert invoke("balance", "nope:x", "--db", url).exit_code == 1


def test_an_amount_or_code_that_cannot_be_right_is_bad_input_exit_2(url):
    """Exit 2 for what no state of the ledger makes right, as for a bad date; 1 for
    what the ledger refuses given what it holds."""
    assert invoke("user", "open", "u2", "--db", url).exit_code == 0
    for amount, problem in (("100.005", "finer than the minor unit"),
                            ("NaN", "not a finite number"),
                            ("ten", "not a number"),
                            ("99999999999999999999", "beyond the limit")):
        result = invoke("topup", "u2", amount, "--bank-ref", "B9", "--key", f"k-{amount}",
                        "--db", url)
        assert result.exit_code == 2, (amount, result.output)
        assert problem in result.output and "Traceback" not in result.output
    result = invoke("account", "open", "assets:bad code", "--db", url)
    assert result.exit_code == 2 and "segment 'bad code'" in result.output
    result = invoke("account", "open", "assets:custody:usd", "--currency", "XXY", "--db", url)
    assert result.exit_code == 2 and "unknown currency 'XXY'" in result.output
    assert invoke("balance", "nope:x", "--db", url).exit_code == 1   # well formed, not there
    for args in (["balance", "BAD CODE"], ["balance", "Assets:Bad!"],
                 ["statement", "BAD CODE", "--from", "2026-11-01", "--to", "2026-11-30"],
                 ["topup", "bad user", "5", "--bank-ref", "X", "--key", "k-bad-user"]):
        result = invoke(*args, "--db", url)   # no account can have such a code
        assert result.exit_code == 2 and "must be letters, digits" in result.output, (args, result.output)
    result = invoke("journal", "--format", "csv", "--db", url)
    assert result.exit_code == 0 and "k-" not in result.output      # nothing was posted


def test_only_init_makes_a_database(tmp_path, db_url):
    """A mistyped --db is refused, not answered about an empty book made on the spot
    ("no breaks", "nothing altered"); ``ledger init`` still creates the database."""
    typo = tmp_path / "ledgr.db"
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for url, why in ((f"sqlite:///{typo}", f"no database at {typo}"),
                     (f"sqlite:///{empty}", "the database holds no ledger")):
        for args in (["verify"], ["breaks", "list"], ["balance", "assets:custody:bank"],
                     ["trial-balance"], ["user", "open", "u9"]):
            result = invoke(*args, "--db", url)
            assert result.exit_code == 2, (args, result.output)
            assert why in result.output and "ledger init --db" in result.output
    assert not typo.exists()
    for args in (["db", "current"], ["db", "upgrade"]):
        result = invoke(*args, "--db", f"sqlite:///{typo}")
        assert result.exit_code == 2 and not typo.exists(), (args, result.output)
    assert "current: none" in invoke("db", "current", "--db", f"sqlite:///{empty}").output
    assert invoke("init", "--db", f"sqlite:///{typo}").exit_code == 0
    assert invoke("verify", "--db", f"sqlite:///{typo}").exit_code == 0
    # A database that holds a ledger (either backend) is opened as before.
    assert invoke("verify", "--db", db_url).exit_code == 0


def test_pending_that_is_not_true_or_false_is_a_bad_line(url):
    # "false" is a non-empty string: read as true, it held the money instead of posting it
    lines = [json.dumps(ENTRY), json.dumps({**ENTRY, "key": "p", "pending": "false"}),
             json.dumps({**ENTRY, "key": "q", "pending": 0})]
    result = invoke("post", "-", "--db", url, input="\n".join(lines) + "\n")
    assert result.exit_code == 2, result.output
    assert set(reported(result.output)) == {2, 3} and "field 'pending'" in result.output
    balance = invoke("balance", "assets:custody:bank", "--db", url, "--format", "json")
    assert json.loads(balance.output)[0]["posted"] == "0.00"
    result = invoke("post", "-", "--db", url,
                    input=json.dumps({**ENTRY, "pending": False}) + "\n")
    assert result.exit_code == 0, result.output
