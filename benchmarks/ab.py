"""Two builds of canao on the issue's benchmark table, taking turns.

For a change to the compiler: build canao before and after, copy the binaries aside, and run

    python3 benchmarks/ab.py OLD_CANAO NEW_CANAO [--rounds 3]

Each round runs every cell with both binaries one right after the other (the order alternating
from round to round), `canao bench --no-baseline --json`, and the table gives per cell the median
over the rounds of each binary's median, so that the machine's drift falls on both sides alike.
The two binaries share the GEMM tuning cache, hence the same GEMM plans.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleaved import CELLS  # noqa: E402  (the issue's cells and peer numbers)


def median_ms(canao, arch, seq, threads):
    cmd = [canao, "bench", "--arch", arch, "--seq", str(seq), "--threads", str(threads), "--no-baseline", "--json"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["compiled"]["median_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = {}
    for r in range(args.rounds):
        order = [("old", args.old), ("new", args.new)]
        if r % 2:
            order.reverse()
        for cell in CELLS:
            arch, seq, threads, _ = cell
            for side, binary in order:
                runs.setdefault(cell, {}).setdefault(side, []).append(median_ms(binary, arch, seq, threads))
    print("| arch | seq | threads | before | after | before / after | issue peer | peer / after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (arch, seq, threads, peer), sides in runs.items():
        old, new = statistics.median(sides["old"]), statistics.median(sides["new"])
        print(f"| {arch} | {seq} | {threads} | {old:.3f} | {new:.3f} | {old / new:.2f}× | {peer} | {peer / new:.2f}× |")
    print(json.dumps({f"{a}@seq{s}/{t}": sides for (a, s, t, _), sides in runs.items()}))


if __name__ == "__main__":
    main()
