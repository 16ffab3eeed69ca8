"""The ``ledger`` command, driven with click's CliRunner."""

from __future__ import annotations

import json

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
