#!/usr/bin/env python3
"""A sweep of teacher fine-tuning recipes in `transformers`, many runs side by side on one GPU.

    sweep_teacher.py --teacher DIR --data DIR --out FILE.jsonl [--parallel 8] [--budget 420]
                     [--recipes NAME,NAME] [--seeds 17,18,19] [--device cuda] [--epochs-scale 1]

Every recipe below runs once per seed as `train_torch.py --epochs … --device cuda --json`; each
finished run appends its JSON line (dev accuracy at the end, the recipe, the seconds it took) to
`--out`, so what finished survives a run cut short. No run is chosen by its dev score: the table
at the end gives each recipe's mean, lowest and highest final accuracy over its seeds. Runs still
going when `--budget` seconds have passed are stopped and left out.

On a lent GPU machine: benchmarks/sweep_device.sh. This is a search for a recipe worth running in
canao (`canao train --phase teacher`, one to one and a half hours a run on the 2-core CPU), not a
result of canao. `--device cpu --epochs-scale 0.002` is a smoke test of the sweep itself.
"""
import argparse, itertools, json, os, statistics, subprocess, sys, time

# name: train_torch.py flags. The base is canao's recipe (experiments/train/sst2-teacher.ron):
# 2 epochs, batch 32, lr 5e-5, warm-up 6 %, weight decay 0.01, dropout 0.1, per-tensor clipping.
BASE = {"epochs": 2, "lr": 5e-5, "batch-size": 32, "warmup": 0.06, "weight-decay": 0.01,
        "dropout": 0.1, "clip": "tensor", "llrd": 1.0, "label-smoothing": 0.0}
RECIPES = {
    "canao": {},
    "global-clip": {"clip": "global"},
    "lr3e-5-3ep": {"lr": 3e-5, "epochs": 3},
    "lr2e-5-4ep": {"lr": 2e-5, "epochs": 4},
    "llrd0.8-lr1e-4-3ep": {"llrd": 0.8, "lr": 1e-4, "epochs": 3},
    "llrd0.9-lr8e-5-3ep": {"llrd": 0.9, "lr": 8e-5, "epochs": 3},
    "bs16-lr3e-5-3ep": {"batch-size": 16, "lr": 3e-5, "epochs": 3},
    "bs64-lr1e-4-3ep": {"batch-size": 64, "lr": 1e-4, "epochs": 3},
    "smooth0.1": {"label-smoothing": 0.1},
    "wd0.1-3ep": {"weight-decay": 0.1, "epochs": 3},
    "warmup0.1-4ep-lr3e-5": {"warmup": 0.1, "epochs": 4, "lr": 3e-5},
    "dropout0.2-3ep": {"dropout": 0.2, "epochs": 3},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--budget", type=float, default=420.0)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--seeds", default="17,18,19")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="shorten every run (smoke tests)")
    a = ap.parse_args()
    names = a.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    # Seed-major order: every recipe gets its first seed before any gets its second.
    queue = [(n, s) for s, n in itertools.product(seeds, names)]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_torch.py")
    start, running, results = time.time(), [], []
    with open(a.out, "a") as out:
        while queue or running:
            while queue and len(running) < a.parallel and time.time() - start < a.budget:
                name, seed = queue.pop(0)
                flags = {**BASE, **RECIPES[name]}
                flags["epochs"] *= a.epochs_scale
                cmd = [sys.executable, script, "--teacher", a.teacher, "--data", a.data, "--device", a.device,
                       "--json", "--threads", "1", "--seed", str(seed), "--eval-every", "100000"]
                cmd += [x for k, v in flags.items() for x in (f"--{k}", str(v))]
                running.append((name, seed, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)))
            time.sleep(1)
            for item in list(running):
                name, seed, p = item
                if p.poll() is None:
                    continue
                running.remove(item)
                lines = p.stdout.read().strip().splitlines()
                if p.returncode != 0 or not lines:
                    print(f"{name} seed {seed}: failed (exit {p.returncode})", file=sys.stderr)
                    continue
                r = {"recipe": name, **json.loads(lines[-1])}
                results.append(r)
                out.write(json.dumps(r) + "\n")
                out.flush()
                print(f"{time.time() - start:5.0f} s  {name:24} seed {seed}: {100 * r['dev_accuracy']:.2f} % "
                      f"({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
            # Runs that finished are collected above first, so that none is counted as stopped.
            if time.time() - start >= a.budget:
                queue.clear()
                for name, seed, p in running:
                    p.kill()
                    print(f"{name} seed {seed}: stopped at the budget", file=sys.stderr)
                running = []
    print(f"\n| recipe | runs | mean | lowest | highest |\n| --- | --- | --- | --- | --- |")
    for name in names:
        accs = [100 * r["dev_accuracy"] for r in results if r["recipe"] == name]
        if accs:
            print(f"| {name} | {len(accs)} | {statistics.mean(accs):.2f} | {min(accs):.2f} | {max(accs):.2f} |")


if __name__ == "__main__":
    main()
