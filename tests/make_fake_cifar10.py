#!/usr/bin/env python3
"""Writes a small CIFAR-10-format data set for the trainer's tests.

  make_fake_cifar10.py FOLDER [RECORDS_PER_FILE]

Six files named as the official ones, each RECORDS_PER_FILE (default 200) 3073-byte records:
a label 0-9 and 3072 pixel bytes from a fixed pseudo-random sequence, so the files are the same on
every run.
"""
import os
import random
import sys

folder = sys.argv[1]
records = int(sys.argv[2]) if len(sys.argv) > 2 else 200
os.makedirs(folder, exist_ok=True)
rng = random.Random(12345)
names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
for name in names:
    with open(os.path.join(folder, name), "wb") as f:
        for _ in range(records):
            label = rng.randrange(10)
            # Images with a label-dependent brightness, so that training has something to learn.
            base = 20 * label
            f.write(bytes([label]) + bytes((base + rng.randrange(56)) % 256 for _ in range(3072)))
