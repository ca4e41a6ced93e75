"""canao's compiled latency against ONNX Runtime on the issue's benchmark table, interleaved.

On a shared machine whose speed drifts by 10-25 % from hour to hour, a peer measured minutes
apart from canao is measured on a different machine. This script takes turns instead: for each
round and each cell it runs `canao bench` and then ONNX Runtime (`benchmarks/peers.py`, BERT
fusions) on the same cell, one right after the other, and reports per cell the median over the
rounds of each side's median, their ratio, and canao against the issue's peer numbers.

    ~/.cache/canao/pyenv/bin/python benchmarks/interleaved.py [--rounds 3] [--json]

Needs a release build of canao (`cargo build --release -p experiments`) and the Python venv of
benchmarks/setup-python.sh.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (arch, seq, threads, best peer of the issue in ms)
CELLS = [
    ("L2-H128-A2-F512", 32, 1, 0.38),
    ("L2-H128-A2-F512", 32, 2, 0.23),
    ("L2-H128-A2-F512", 128, 1, 1.57),
    ("L2-H128-A2-F512", 128, 2, 0.81),
    ("L4-H256-A4-F1024", 128, 1, 11.3),
    ("L4-H256-A4-F1024", 128, 2, 5.35),
    ("L4-H512-A8-F2048", 128, 1, 41.2),
    ("L4-H512-A8-F2048", 128, 2, 21.1),
    ("L6-H384-A12-F1536-D32", 128, 1, 36.7),
    ("L6-H384-A12-F1536-D32", 128, 2, 18.4),
    ("L12-H768-A12-F3072", 128, 1, 270.0),
    ("L12-H768-A12-F3072", 128, 2, 134.0),
]


def last_json_line(text, what):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"{what}: no JSON line in its output")


def canao_ms(canao, arch, seq, threads):
    cmd = [canao, "bench", "--arch", arch, "--seq", str(seq), "--threads", str(threads), "--no-baseline", "--json"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
    r = last_json_line(out, " ".join(cmd))
    return r["compiled"]["median_ms"], r.get("others_busy", 0.0)


def ort_ms(arch, seq, threads):
    cmd = [sys.executable, os.path.join(HERE, "peers.py"), "--only", f"{arch}@seq{seq}", "--threads", str(threads),
           "--skip-torch", "--json"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
    rows = last_json_line(out, "peers.py")["results"]
    (row,) = [r for r in rows if r["seq"] == seq and r["threads"] == threads]
    return row["ort_ms"], row.get("other_cpu", 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds over all cells (default 3)")
    p.add_argument("--canao", default=os.path.join(ROOT, "target", "release", "canao"), help="canao binary")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = p.parse_args()
    if not os.path.exists(args.canao):
        raise SystemExit(f"{args.canao}: not found; build it with `cargo build --release -p experiments`")

    samples = {cell: {"canao": [], "ort": [], "busy": 0.0} for cell in CELLS}
    started = datetime.datetime.now(datetime.timezone.utc)
    for r in range(args.rounds):
        for cell in CELLS:
            arch, seq, threads, _ = cell
            c, c_busy = canao_ms(args.canao, arch, seq, threads)
            o, o_busy = ort_ms(arch, seq, threads)
            s = samples[cell]
            s["canao"].append(c)
            s["ort"].append(o)
            s["busy"] = max(s["busy"], c_busy, o_busy)
            print(f"round {r + 1}/{args.rounds} {arch}@seq{seq} T{threads}: canao {c:.3f} ms, ORT {o:.3f} ms",
                  file=sys.stderr, flush=True)

    rows = []
    for cell in CELLS:
        arch, seq, threads, peer = cell
        s = samples[cell]
        c, o = statistics.median(s["canao"]), statistics.median(s["ort"])
        rows.append({"arch": arch, "seq": seq, "threads": threads, "canao_ms": c, "ort_ms": o, "issue_peer_ms": peer,
                     "canao_rounds": s["canao"], "ort_rounds": s["ort"], "others_busy_max": s["busy"]})

    print(f"# {started.isoformat(timespec='seconds')}, {args.rounds} rounds; medians over rounds of each side's median")
    print(f"{'arch':<24}{'seq':>5}{'T':>3}{'canao ms':>10}{'ORT ms':>10}{'ORT/canao':>11}{'issue peer':>12}"
          f"{'peer/canao':>12}{'busy':>6}")
    for r in rows:
        print(f"{r['arch']:<24}{r['seq']:>5}{r['threads']:>3}{r['canao_ms']:>10.3f}{r['ort_ms']:>10.3f}"
              f"{r['ort_ms'] / r['canao_ms']:>10.2f}x{r['issue_peer_ms']:>12.2f}{r['issue_peer_ms'] / r['canao_ms']:>11.2f}x"
              f"{r['others_busy_max']:>6.2f}")
    met = sum(r["canao_ms"] <= r["issue_peer_ms"] for r in rows)
    faster = sum(r["canao_ms"] <= r["ort_ms"] for r in rows)
    print(f"at or below the issue's peer: {met}/{len(rows)} cells; at or below ORT measured alongside: "
          f"{faster}/{len(rows)}")
    if args.json:
        print(json.dumps({"date": started.isoformat(timespec="seconds"), "rounds": args.rounds, "results": rows}))


if __name__ == "__main__":
    main()
