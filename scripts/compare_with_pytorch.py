#!/usr/bin/env python3
"""Trains the same recipe with headnet and with PyTorch, alternating, for several seeds.

  python3 scripts/compare_with_pytorch.py --seeds 0 1 2 [--conv1 6] [--out runs/compare]

Needs build/examples/cifar10-train and Debian's python3-torch. Writes OUT/comparison.json and
prints a markdown table: test accuracy and 2-epoch training wall time per seed, then mean and
standard deviation for each framework.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_headnet(a, seed):
    out = os.path.join(a.out, f"headnet_conv1_{a.conv1}_seed_{seed}")
    subprocess.run([os.path.join(root, "build/examples/cifar10-train"), "--data", a.data, "--seed", str(seed),
                    "--conv1", str(a.conv1), "--threads", str(a.threads), "--out", out, "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    return dict(test_accuracy=r["test_accuracy"], train_seconds=r["train_seconds"], class_accuracy=r["class_accuracy"])


def run_pytorch(a, seed):
    result = subprocess.run(["/usr/bin/python3", os.path.join(root, "scripts/pytorch_tutorial.py"), "--data", a.data,
                             "--seed", str(seed), "--conv1", str(a.conv1), "--threads", str(a.threads)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.path.join(root, "data/cifar-10-batches-bin"))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--conv1", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=os.path.join(root, "runs/compare"))
    a = p.parse_args()
    rows = []
    for seed in a.seeds:
        h = run_headnet(a, seed)
        t = run_pytorch(a, seed)
        rows.append(dict(seed=seed, headnet=h, pytorch=t))
        print(f"seed {seed}: headnet {h['test_accuracy']:.2f}% in {h['train_seconds']:.1f} s, "
              f"PyTorch {t['test_accuracy']:.2f}% in {t['train_seconds']:.1f} s", file=sys.stderr, flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"comparison_conv1_{a.conv1}.json"), "w") as f:
        json.dump(rows, f, indent=2)

    def stats(key, field):
        values = [r[key][field] for r in rows]
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), values

    print("| seed | headnet accuracy | PyTorch accuracy | headnet time (s) | PyTorch time (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['headnet']['test_accuracy']:.2f}% | {r['pytorch']['test_accuracy']:.2f}% | "
              f"{r['headnet']['train_seconds']:.1f} | {r['pytorch']['train_seconds']:.1f} |")
    ha, hs, _ = stats("headnet", "test_accuracy")
    pa, ps, _ = stats("pytorch", "test_accuracy")
    ht, hts, _ = stats("headnet", "train_seconds")
    pt, pts, _ = stats("pytorch", "train_seconds")
    print(f"| mean ± sd | {ha:.2f} ± {hs:.2f}% | {pa:.2f} ± {ps:.2f}% | {ht:.1f} ± {hts:.1f} | {pt:.1f} ± {pts:.1f} |")


if __name__ == "__main__":
    main()
