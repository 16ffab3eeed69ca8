"""Click commands of the ``ledger`` CLI, grouped by subject.

The top-level ``cli.py`` only builds the group and registers these; each
module here stays thin and delegates to the library.
"""
