#!/usr/bin/env python3
"""How many threads headnet's convolution kernels can keep busy: a model of the work split.

    python3 scripts/work_split_model.py > table.md

Each convolution pass hands the threads units of work, taken as they free up
(kernels/conv2d_workspace.hpp, detail::for_each_image_chunk and Winograd's chunks of tiles):

- the direct kernels (kernels/conv2d_direct_impl.hpp): the forward and the input gradient one
  image per unit, the weight gradient max(8, threads) fixed chunks of the batch (each with its own
  partial sum, added in chunk order), capped by the batch. Since session 15, when those are fewer
  than the threads, each image or chunk is cut into parts (detail::channel_parts: one unit per
  thread, at most one part per register tile, and at least 3 x 2^20 multiply-adds of work a
  part): the forward's output channels, the input gradient's input channels, the weight
  gradient's output channels (or its taps, where the output channels are fewer tiles than parts);
- Winograd (kernels/conv2d_winograd.hpp, 3x3 layers with 128 output tiles or more in the batch):
  chunks of tiles_per_chunk tiles (the forward and the input gradient), the weight gradient in
  min(2 x threads, 64, chunks) groups of chunks;
- im2col + GEMM (what prefer_direct leaves to it: here the 256 -> 256 weight gradients when
  Winograd does not take them): one range of images per thread.

BatchNorm, pooling and activations split over channels, planes or elements (thousands of units at
these sizes), so the convolutions bound the scaling; the first layer needs no input gradient.

The units are scheduled as the threads take them (each to the least loaded thread, in order), and a
unit's work is proportional to its channels (or tiles, or images). The table gives, for each
network and batch, the share of the threads' time the split leaves usable, weighted by each pass's
multiply-adds: memory bandwidth, caches and the serial parts of a step aside. The sizes are the
AVX-512 kernels' (12-channel forward tiles, 32-channel blocks by channel); the AVX2 ones are half as
wide, so they cut into more parts.
"""
TILE_ROWS, CHANNEL_BLOCK, GRAD_CHANNELS, W = 12, 32, 2, 16
LEAST_PART_WORK = 3 << 20  # detail::part_multiply_adds(): the least work worth a part

# (c_in, c_out, kernel, padding, input height = width) per conv layer, stride 1.
NETS = {
    "tutorial": [(3, 6, 5, 0, 32), (6, 16, 5, 0, 14)],
    "wide": [(3, 128, 5, 0, 32), (128, 16, 5, 0, 14)],
    # airbench: whitening 2x2 (32 -> 31), then blocks of two 3x3 convs with pooling between.
    "fast": [(3, 24, 2, 0, 32), (24, 64, 3, 1, 31), (64, 64, 3, 1, 15), (64, 256, 3, 1, 15),
             (256, 256, 3, 1, 7), (256, 256, 3, 1, 7), (256, 256, 3, 1, 3), (256, 256, 3, 1, 3)],
}


def makespan(units, threads):
    """The busiest thread's load when units (sizes, in order) go each to the least loaded thread."""
    loads = [0.0] * threads
    for u in units:
        i = loads.index(min(loads))
        loads[i] += u
    return max(loads)


def ceil_div(a, b):
    return (a + b - 1) // b


def channel_parts(chunks, tiles, threads):
    if chunks >= threads:
        return 1
    return max(1, min(tiles, ceil_div(threads, chunks)))


def part_sizes(channels, block, parts):
    """Channels per part: whole blocks, as detail::block_range cuts them."""
    blocks = ceil_div(channels, block)
    edges = [min(channels, blocks * p // parts * block) for p in range(parts + 1)]
    return [b - a for a, b in zip(edges, edges[1:])]


def direct_units(chunk_images, parts, passes):
    """Units of a direct-kernel call: each chunk (of chunk_images[i] images) cut into parts; a unit
    does each pass's share of channels for its images. passes: (multiply-adds per image, channels,
    block) of each gradient (or the forward) the call computes."""
    units = []
    for n in chunk_images:
        cut = [part_sizes(channels, block, parts) for _, channels, block in passes]
        for p in range(parts):
            units.append(sum(n * macs * cut[i][p] / channels for i, (macs, channels, _) in enumerate(passes)))
    return units


def chunks_of(batch, chunks):
    chunks = max(1, min(chunks, batch))
    return [batch * (c + 1) // chunks - batch * c // chunks for c in range(chunks)]


def winograd_units(tiles, threads, weight_gradient):
    per_thread = ceil_div(tiles, threads)
    per_chunk = max(1, min(min(128, ceil_div(per_thread, 16) * 16), tiles))
    chunks = [min(per_chunk, tiles - i) for i in range(0, tiles, per_chunk)]
    if not weight_gradient:
        return chunks
    groups = min(2 * threads, 64, len(chunks))
    return [sum(chunks[len(chunks) * g // groups:len(chunks) * (g + 1) // groups]) for g in range(groups)]


def parts_for(chunk_images, tiles, threads, macs, least):
    """detail::channel_parts; macs: the multiply-adds of a chunk; least: the least work of a part
    (None: no parts)."""
    if least is None:
        return 1
    return min(channel_parts(len(chunk_images), tiles, threads), max(1, macs // least))


def passes(layer, first, batch, threads, least):
    """(multiply-adds, units) of each parallel call the layer's training step makes."""
    c_in, c_out, k, pad, size = layer
    out = size + 2 * pad - k + 1
    image_macs = c_out * c_in * k * k * out * out
    macs = batch * image_macs
    images = [1] * batch
    tiles = batch * ceil_div(out, 4) ** 2
    winograd = k == 3 and tiles >= 128
    scatter = pad == 0 and k == 5  # both 5x5 conv2s; the 3x3 padding-1 layers gather
    by_channel = c_out % W == 0  # the weight gradient's layout (direct::plan)
    # The forward runs by channel where the extended rows waste a fifth or more (wide conv2).
    forward_by_channel = by_channel and out * 5 <= (out + k - 1) * 4
    result = []
    # Forward: one unit per image, cut into parts of output channels.
    if winograd and c_in >= 32:
        result.append((macs, winograd_units(tiles, threads, False)))
    else:
        block = CHANNEL_BLOCK if forward_by_channel else TILE_ROWS
        parts = parts_for(images, ceil_div(c_out, block), threads, image_macs, least)
        result.append((macs, direct_units(images, parts, [(image_macs, c_out, block)])))
    # Backward: the gradients the direct kernels take share one call, over the weight gradient's
    # chunks, each cut into parts: dx by input channels, the weight gradient by output channels, or
    # by taps where its channels are fewer tiles than parts.
    direct = []
    if not first:
        if winograd and c_out >= 32:
            result.append((macs, winograd_units(tiles, threads, False)))
        else:
            direct.append((image_macs, c_in, CHANNEL_BLOCK if scatter and c_in % W == 0 else TILE_ROWS))
    gw_direct = False
    if winograd and c_in * c_out >= 64 * 64:
        result.append((macs, winograd_units(tiles, threads, True)))
    elif c_out >= 128 and c_in * k * k >= 1024 and c_out * c_in * k * k > (1 << 19):
        result.append((macs, [1] * min(batch, threads)))  # im2col + GEMM, one range per thread
    else:
        gw_direct = True
    if direct or gw_direct:
        chunks = chunks_of(batch, max(8, threads))
        gw_block = CHANNEL_BLOCK if by_channel else GRAD_CHANNELS
        taps = c_in * k * k
        tiles_most = max([ceil_div(ch, block) for _, ch, block in direct] +
                         ([ceil_div(c_out, gw_block), ceil_div(taps, TILE_ROWS)] if gw_direct else []))
        calls = len(direct) + gw_direct
        parts = parts_for(chunks, tiles_most, threads, max(chunks) * image_macs * calls, least)
        if gw_direct:
            by_taps = parts > ceil_div(c_out, gw_block)
            direct.append((image_macs, taps, TILE_ROWS) if by_taps else (image_macs, c_out, gw_block))
        result.append((macs * calls, direct_units(chunks, parts, direct)))
    return result


def network_busy(layers, batch, threads, least=LEAST_PART_WORK):
    total = used = 0.0
    for i, layer in enumerate(layers):
        for macs, units in passes(layer, i == 0, batch, threads, least):
            total += macs
            used += macs * sum(units) / (threads * makespan(units, threads))
    return used / total


def main():
    thread_counts = (2, 4, 8, 16)
    print("| network | batch | " + " | ".join(f"{t} threads" for t in thread_counts) +
          " | 16 threads, parts from 2^20 multiply-adds | 16 threads, images and chunks only (before) |")
    print("|---|---|" + "---|" * (len(thread_counts) + 2))
    for name, layers in NETS.items():
        for batch in (1, 4, 32, 128, 1024):
            cells = " | ".join(f"{100 * network_busy(layers, batch, t):.0f}%" for t in thread_counts)
            finer = 100 * network_busy(layers, batch, 16, 1 << 20)
            before = 100 * network_busy(layers, batch, 16, None)
            print(f"| {name} | {batch} | {cells} | {finer:.0f}% | {before:.0f}% |")


if __name__ == "__main__":
    main()
