"""What the matching benchmarks measure against: a plain in-memory hash join, and a timer."""

from __future__ import annotations

import gc
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
    """``(result, (wall seconds, CPU seconds))`` of one call, made with the cyclic collector
    settled first and paused during the call.

    Matching pauses the collector itself; the baseline gets the same, so that a
    full collection over the millions of objects a benchmark keeps alive never
    lands in the baseline's time and flatters the ratio.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        return result, (time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        if was_enabled:
            gc.enable()
