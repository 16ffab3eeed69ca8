"""Benchmark: OFX parse time for 10,000 and 100,000 transactions (target: ratio <= 12).

Generates OFX 1.x SGML day files the way a custody bank writes them (unclosed
leaf tags, Chinese names, bank-local times ``[+8:CST]``), then times, in the
same run:

* the baseline, ofxparse alone, on two smaller files (default 2,000 and
  8,000 transactions): its SGML preprocessing checks every tag against a
  list of every closing tag, so its time grows with the square of the file;
* :func:`reconcile.statements.parse_statement` on the 10,000- and
  100,000-transaction files (decode, read, check, build records, prove).
  Above ``OFXPARSE_MAX_TRANSACTIONS`` it reads with the linear reader alone.

It prints every time, the 100,000/10,000 ratio (target: at most 12, that is
linear) and the process's peak memory. Each size is timed several times and
the best run counts, after a warm-up run, the two sizes timed in alternation.
Wall time and this process's CPU time are both printed and judged: on a
shared machine other processes stretch wall time, while CPU time measures
the parser's own work. For reference it also times merely allocating as
many line-sized records as the parse keeps: the ratio that alone shows is
the machine's memory hierarchy, the floor under any parser's ratio.

Run: ``PYTHONPATH=. python bench/ofx_parse.py [--small N] [--large N] [--no-baseline]``
"""

from __future__ import annotations

import argparse
import gc
import io
import resource
import sys
import time
import warnings
from pathlib import Path

# The project first: a script's own folder leads sys.path, and bench/reconcile.py
# would shadow the reconcile package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconcile.statements import parse_statement  # noqa: E402
from reconcile.statements.ofx import OFXPARSE_MAX_TRANSACTIONS  # noqa: E402

TARGET_RATIO = 12
HEADER = ("OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:UTF-8\n"
          "CHARSET:NONE\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n")
NAMES = ("张三", "李四", "王五", "赵六", "钱七", "孙八")


def ofx_file(n: int) -> bytes:
    """An OFX day file of ``n`` transactions whose ledger balance adds up."""
    head = ("<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>"
            "<DTSERVER>20261123010000[+8:CST]<LANGUAGE>CHI</SONRS></SIGNONMSGSRSV1>\n"
            "<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>\n"
            "<STMTRS><CURDEF>CNY<BANKACCTFROM><BANKID>CUSTODY<ACCTID>6222000011112222"
            "<ACCTTYPE>CHECKING</BANKACCTFROM>\n<BANKTRANLIST><DTSTART>20261122<DTEND>20261122\n")
    rows, total = [], 0
    for i in range(n):
        fen = (i * 7919) % 500000 + 1
        sign = -1 if i % 3 == 0 else 1
        total += sign * fen
        kind, memo = ("DEBIT", "提现") if sign < 0 else ("CREDIT", "充值")
        rows.append(f"<STMTTRN><TRNTYPE>{kind}<DTPOSTED>20261122{i % 24:02d}{i % 60:02d}00[+8:CST]"
                    f"<TRNAMT>{'-' if sign < 0 else ''}{fen // 100}.{fen % 100:02d}"
                    f"<FITID>B20261122{i:08d}<REFNUM>P{i:08d}<NAME>{NAMES[i % len(NAMES)]}"
                    f"<MEMO>{memo} 订单P{i:08d}</STMTTRN>\n")
    tail = (f"</BANKTRANLIST><LEDGERBAL><BALAMT>{'-' if total < 0 else ''}{abs(total) // 100}."
            f"{abs(total) % 100:02d}<DTASOF>20261122235959[+8:CST]</LEDGERBAL></STMTRS>"
            "</STMTTRNRS></BANKMSGSRSV1></OFX>\n")
    return (HEADER + head + "".join(rows) + tail).encode("utf-8")


def timed(fn, repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``repeat`` runs of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        del result
    return min(walls), min(cpus)


def interleaved(small, large, rounds: int = 5) -> tuple[tuple, tuple]:
    """Best (wall, cpu) of each, timed in alternation so both see the same machine load."""
    best_small, best_large = [], []
    for _ in range(rounds):
        best_small.append(timed(small, 2))
        best_large.append(timed(large, 1))
    pick = lambda runs: (min(r[0] for r in runs), min(r[1] for r in runs))  # noqa: E731
    return pick(best_small), pick(best_large)


def records(n: int) -> list:
    """``n`` line-sized records with fresh strings: what any parser must allocate and keep."""
    return [(f"B{i:08d}", f"P{i:08d}", f"用户{i}", f"充值 订单{i}", f"line {i}, STMTTRN {i}",
             f"<STMTTRN><TRNTYPE>CREDIT<TRNAMT>{i}.00<FITID>B{i:08d}<NAME>用户{i}</STMTTRN>", i)
            for i in range(n)]


def ofxparse_alone(data: bytes):
    from ofxparse import OfxParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OfxParser.parse(io.BytesIO(data))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--baseline", type=int, nargs=2, default=(2_000, 8_000), metavar=("A", "B"))
    ap.add_argument("--no-baseline", action="store_true", help="skip timing ofxparse alone")
    args = ap.parse_args(argv)

    if not args.no_baseline:
        a, b = args.baseline
        da, db = ofx_file(a), ofx_file(b)
        ta, ca = timed(lambda: ofxparse_alone(da), 1)
        tb, cb = timed(lambda: ofxparse_alone(db), 1)
        print(f"ofxparse alone   {a:>8,} transactions {ta:8.2f} s  (cpu {ca:.2f} s)")
        print(f"ofxparse alone   {b:>8,} transactions {tb:8.2f} s  (cpu {cb:.2f} s)   ratio "
              f"{tb / ta:.1f} (cpu {cb / ca:.1f}) for {b / a:.0f}x the transactions")

    small, large = ofx_file(args.small), ofx_file(args.large)
    parse_statement(ofx_file(1_000), filename="warm-up.ofx")
    check = parse_statement(large, filename="large.ofx")
    assert len(check.lines) == args.large and check.statements[0].closing is not None
    del check
    (ts, cs), (tl, cl) = interleaved(lambda: parse_statement(small, filename="small.ofx"),
                                     lambda: parse_statement(large, filename="large.ofx"))
    path = "linear reader" if args.small > OFXPARSE_MAX_TRANSACTIONS else "ofxparse + linear reader"
    print(f"parse_statement {args.small:>8,} transactions {ts:8.2f} s  (cpu {cs:.2f} s, {path})")
    print(f"parse_statement {args.large:>8,} transactions {tl:8.2f} s  (cpu {cl:.2f} s)")
    for what, ratio in (("wall", tl / ts), ("cpu", cl / cs)):
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"ratio ({what}) {ratio:5.1f} for {args.large / args.small:.0f}x the transactions; "
              f"target <= {TARGET_RATIO}: {verdict}")
    (fs, _), (fl, _) = interleaved(lambda: records(args.small), lambda: records(args.large))
    print(f"for reference, only allocating {args.large:,} vs {args.small:,} line-sized records "
          f"here: ratio {fl / fs:.1f} (what this machine's memory adds to any parser)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory {peak / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
