#!/usr/bin/env python3
"""The PyTorch "Training a Classifier" tutorial recipe, as the reference for headnet's trainer.

  /usr/bin/python3 scripts/pytorch_tutorial.py --data data/cifar-10-batches-bin --seed 0 [--conv1 6]

Same network as the tutorial (conv1 width configurable), PyTorch's default initialisation,
CrossEntropyLoss, SGD(lr, momentum), batch 4, 2 epochs, inputs (x/255 - 0.5)/0.5. For a fair
timing (docs/BENCHMARKING) the whole training set is pre-loaded as one float tensor and batches are
sliced from a shuffled index (no DataLoader workers). Prints the tutorial's lines, then one JSON
line with the results.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn

from pytorch_net import Net

CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read(folder, names):
    raw = np.concatenate([np.fromfile(f"{folder}/{n}", dtype=np.uint8).reshape(-1, 3073) for n in names])
    images = torch.from_numpy(raw[:, 1:].astype(np.float32).reshape(-1, 3, 32, 32) / 255.0)
    return (images - 0.5) / 0.5, torch.from_numpy(raw[:, 0].astype(np.int64))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--conv1", type=int, default=6)
    p.add_argument("--conv2", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train_x, train_y = read(a.data, [f"data_batch_{i}.bin" for i in range(1, 6)])
    test_x, test_y = read(a.data, ["test_batch.bin"])
    net = Net(a.conv1, a.conv2)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum)
    generator = torch.Generator().manual_seed(a.seed)
    start = time.perf_counter()
    for epoch in range(a.epochs):
        order = torch.randperm(len(train_y), generator=generator)
        running_loss = 0.0
        for i in range(0, len(order) // a.batch):
            index = order[i * a.batch:(i + 1) * a.batch]
            optimizer.zero_grad()
            loss = criterion(net(train_x[index]), train_y[index])
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % 2000 == 1999:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 2000:.3f}", flush=True)
                running_loss = 0.0
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = torch.cat([net(test_x[i:i + 1000]).argmax(1) for i in range(0, len(test_y), 1000)])
    accuracy = 100.0 * (predicted == test_y).float().mean().item()
    per_class = {c: 100.0 * (predicted[test_y == k] == k).float().mean().item() for k, c in enumerate(CLASSES)}
    print(f"Accuracy of the network on the 10000 test images: {int(accuracy)} %")
    for c, v in per_class.items():
        print(f"Accuracy for class: {c:5s} is {v:.1f} %")
    print(json.dumps(dict(framework="pytorch", torch_version=torch.__version__, seed=a.seed, conv1=a.conv1,
                          conv2=a.conv2, threads=a.threads, test_accuracy=accuracy, class_accuracy=per_class,
                          train_seconds=seconds, images_per_second=a.epochs * len(train_y) / seconds)))


if __name__ == "__main__":
    main()
