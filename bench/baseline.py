"""What the matching benchmarks measure against: a plain in-memory hash join, and a timer."""

from __future__ import annotations

import time


def hash_join(bank, ledger):
    """Pairs of (bank id, ledger id) whose references and amounts agree."""
    index = {item.external_ref: item for item in ledger}
    pairs = []
    for line in bank:
        item = index.get(line.end_to_end_ref)
        if item is not None and item.amount_minor == line.amount_minor:
            pairs.append((line.id, item.id))
    return pairs


def timed(function, *args, **kwargs):
    """``(result, (wall seconds, CPU seconds))`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, (time.perf_counter() - wall, time.process_time() - cpu)
