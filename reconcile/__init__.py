"""Daily custody reconciliation: bank statements against the custody bank account.

- :mod:`reconcile.statements` reads the bank's statement files (OFX, the
  custody bank's CSV day file, camt.053, MT940) into one normalized line
  record and proves each statement's balances before anything is imported.
- :mod:`reconcile.matching` pairs bank lines with ledger postings and
  explains every break; :mod:`reconcile.runs` stores runs, matches, breaks
  and resolutions; :mod:`reconcile.report` renders them.
"""
