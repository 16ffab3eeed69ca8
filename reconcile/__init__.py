"""Daily custody reconciliation: statements in, matches and breaks out.

* :mod:`reconcile.statements`: one parser per bank format, each giving the
  same normalized, proved statement lines.
* :mod:`reconcile.matching`: the pure matching cascade.
* :mod:`reconcile.runs`: import, match, prove the balance, keep the run;
  resolve breaks with an audit trail.
* :mod:`reconcile.report`: table, CSV, JSON and HTML reports.
"""
