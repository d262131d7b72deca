#!/usr/bin/env python3
"""The fast CIFAR-10 recipe (airbench94) in PyTorch, fp32 on the CPU: the baseline that cifar10-fast
is measured against, for accuracy and for time. Written for headnet from shared/guides/FAST_CIFAR10.md
and examples/cifar10_fast.cpp, step for step:

  network      scripts/pytorch_models.airbench (the same module names as headnet's models::airbench)
  init         PyTorch's defaults; identity (dirac) on the first in_channels filters of every 3x3
               conv; BatchNorm weights frozen at 1; a 2x2 patch-whitening first convolution from the
               first 5,000 training images (eigenvectors / sqrt(eigenvalue + 5e-4), and their negatives),
               frozen, its bias (from 0) trained for 3 epochs only
  optimiser    SGD, Nesterov momentum 0.85, lr 11.5 / (1024 (1 + 1/0.15)) per summed-loss step,
               BatchNorm biases at 64x, weight decay with lr x wd = 1.9957e-3 in every group
  schedule     linear from 0.2x to 1x over the first 23% of the steps, then down to 0.07x
  loss         cross-entropy summed over the batch, label smoothing 0.2
  data         per-channel normalisation; translations of up to 2 pixels with reflected borders;
               alternating flips (epoch 0 random, then each image the other way every epoch)
  lookahead    every 5 steps: average = a average + (1 - a) model, model = average,
               a = 0.95^5 x progress^3; the average at the end
  TTA          level 2: 1/4 f(x) + 1/4 f(mirror x) + 1/8 of f and f-mirrored at the two one-pixel
               diagonal translations (reflected borders); level 1: x and its mirror; level 0: x

The random streams are PyTorch's, not headnet's: the two programs run the same recipe, not the same
draws. It takes cifar10-fast's flags and writes the same results.json (train_seconds includes the
per-epoch test evaluation, as headnet's Trainer does). --load FILE evaluates a model.safetensors
written by cifar10-fast instead of training: the same weights must give the same test accuracy.

  /usr/bin/python3 scripts/pytorch_fast.py --data data --out runs/pytorch_fast [--epochs 9.9] ...
  /usr/bin/python3 scripts/pytorch_fast.py --data data --load runs/fast/model.safetensors
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import airbench  # noqa: E402
from safetensors_io import load_safetensors  # noqa: E402

CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def find_folder(given):
    for folder in (given, os.path.join(given, "cifar-10-batches-bin")):
        if os.path.isfile(os.path.join(folder, "test_batch.bin")):
            return folder
    sys.exit(f"pytorch_fast.py: error: no CIFAR-10 binary batches in '{given}' (expected test_batch.bin)")


def read_batches(folder, names):
    images, labels = [], []
    for name in names:
        path = os.path.join(folder, name)
        raw = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.uint8)
        if raw.numel() % 3073:
            sys.exit(f"pytorch_fast.py: error: '{path}' is not a whole number of 3073-byte records")
        records = raw.view(-1, 3073)
        labels.append(records[:, 0].long())
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
    x = (torch.cat(images).float() / 255 - MEAN) / STD
    return x.contiguous(), torch.cat(labels)


def whitening_weight(images, eps=5e-4):
    """The 24 filters of the 2x2 whitening convolution: eigenvectors of the patches' covariance scaled
    by 1/sqrt(eigenvalue + eps), largest eigenvalue first, then their negatives."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # (N, C, 31, 31, 2, 2)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    sigma = patches.T @ patches / patches.shape[0]
    values, vectors = torch.linalg.eigh(sigma)  # ascending
    values, vectors = values.flip(0), vectors.flip(1)
    filters = (vectors / torch.sqrt(values.clamp(min=0) + eps)).T.reshape(12, 3, 2, 2)
    return torch.cat([filters, -filters]).float()


def augment(images, epoch, flip_bits, generator, pad=2, alternating=True):
    """Random translations (reflected borders) and flips of a whole batch."""
    n = images.shape[0]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.empty_like(images)
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            idx = ((dy == oy) & (dx == ox)).nonzero().flatten()
            if idx.numel():
                out[idx] = padded[idx, :, oy:oy + 32, ox:ox + 32]
    if alternating:
        flip = flip_bits ^ bool(epoch % 2)
    else:
        flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)


def tta_views(x, level):
    """(weight, view) pairs of the recipe's test-time augmentation."""
    if level == 0:
        return [(1.0, x)]
    if level == 1:
        return [(0.5, x), (0.5, x.flip(3))]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    views = [(0.25, x), (0.25, x.flip(3))]
    for d in (-1, 1):
        shifted = padded[:, :, 1 + d:33 + d, 1 + d:33 + d]
        views += [(0.125, shifted), (0.125, shifted.flip(3))]
    return views


@torch.no_grad()
def evaluate(model, images, labels, level=0, batch=1000):
    model.eval()
    predictions = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        logits = sum(w * model(v) for w, v in tta_views(x, level))
        predictions.append(logits.argmax(1))
    model.train()
    predictions = torch.cat(predictions)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    accuracy = 100.0 * (predictions == labels).float().mean().item()
    per_class = (100.0 * confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {"test_accuracy": round(accuracy, 2),
            "class_accuracy": {c: round(a, 2) for c, a in zip(CLASSES, per_class)},
            "confusion_matrix": confusion.tolist()}


def init_weights(model, recipe, train_x):
    """The recipe's initialisation over PyTorch's defaults: identity (dirac) on the first in_channels
    filters of every 3x3 conv, the whitening convolution from the first 5,000 training images, its
    bias 0."""
    with torch.no_grad():
        model.whiten.bias.zero_()
        if recipe["dirac"]:
            for block in (model.block1, model.block2, model.block3):
                for conv in (block.conv1, block.conv2):
                    k = min(conv.out_channels, conv.in_channels)
                    nn.init.dirac_(conv.weight[:k])
        if recipe["whiten"]:
            model.whiten.weight.copy_(whitening_weight(train_x[:5000]))


def freeze(model, recipe):
    """BatchNorm weights stay 1, the whitening filters stay as computed."""
    for name, param in model.named_parameters():
        if "norm" in name and name.endswith(".weight"):
            param.requires_grad_(False)
    if recipe["whiten"]:
        model.whiten.weight.requires_grad_(False)


def make_optimizer(model, recipe):
    """SGD with Nesterov momentum in three groups (weights, BatchNorm biases at 64x, the whitening
    bias), lr x weight decay the same in all; returns it and the groups' base learning rates."""
    lr = recipe["lr"]
    wd = recipe["weight_decay_product"]
    main_group = [p for n, p in model.named_parameters() if p.requires_grad and "norm" not in n
                  and not (recipe["whiten"] and n == "whiten.bias")]
    bias_group = [p for n, p in model.named_parameters() if p.requires_grad and "norm" in n]
    whiten_group = [model.whiten.bias] if recipe["whiten"] else []
    bias_lr = lr * recipe["bias_lr_scale"]
    groups = [dict(params=main_group, lr=lr, weight_decay=wd / lr), dict(params=bias_group, lr=bias_lr, weight_decay=wd / bias_lr),
              dict(params=whiten_group, lr=lr, weight_decay=wd / lr)]
    return torch.optim.SGD(groups, lr=lr, momentum=recipe["momentum"], nesterov=True), [lr, bias_lr, lr]


def set_learning_rates(optimizer, base_lrs, recipe, step, total_steps, epoch):
    """Linear from 0.2x to 1x over the first 23% of the steps, then down to 0.07x; the whitening
    bias stops after whiten_bias_epochs."""
    warmup_end = round(recipe["warmup"] * total_steps)
    if step <= warmup_end:
        factor = 0.2 + 0.8 * step / max(warmup_end, 1)
    else:
        factor = 1.0 + (recipe["final_factor"] - 1.0) * (step - warmup_end) / max(total_steps - warmup_end, 1)
    for g, base in zip(optimizer.param_groups, base_lrs):
        g["lr"] = base * factor
    if recipe["whiten"] and epoch >= recipe["whiten_bias_epochs"]:
        optimizer.param_groups[2]["lr"] = 0.0


def train_step(model, optimizer, criterion, x, y):
    loss = criterion(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def lookahead(model, average, step, total_steps):
    """Every 5 steps: average = a average + (1 - a) model, then model = average."""
    if step % 5:
        return
    alpha = 0.95 ** 5 * (step / total_steps) ** 3
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            average[k].mul_(alpha).add_(v, alpha=1 - alpha)
        else:
            average[k].copy_(v)
    model.load_state_dict(average)


def main():
    p = argparse.ArgumentParser(description="The airbench94 recipe in PyTorch (headnet's reference for cifar10-fast)")
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="runs/pytorch_fast")
    p.add_argument("--epochs", type=float, default=9.9)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--width1", type=int, default=64)
    p.add_argument("--width2", type=int, default=256)
    p.add_argument("--width3", type=int, default=256)
    p.add_argument("--tta", type=int, default=2, choices=[0, 1, 2])
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--no-whiten", action="store_true")
    p.add_argument("--no-dirac", action="store_true")
    p.add_argument("--no-lookahead", action="store_true")
    p.add_argument("--no-alt-flip", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--load", help="evaluate this model.safetensors of cifar10-fast instead of training")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args()
    if not 0.05 <= a.epochs <= 1000:
        p.error("--epochs must be in [0.05, 1000]")
    torch.set_num_threads(a.threads or os.cpu_count())
    threads = torch.get_num_threads()
    folder = find_folder(a.data)
    test_x, test_y = read_batches(folder, ["test_batch.bin"])
    torch.manual_seed(a.seed)
    model = airbench(a.width1, a.width2, a.width3)

    if a.load:
        state = load_safetensors(a.load)
        model.load_state_dict({k: v for k, v in state.items()}, strict=True)
        start = time.time()
        plain = evaluate(model, test_x, test_y, 0)
        tta = evaluate(model, test_x, test_y, a.tta)
        print(f"Test accuracy {plain['test_accuracy']:.2f}% without TTA, {tta['test_accuracy']:.2f}% with TTA level "
              f"{a.tta} (PyTorch {torch.__version__}, {threads} threads, {time.time() - start:.1f} s)")
        print(json.dumps({"weights": a.load, "test_accuracy_without_tta": plain["test_accuracy"],
                          "test_accuracy": tta["test_accuracy"]}))
        return

    train_x, train_y = read_batches(folder, [f"data_batch_{i}.bin" for i in range(1, 6)])
    if a.train_subset:
        train_x, train_y = train_x[:a.train_subset], train_y[:a.train_subset]
    recipe = dict(epochs=a.epochs, batch=a.batch, widths=[a.width1, a.width2, a.width3],
                  lr=11.5 / (1024 * (1 + 1 / 0.15)), bias_lr_scale=64, weight_decay_product=1.9957e-3, momentum=0.85,
                  label_smoothing=a.label_smoothing, warmup=0.23, final_factor=0.07, whiten_bias_epochs=3, tta=a.tta,
                  whiten=not a.no_whiten, dirac=not a.no_dirac, lookahead=not a.no_lookahead,
                  alternating_flip=not a.no_alt_flip, seed=a.seed, threads=threads, train_subset=a.train_subset)

    init_weights(model, recipe, train_x)
    freeze(model, recipe)
    optimizer, base_lrs = make_optimizer(model, recipe)
    steps_per_epoch = train_x.shape[0] // a.batch
    total_steps = math.ceil(steps_per_epoch * a.epochs)

    criterion = nn.CrossEntropyLoss(reduction="sum", label_smoothing=a.label_smoothing)
    average = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(a.seed)
    flip_bits = torch.rand(train_x.shape[0], generator=generator) < 0.5
    print(f"PyTorch {torch.__version__}, pytorch_fast.py, {threads} threads, seed {a.seed}, {total_steps} steps", flush=True)

    epoch_accuracy, epoch_loss = [], []
    step = 0
    start = time.time()
    for epoch in range(math.ceil(a.epochs)):
        order = torch.randperm(train_x.shape[0], generator=generator)
        images = augment(train_x[order], epoch, flip_bits[order], generator, alternating=recipe["alternating_flip"])
        labels = train_y[order]
        loss_sum, batches = 0.0, 0
        for b in range(steps_per_epoch):
            if step == total_steps:
                break
            set_learning_rates(optimizer, base_lrs, recipe, step, total_steps, epoch)
            x = images[b * a.batch:(b + 1) * a.batch]
            y = labels[b * a.batch:(b + 1) * a.batch]
            loss = train_step(model, optimizer, criterion, x, y)
            step += 1
            loss_sum += loss / a.batch
            batches += 1
            if recipe["lookahead"]:
                lookahead(model, average, step, total_steps)
            if not a.quiet and b % 10 == 0:
                print(f"\repoch {epoch + 1}: step {b}/{steps_per_epoch} loss {loss_sum / batches:.4f}", end="", flush=True)
        epoch_loss.append(loss_sum / max(batches, 1))
        # Test only after whole epochs, as headnet's Trainer does: a run of 9.9 epochs is tested
        # 9 times, and the evaluation after training covers the last, partial one.
        complete = batches == steps_per_epoch
        if complete:
            epoch_accuracy.append(evaluate(model, test_x, test_y, 0)["test_accuracy"])
        elapsed = time.time() - start
        accuracy = f"  acc {epoch_accuracy[-1]:.2f}%" if complete else ""
        print(f"\repoch {epoch + 1}/{math.ceil(a.epochs)}: loss {epoch_loss[-1]:.4f}, "
              f"{step * a.batch / elapsed:.0f} images/s{accuracy}", flush=True)
    if recipe["lookahead"]:
        model.load_state_dict(average)
    train_seconds = time.time() - start

    eval_start = time.time()
    plain = evaluate(model, test_x, test_y, 0)
    tta = evaluate(model, test_x, test_y, a.tta)
    eval_seconds = time.time() - eval_start
    print(f"Test accuracy {plain['test_accuracy']:.2f}% without TTA, {tta['test_accuracy']:.2f}% with TTA level {a.tta}; "
          f"training {train_seconds:.1f} s ({step * a.batch / train_seconds:.0f} images/s), evaluation {eval_seconds:.1f} s")
    results = dict(tta)
    results.update(recipe=recipe, test_accuracy_without_tta=plain["test_accuracy"], epoch_test_accuracy=epoch_accuracy,
                   epoch_train_loss=epoch_loss, train_seconds=train_seconds, eval_seconds=eval_seconds,
                   images_per_second=step * a.batch / train_seconds, torch_version=torch.__version__)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    torch.save(model.state_dict(), os.path.join(a.out, "model.pt"))
    print(f"Wrote {a.out}/results.json, model.pt")


if __name__ == "__main__":
    main()
