#!/usr/bin/env python3
"""How many threads headnet's convolution kernels can keep busy: a model of the work split.

    python3 scripts/work_split_model.py > table.md

The direct kernels (kernels/conv2d_direct_impl.hpp) hand out work in units that threads take as
they free up (detail::for_each_image_chunk): the forward and the input gradient one image per unit,
the weight gradient max(8, threads) fixed chunks of the batch (each with its own partial sum, added
in chunk order), capped by the batch. im2col + GEMM (the stride-2 and tiny layers) splits the batch
into one range per thread. BatchNorm, pooling and activations split over channels, planes or
elements (thousands of units at these sizes), so the convolutions bound the scaling.

With u equal units on T threads the slowest thread does ceil(u / T) of them, so the busy fraction
is u / (T x ceil(u / T)). The table gives that fraction for each network and batch, weighted by
each layer's multiply-adds (forward, input and weight gradient count alike), at 2-16 threads: the
share of the cores' time the work split alone leaves usable (memory bandwidth and caches aside).
"""
import math

# (c_in, c_out, kernel, output height = width, stride, direct?) per conv layer.
NETS = {
    "tutorial": [(3, 6, 5, 28, 1, True), (6, 16, 5, 10, 1, True)],
    "wide": [(3, 128, 5, 28, 1, True), (128, 16, 5, 10, 1, True)],
    # airbench: whitening 2x2 (stride 1, 31x31), then blocks of two 3x3 convs with pooling between.
    "fast": [(3, 24, 2, 31, 1, True), (24, 64, 3, 31, 1, True), (64, 64, 3, 15, 1, True),
             (64, 256, 3, 15, 1, True), (256, 256, 3, 7, 1, True), (256, 256, 3, 7, 1, True),
             (256, 256, 3, 3, 1, False), (256, 256, 3, 3, 1, False)],
}


def busy(units, threads):
    units = max(1, units)
    return units / (threads * math.ceil(units / threads))


def network_busy(layers, batch, threads, fixed_chunks=False):
    total = used = 0.0
    for c_in, c_out, k, out, _, direct in layers:
        macs = batch * c_out * c_in * k * k * out * out
        if direct:
            passes = [batch, batch, min(batch, 8 if fixed_chunks else max(8, threads))]
        else:  # im2col + GEMM: one contiguous range of images per thread
            passes = [min(batch, threads)] * 3
        for units in passes:
            total += macs
            used += macs * busy(units, threads)
    return used / total


def main():
    thread_counts = (2, 4, 8, 16)
    print("| network | batch | " + " | ".join(f"{t} threads" for t in thread_counts) +
          " | 16 threads, weight gradient in 8 fixed chunks (before) |")
    print("|---|---|" + "---|" * (len(thread_counts) + 1))
    for name, layers in NETS.items():
        for batch in (4, 32, 128, 1024):
            cells = " | ".join(f"{100 * network_busy(layers, batch, t):.0f}%" for t in thread_counts)
            print(f"| {name} | {batch} | {cells} | {100 * network_busy(layers, batch, 16, True):.0f}% |")


if __name__ == "__main__":
    main()
