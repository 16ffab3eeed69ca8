"""The HTML reconciliation report: what its verdict says, and that it renders in a real
browser (headless Chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from reconcile import report
from reconcile.runs import reconcile_parsed
from tests import test_reconcile_runs
from tests.test_reconcile_runs import DAY, STATEMENT, line, parsed

day_book = test_reconcile_runs.day_book      # the fixture, reused

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def browser():
    path = chromium()
    if path is None:
        if IN_CI:
            pytest.fail("headless Chromium is required in CI (.ci/run installs it)", pytrace=False)
        pytest.skip("Chromium not installed")
    return path


def test_html_report_renders_in_headless_chromium(day_book, browser, tmp_path):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    page = tmp_path / "report.html"
    page.write_text(report.to_html(run), encoding="utf-8")
    profile = tmp_path / "profile"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", f"--user-data-dir={profile}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Custody reconciliation" in dom.stdout
    assert "手续费 service charge" in dom.stdout          # the bank's raw text, intact
    assert dom.stdout.count("<tr>") >= 8                 # proof rows, breaks, matched pairs
    shot = tmp_path / "report.png"
    out = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.stat().st_size > 10_000


def test_html_report_says_when_the_balance_does_not_reconcile(book):
    """No break remains, yet the bank holds 5.00 the breaks do not explain: the
    report's verdict is that the balance does not reconcile, not "0 breaks remain"."""
    book.flows.open_system_accounts()
    book.flows.open_user("alice")
    book.flows.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
    run = reconcile_parsed(book, [parsed("day.csv", [line(1, 10000, "B1")], opening=500)])
    assert not run.result.breaks and run.balance["unexplained_minor"] == 500
    page = report.to_html(run)
    assert '<p class="bad">BALANCE DOES NOT RECONCILE: 5.00' in page
    assert "REMAIN" not in page
    both = reconcile_parsed(book, [parsed("day2.csv", [line(2, -150, "FEE-1")], opening=10500)])
    first, second = report.verdict(both)
    assert first == "1 BREAK(S) REMAIN" and second.startswith("BALANCE DOES NOT RECONCILE: 5.00")
