#!/usr/bin/env python3
"""Writes small data sets for the trainer's --dataset tests, with the standard library only.

  make_fake_datasets.py FOLDER

FOLDER/pets: an image folder of three classes (red, green, blue), 12 PNG images each, 20x24 pixels,
  each a noisy version of its class's colour (so a network can learn them);
FOLDER/mnist: MNIST-format IDX files (train 60 and t10k 20 images of 28x28, gzipped), digits drawn
  as a bright square whose position depends on the label."""
import gzip
import os
import random
import struct
import sys
import zlib

root = sys.argv[1]
rng = random.Random(7)


def png(path, w, h, rgb):
    rows = b"".join(b"\x00" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


for c, name in enumerate(["blue", "green", "red"]):
    os.makedirs(os.path.join(root, "pets", name), exist_ok=True)
    for i in range(12):
        px = bytearray()
        for _ in range(20 * 24):
            base = [40, 40, 40]
            base[2 - c] = 200
            px += bytes(max(0, min(255, v + rng.randint(-30, 30))) for v in base)
        png(os.path.join(root, "pets", name, f"{i:02d}.png"), 20, 24, bytes(px))

os.makedirs(os.path.join(root, "mnist"), exist_ok=True)
for prefix, n in (("train", 60), ("t10k", 20)):
    labels = [i % 10 for i in range(n)]
    images = bytearray()
    for label in labels:
        img = bytearray(28 * 28)
        y0, x0 = 2 + (label // 5) * 12, 2 + (label % 5) * 5
        for y in range(y0, y0 + 10):
            for x in range(x0, x0 + 4):
                img[y * 28 + x] = 255
        images += img
    with gzip.open(os.path.join(root, "mnist", f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(images))
    with gzip.open(os.path.join(root, "mnist", f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(labels))
