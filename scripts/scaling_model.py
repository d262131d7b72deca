#!/usr/bin/env python3
"""The scaling model of docs/distributed.md: per-step compute (measured) against ring-allreduce time
(on paper) for 2-64 machines at 10, 25 and 100 Gb/s.

    build/benchmarks/headnet-train-throughput --nets tutorial wide fast resnet18 --batch 32 128 512 \
        --threads 2 --json step.json
    python3 scripts/scaling_model.py step.json > table.md

Ring allreduce of B bytes over N machines: each sends and receives 2 (N - 1) / N x B bytes in
2 (N - 1) messages per bucket (DataParallel's default buckets hold 1 MB, so ceil(B / 1 MB) of
them), so T = 2 (N - 1) / N x B / bandwidth + buckets x 2 (N - 1) x latency. The latency per
message is an assumption, stated in the table (TCP over Ethernet at 10 and 25 Gb/s, RDMA at 100).
Communication hides behind compute when it takes no longer than the backward pass, which does about
two thirds of a step's arithmetic: T <= 2/3 x b / images_per_second, i.e. b >= 1.5 x T x images/s
for a per-machine batch b (images/s measured on one machine, here 2 cores).
"""
import json
import math
import sys

LINKS = [(10, 20e-6), (25, 10e-6), (100, 2e-6)]  # (Gb/s, latency per message in s)
MACHINES = [2, 4, 8, 16, 32, 64]


BUCKET_BYTES = 1 << 20


def allreduce_seconds(n, nbytes, gbps, latency):
    buckets = math.ceil(nbytes / BUCKET_BYTES)
    return 2 * (n - 1) / n * nbytes * 8 / (gbps * 1e9) + buckets * 2 * (n - 1) * latency


def main(path):
    rows = json.load(open(path))
    nets = {}
    for r in rows:
        nets.setdefault(r["network"], {"parameters": r["parameters"], "rate": {}})["rate"][r["batch"]] = r["median"]
    print("| network | parameters | gradient MB | measured step (1 machine, 2 threads) |")
    print("|---|---|---|---|")
    for name, n in nets.items():
        steps = ", ".join(f"b={b}: {b / ips * 1e3:.1f} ms ({ips:.0f} img/s)" for b, ips in sorted(n["rate"].items()))
        print(f"| {name} | {n['parameters']:,} | {n['parameters'] * 4 / 1e6:.2f} | {steps} |")
    print()
    print("Ring-allreduce time per step (ms), and in brackets the smallest per-machine batch whose backward")
    print("pass hides it (from the largest measured batch's images/s):")
    print()
    header = "| network | link | " + " | ".join(f"N={m}" for m in MACHINES) + " |"
    print(header)
    print("|" + "---|" * (len(MACHINES) + 2))
    for name, n in nets.items():
        nbytes = n["parameters"] * 4
        ips = n["rate"][max(n["rate"])]
        for gbps, latency in LINKS:
            cells = []
            for m in MACHINES:
                t = allreduce_seconds(m, nbytes, gbps, latency)
                cells.append(f"{t * 1e3:.2f} [{math.ceil(1.5 * t * ips)}]")
            print(f"| {name} | {gbps} Gb/s, {latency * 1e6:.0f} us | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
