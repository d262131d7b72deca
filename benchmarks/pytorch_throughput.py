#!/usr/bin/env python3
"""PyTorch's training throughput for the same networks and steps as headnet-train-throughput.

  /usr/bin/python3 benchmarks/pytorch_throughput.py --nets tutorial wide --batch 4 32 128 --threads 1 2

Same network (the tutorial's Net, conv1 6 or 128, or "fast": the fast recipe's airbench network), PyTorch's default initialisation, SGD(lr 0.001,
momentum 0.9), cross-entropy, synthetic data already in memory; each timed run is a fixed number
of steps (--steps, or calibrated to about --seconds) after a warm-up; the median of --repeats runs is printed, one JSON object per line.
"""
import argparse
import json
import os
import sys
import statistics
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from pytorch_net import Net  # noqa: E402
from pytorch_models import airbench  # noqa: E402



def measure(net_name, batch, threads, seconds, repeats, steps=0, warmup=0):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = airbench() if net_name == "fast" else Net(128 if net_name == "wide" else 6)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (batch,))

    def run(n):
        start = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    n = steps
    if n == 0:  # calibrate to about `seconds` per run
        n = 1
        while run(n) < seconds / 4:
            n *= 2
        n *= 4
    run(warmup or n)
    rates = sorted(n * batch / run(n) for _ in range(repeats))
    return dict(network=net_name, batch=batch, threads=threads, steps_per_run=n, images_per_second=rates,
                median=statistics.median(rates))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="+", default=["tutorial", "wide"])
    p.add_argument("--batch", nargs="+", type=int, default=[4, 32, 128])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="steps per timed run (0: about --seconds)")
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps (0: as many as one timed run)")
    a = p.parse_args()
    for net_name in a.nets:
        for batch in a.batch:
            for threads in a.threads:
                print(json.dumps(measure(net_name, batch, threads, a.seconds, a.repeats, a.steps, a.warmup)), flush=True)
