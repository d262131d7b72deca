#!/usr/bin/env python3
"""headnet against PyTorch on the same CPU, in the same run, alternating.

  python3 benchmarks/compare_pytorch.py [--repeats 3] [--quick]
  python3 benchmarks/compare_pytorch.py --fast-layers     # the fast recipe's layers on every path
  python3 benchmarks/compare_pytorch.py --targets         # issue #13's targets, met or not (exit 1 if not)
  python3 benchmarks/compare_pytorch.py --activations     # the element-wise activations, each ISA's copy

Needs build/benchmarks/headnet-train-throughput and headnet-conv-kernels (configure with
-DHEADNET_BUILD_BENCHMARKS=ON) and Debian's python3-torch. For every network and batch it runs
headnet (1 and 2 threads) and PyTorch (1 and 2 threads) in turn, --repeats rounds, and takes each
one's median; PyTorch's figure is its best thread setting. For the conv layers it times forward,
backward to the input and backward to the weights at batch 32 in both. The tables are written
between the results markers of docs/benchmarks.md, with the machine, flags and date.

PyTorch runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment (its best
kernels, as docs/BENCHMARKING asks); headnet's runs keep the environment as it is.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bench = os.path.join(root, "build", "benchmarks")
torch_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}

LAYERS = [  # name, c_in, c_out, k, padding, size
    ("tutorial_conv1", 3, 6, 5, 0, 32), ("tutorial_conv2", 6, 16, 5, 0, 14), ("wide_conv1", 3, 128, 5, 0, 32),
    ("wide_conv2", 128, 16, 5, 0, 14), ("3x3_64_32x32", 64, 64, 3, 1, 32), ("3x3_128_16x16", 128, 128, 3, 1, 16),
    ("3x3_256_8x8", 256, 256, 3, 1, 8)]

FAST_LAYERS = [  # the fast recipe's 3x3 convolutions (issue #13's targets), at batch 256
    ("fast_24_64_31x31", 24, 64, 3, 1, 31), ("fast_64_64_15x15", 64, 64, 3, 1, 15),
    ("fast_64_256_15x15", 64, 256, 3, 1, 15), ("fast_256_256_7x7", 256, 256, 3, 1, 7),
    ("fast_256_256_3x3", 256, 256, 3, 1, 3)]

TIMEIT = r'''
import time
def timeit(f):
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n): f()
        t = time.perf_counter() - t
        if t > 0.2: return t / n
        n *= 2
'''

PYTORCH_LAYER = TIMEIT + r'''
import json, sys, time, torch
import torch.nn.functional as F
name, c_in, c_out, k, p, size, batch, threads = sys.argv[1:]
c_in, c_out, k, p, size, batch, threads = map(int, (c_in, c_out, k, p, size, batch, threads))
torch.set_num_threads(threads)
x = torch.rand(batch, c_in, size, size, requires_grad=True)
w = torch.rand(c_out, c_in, k, k, requires_grad=True) - 0.5
b = torch.zeros(c_out, requires_grad=True)
y = F.conv2d(x, w, b, padding=p)
dy = torch.rand_like(y)
with torch.no_grad():
    fwd = timeit(lambda: F.conv2d(x, w, b, padding=p))
y = F.conv2d(x, w, b, padding=p)
bin_ = timeit(lambda: torch.nn.grad.conv2d_input(x.shape, w, dy, padding=p))
bw = timeit(lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, padding=p))
flops = 2.0 * batch * c_out * y.shape[2] * y.shape[3] * c_in * k * k
print(json.dumps({"forward": flops / fwd / 1e9, "backward_input": flops / bin_ / 1e9, "backward_weight": flops / bw / 1e9}))
'''

PYTORCH_ACTIVATIONS = TIMEIT + r'''
import json, sys, time, torch
import torch.nn.functional as F
batch, threads = map(int, sys.argv[1:])
torch.set_num_threads(threads)
x = torch.rand(batch, 64, 16, 16) * 8 - 4  # as headnet-conv-kernels: uniform in [-4, 4]
dy = torch.rand_like(x) * 2 - 1
aten = torch.ops.aten
# Forward: the functional form; backward: ATen's own backward kernel, given what autograd saves.
cases = {
    "relu": (F.relu, lambda y: aten.threshold_backward(dy, y, 0)),
    "leaky_relu": (F.leaky_relu, lambda y: aten.leaky_relu_backward(dy, x, 0.01, False)),
    "gelu": (F.gelu, lambda y: aten.gelu_backward(dy, x)),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), lambda y: aten.gelu_backward(dy, x, approximate="tanh")),
    "silu": (F.silu, lambda y: aten.silu_backward(dy, x)),
    "sigmoid": (torch.sigmoid, lambda y: aten.sigmoid_backward(dy, y)),
    "tanh": (torch.tanh, lambda y: aten.tanh_backward(dy, y)),
}
result = {}
with torch.no_grad():
    for name, (forward, backward) in cases.items():
        y = forward(x)
        result[name] = {"forward": x.numel() / timeit(lambda: forward(x)) / 1e9,
                        "backward": x.numel() / timeit(lambda: backward(y)) / 1e9}
print(json.dumps(result))
'''


def headnet_throughput(net, batch, threads, seconds=0.4, repeats=3, steps=0, warmup=0):
    """images/s of headnet's training step: the median of `repeats` timed runs of about `seconds` (or of
    `steps` steps) each."""
    out = subprocess.run([os.path.join(bench, "headnet-train-throughput"), "--nets", net, "--batch", str(batch),
                          "--threads", str(threads), "--repeats", str(repeats), "--seconds", str(seconds),
                          "--steps", str(steps), "--warmup", str(warmup), "--json", "/dev/stdout"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("["):])[0]["median"]


def pytorch_throughput(net, batch, threads, seconds=0.4, repeats=3, steps=0, warmup=0):
    """The same for PyTorch (benchmarks/pytorch_throughput.py)."""
    out = subprocess.run(["/usr/bin/python3", os.path.join(root, "benchmarks", "pytorch_throughput.py"), "--nets", net,
                          "--batch", str(batch), "--threads", str(threads), "--repeats", str(repeats), "--seconds",
                          str(seconds), "--steps", str(steps), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True, env=torch_env).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


def headnet_layers(batch, names=".*", isa=None, algorithm=None, with_paths=False):
    out = subprocess.run([os.path.join(bench, "headnet-conv-kernels"), f"--benchmark_filter=^(forward|backward_input|backward_weight)/{names}/{batch}/",
                          "--benchmark_format=json", "--benchmark_min_time=0.2"] + ([f"--isa={isa}"] if isa else [])
                         + ([f"--algorithm={algorithm}"] if algorithm else []),
                         check=True, capture_output=True, text=True).stdout
    peak = float(re.search(r"Measured fp32 FMA peak: ([0-9.]+) GFLOP/s", out).group(1))
    data = json.loads(out[out.index("\n{") + 1:])
    result, paths = {}, {}
    for b in data["benchmarks"]:
        kind, name, _ = b["name"].split("/")[:3]
        result[(name, kind)] = b["GFLOP/s"]
        paths[(name, kind)] = b.get("label", "")
    return (peak, result, paths) if with_paths else (peak, result)


def pytorch_layer(layer, batch, threads):
    name, c_in, c_out, k, p, size = layer
    out = subprocess.run(["/usr/bin/python3", "-c", PYTORCH_LAYER, name, str(c_in), str(c_out), str(k), str(p), str(size),
                          str(batch), str(threads)], check=True, capture_output=True, text=True, env=torch_env).stdout
    return json.loads(out)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--repeats", type=int, default=3)
    a.add_argument("--quick", action="store_true", help="one round, fewer configurations")
    a.add_argument("--doc", default=os.path.join(root, "docs", "benchmarks.md"))
    a.add_argument("--reuse-throughput", metavar="JSON",
                   help="take the training-throughput samples from this file (written by an earlier run)")
    a.add_argument("--fast-layers", action="store_true",
                   help="only the fast recipe's 3x3 layers at batch 256, for every instruction set the CPU has "
                        "(printed, not written to the doc)")
    a.add_argument("--targets", action="store_true",
                   help="issue #13's speed targets, all in one run: the fast recipe's layers and whole step, the "
                        "tutorial and wide networks against PyTorch, and the slowdown beside a busy process; "
                        "prints each target with its figure and whether it is met (not written to the doc)")
    a.add_argument("--no-load", action="store_true", help="with --targets: skip the runs beside a busy process")
    a.add_argument("--activations", action="store_true",
                   help="only the element-wise activation layers on (256, 64, 16, 16), forward and backward, in each "
                        "instruction set's copy the CPU runs, against PyTorch (printed, not written to the doc)")
    args = a.parse_args()
    repeats = 1 if args.quick else args.repeats
    if args.fast_layers:
        return fast_layers(repeats)
    if args.targets:
        return targets(repeats, not args.no_load)
    if args.activations:
        return activations(repeats)
    # Layers: `repeats` rounds, each headnet's whole kernel benchmark then PyTorch's layers, medians.
    layer_samples, peaks, paths = {}, [], {}
    for r in range(repeats):
        peak, layers, paths = headnet_layers(32, with_paths=True)
        peaks.append(peak)
        for key, value in layers.items():
            layer_samples.setdefault(("headnet",) + key, []).append(value)
        for layer in LAYERS:
            for th in (1, 2):
                for kind, value in pytorch_layer(layer, 32, th).items():
                    layer_samples.setdefault(("pytorch", layer[0], kind, th), []).append(value)
        print(f"round {r + 1}: layers done", file=sys.stderr, flush=True)
    peak = statistics.median(peaks)
    lines = [f"### Conv layers at batch 32, 2 threads (GFLOP/s, median of {repeats} rounds; measured FMA peak "
             f"{peak:.0f} GFLOP/s)", "",
             "GFLOP/s are 2 x the plain convolution's multiply-adds per second, whatever the path: Winograd's "
             "paths do fewer multiplications, so they can pass 100% of the peak.", "",
             "| layer | pass | headnet's path | headnet | % of peak | PyTorch (best of 1, 2 threads) | headnet / PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for layer in LAYERS:
        for kind in ("forward", "backward_input", "backward_weight"):
            h = statistics.median(layer_samples[("headnet", layer[0], kind)])
            p = max(statistics.median(layer_samples[("pytorch", layer[0], kind, th)]) for th in (1, 2))
            path = paths.get((layer[0], kind), "?")
            lines.append(f"| {layer[0]} | {kind} | {path} | {h:.1f} | {100 * h / peak:.0f}% | {p:.1f} | {h / p:.2f}x |")
    print("\n".join(lines), file=sys.stderr, flush=True)

    configs = [(n, b) for n in ("tutorial", "wide") for b in (4, 32, 128)]
    samples = {}
    if args.reuse_throughput:
        with open(args.reuse_throughput) as f:
            for key, values in json.load(f).items():
                who, net, batch, threads = key.split()
                samples[(who, net, int(batch), int(threads))] = values
        repeats = len(next(iter(samples.values())))
    for r in range(0 if args.reuse_throughput else repeats):
        for net, batch in configs:
            for threads in (1, 2):
                samples.setdefault(("headnet", net, batch, threads), []).append(headnet_throughput(net, batch, threads))
                samples.setdefault(("pytorch", net, batch, threads), []).append(pytorch_throughput(net, batch, threads))
            print(f"round {r + 1}: {net} batch {batch} done", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    os.makedirs(os.path.join(root, "runs"), exist_ok=True)
    with open(os.path.join(root, "runs", "compare_pytorch_samples.json"), "w") as f:
        json.dump({" ".join(map(str, k)): v for k, v in samples.items()}, f, indent=1)

    lines += ["", "### Training throughput (images/s, forward + backward + SGD step, median of "
             f"{repeats} rounds)", "",
             "| network | batch | headnet 1 thread | headnet 2 threads | PyTorch 1 thread | PyTorch 2 threads | "
             "headnet 2T / PyTorch best | headnet 2T / 1T |", "|---|---|---|---|---|---|---|---|"]
    for net, batch in configs:
        h1, h2 = med[("headnet", net, batch, 1)], med[("headnet", net, batch, 2)]
        p1, p2 = med[("pytorch", net, batch, 1)], med[("pytorch", net, batch, 2)]
        lines.append(f"| {net} | {batch} | {h1:.0f} | {h2:.0f} | {p1:.0f} | {p2:.0f} | **{h2 / max(p1, p2):.2f}x** | {h2 / h1:.2f}x |")

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu).group(1).strip()
    flags = re.search(r"Flags:\s*(.*)", cpu).group(1).split()
    simd = ", ".join(f for f in ("avx2", "fma", "avx512f") if f in flags) or "none of avx2/fma/avx512f"
    torch_version = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    lines += ["", f"Measured {datetime.date.today().isoformat()} by `python3 benchmarks/compare_pytorch.py"
              f"{' --quick' if args.quick else ''}`"
              + (" (the training-throughput samples reused from an earlier run with `--reuse-throughput`)"
                 if args.reuse_throughput else "") + f" on {model}, {os.cpu_count()} cores ({simd}), {platform.platform()}; "
              f"headnet built with g++ `-O3 -march=native` (Release), PyTorch {torch_version} from Debian with "
              "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset."]
    table = "\n".join(lines)
    print(table)
    with open(args.doc) as f:
        doc = f.read()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin) + len(begin)] + "\n" + table + "\n" + doc[doc.index(end):]
        with open(args.doc, "w") as f:
            f.write(doc)
        print(f"updated {args.doc}", file=sys.stderr)


def fast_layers(repeats):
    """The fast recipe's layers at batch 256, 2 threads: headnet's direct kernels at each instruction
    set the CPU has (each with the FMA peak at its width, measured in the same run), Winograd F(4x4, 3x3)
    and F(3x3, 3x3) at each of them too (the automatic choice is measured per width) and F(2x2, 3x3)
    at the widest, against PyTorch's best of 1 and 2 threads."""
    flags = open("/proc/cpuinfo").read()
    isas = ["avx2"] + (["avx512"] if " avx512f" in flags else [])
    configs = ([(i, a) for i in isas for a in ("direct", "winograd_4x4", "winograd_3x3")]
               + [(isas[-1], "winograd_2x2")])
    samples, peaks = {}, {}
    for r in range(repeats):
        for isa, algorithm in configs:
            peak, layers = headnet_layers(256, "fast_.*", isa, algorithm)
            peaks.setdefault(isa, []).append(peak)
            for key, value in layers.items():
                samples.setdefault((isa, algorithm) + key, []).append(value)
        for layer in FAST_LAYERS:
            for th in (1, 2):
                for kind, value in pytorch_layer(layer, 256, th).items():
                    samples.setdefault(("pytorch", layer[0], kind, th), []).append(value)
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    head = ("| layer | pass | " + " | ".join(f"headnet {a} {i} (x its peak)" for i, a in configs)
            + " | PyTorch best of 1, 2 threads | headnet best / PyTorch |")
    lines = [f"### The fast recipe's 3x3 layers at batch 256, 2 threads (GFLOP/s counted with the direct formula, median of {repeats} rounds; FMA peak "
             + ", ".join(f"{i} {statistics.median(peaks[i]):.0f}" for i in isas) + " GFLOP/s, measured in the same run)", "",
             head, "|" + "---|" * (4 + len(configs))]
    for layer in FAST_LAYERS:
        for kind in ("forward", "backward_input", "backward_weight"):
            h = {c: statistics.median(samples[c + (layer[0], kind)]) for c in configs}
            p = max(statistics.median(samples[("pytorch", layer[0], kind, th)]) for th in (1, 2))
            cells = " | ".join(f"{h[c]:.1f} ({h[c] / statistics.median(peaks[c[0]]):.2f})" for c in configs)
            lines.append(f"| {layer[0]} | {kind} | {cells} | {p:.1f} | {max(h.values()) / p:.2f}x |")
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu).group(1).strip()
    lines += ["", f"Measured {datetime.date.today().isoformat()} by `python3 benchmarks/compare_pytorch.py --fast-layers` on {model}, "
              f"{os.cpu_count()} cores; headnet built with g++ -O3 -march=native, each path forced with --isa and --algorithm."]
    print("\n".join(lines))


def activations(repeats, batch=256):
    """The element-wise activation layers at batch 256, 2 threads, G elements/s: headnet in each
    instruction set's copy the CPU runs (forced with --isa) against PyTorch's best of 1 and 2 threads."""
    flags = open("/proc/cpuinfo").read()
    isas = ["portable", "avx2"] + (["avx512"] if " avx512f" in flags else [])
    names = ["relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"]
    samples = {}
    for r in range(repeats):
        for isa in isas:
            out = subprocess.run([os.path.join(bench, "headnet-conv-kernels"),
                                  f"--benchmark_filter=^activation_(forward|backward)/.*/{batch}/",
                                  "--benchmark_format=json", "--benchmark_min_time=0.2", f"--isa={isa}"],
                                 check=True, capture_output=True, text=True).stdout
            for b in json.loads(out[out.index("\n{") + 1:])["benchmarks"]:
                kind, name = b["name"].split("/")[:2]
                samples.setdefault((isa, name, kind.split("_")[1]), []).append(b["Gelem/s"])
        for th in (1, 2):
            out = subprocess.run(["/usr/bin/python3", "-c", PYTORCH_ACTIVATIONS, str(batch), str(th)], check=True,
                                 capture_output=True, text=True, env=torch_env).stdout
            for name, kinds in json.loads(out).items():
                for kind, value in kinds.items():
                    samples.setdefault(("pytorch", name, kind, th), []).append(value)
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    lines = [f"### Element-wise activation layers on ({batch}, 64, 16, 16), 2 threads (G elements/s, median of {repeats} rounds)",
             "", "| activation | pass | " + " | ".join(f"headnet {i}" for i in isas)
             + " | PyTorch best of 1, 2 threads | headnet " + isas[-1] + " / PyTorch |", "|" + "---|" * (4 + len(isas))]
    for name in names:
        for kind in ("forward", "backward"):
            h = {i: statistics.median(samples[(i, name, kind)]) for i in isas}
            p = max(statistics.median(samples[("pytorch", name, kind, th)]) for th in (1, 2))
            lines.append(f"| {name} | {kind} | " + " | ".join(f"{h[i]:.2f}" for i in isas)
                         + f" | {p:.2f} | {h[isas[-1]] / p:.2f}x |")
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", cpu).group(1).strip()
    lines += ["", f"Measured {datetime.date.today().isoformat()} by `python3 benchmarks/compare_pytorch.py --activations` "
              f"on {model}, {os.cpu_count()} cores; headnet built with g++ -O3 -march=native, each copy forced with --isa."]
    print("\n".join(lines))


def headnet_steps(net, batch, threads, seconds=1.0, steps=0, warmup=0):
    """One timed run (each round of --targets is a repeat)."""
    return headnet_throughput(net, batch, threads, seconds, 1, steps, warmup)


def pytorch_steps(net, batch, threads, seconds=1.0, steps=0, warmup=0):
    return pytorch_throughput(net, batch, threads, seconds, 1, steps, warmup)


FORWARD_MACS = r'''
import sys, torch
sys.path.insert(0, sys.argv[1])
from pytorch_models import airbench
macs = 0
def count(module, inputs, output):
    global macs
    if isinstance(module, torch.nn.Conv2d):
        macs += output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
    elif isinstance(module, torch.nn.Linear):
        macs += output.numel() * module.in_features
net = airbench()
for m in net.modules():
    m.register_forward_hook(count)
with torch.no_grad():
    net(torch.zeros(1, 3, 32, 32))
print(macs)
'''


def targets(repeats, load):
    """Issue #13's targets, measured in one run on the widest vector width the CPU has: `repeats` rounds,
    headnet and PyTorch alternating within each round, medians over the rounds."""
    cpuinfo = open("/proc/cpuinfo").read()
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M).group(1).split()
    model = re.search(r"^model name\s*:(.*)$", cpuinfo, re.M).group(1).strip()
    widest = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags and "fma" in flags else "portable"
    macs = int(subprocess.run(["/usr/bin/python3", "-c", FORWARD_MACS, os.path.join(root, "scripts")], check=True,
                              capture_output=True, text=True, env=torch_env).stdout)
    fast_step = [("pytorch", 256, 1), ("pytorch", 256, 2), ("pytorch", 1024, 1), ("pytorch", 1024, 2)]
    nets = [(n, b) for n in ("tutorial", "wide") for b in (4, 32, 128)]
    loaded = [(n, b) for n in ("tutorial", "wide") for b in (4, 32)]
    samples, peaks, paths = {}, [], {}
    add = lambda key, value: samples.setdefault(key, []).append(value)
    for r in range(repeats):
        peak, layers, paths = headnet_layers(256, "fast_.*", widest, with_paths=True)
        peaks.append(peak)
        for key, value in layers.items():
            add(("layer", "headnet") + key, value)
        for layer in FAST_LAYERS:
            for th in (1, 2):
                for kind, value in pytorch_layer(layer, 256, th).items():
                    add(("layer", "pytorch", layer[0], kind, th), value)
        print(f"round {r + 1}: fast layers done", file=sys.stderr, flush=True)
        add(("step", "headnet", 1024, 2), headnet_steps("fast", 1024, 2, steps=2, warmup=1))
        for who, batch, th in fast_step:
            add(("step", who, batch, th), pytorch_steps("fast", batch, th, steps=1 if batch == 1024 else 2, warmup=1))
        print(f"round {r + 1}: fast step done", file=sys.stderr, flush=True)
        for net, batch in nets:
            add(("net", "headnet", net, batch), headnet_steps(net, batch, 2))
            for th in (1, 2):
                add(("net", "pytorch", net, batch, th), pytorch_steps(net, batch, th))
        print(f"round {r + 1}: tutorial and wide done", file=sys.stderr, flush=True)
        for net, batch in loaded if load else []:
            alone = headnet_steps(net, batch, 2)
            busy = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            try:
                contended = headnet_steps(net, batch, 2)
            finally:
                busy.kill()
                busy.wait()
            add(("load", net, batch), alone / contended)
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    os.makedirs(os.path.join(root, "runs"), exist_ok=True)
    with open(os.path.join(root, "runs", "targets_samples.json"), "w") as f:
        json.dump({" ".join(map(str, k)): v for k, v in samples.items()}, f, indent=1)

    med = {k: statistics.median(v) for k, v in samples.items()}
    spread = lambda k: f"{min(samples[k]):.3g}-{max(samples[k]):.3g}"
    peak = statistics.median(peaks)
    rows, met = [], []

    def target(what, figure, required, ok):
        rows.append(f"| {what} | {figure} | {required} | {'yes' if ok else '**no**'} |")
        met.append(ok)

    for layer in FAST_LAYERS:
        for kind in ("forward", "backward_input", "backward_weight"):
            h = med[("layer", "headnet", layer[0], kind)]
            p = max(med[("layer", "pytorch", layer[0], kind, th)] for th in (1, 2))
            target(f"{layer[0]} {kind} ({paths.get((layer[0], kind), '?')})",
                   f"{h:.0f} GFLOP/s = {h / peak:.2f}x peak, {h / p:.2f}x PyTorch ({p:.0f})",
                   ">= 0.65x peak, > PyTorch", h >= 0.65 * peak and h > p)
    h = med[("step", "headnet", 1024, 2)]
    gflops = 3 * 2 * macs * h / 1e9
    same = max(med[("step", "pytorch", 1024, th)] for th in (1, 2))
    best_key = max(fast_step, key=lambda k: med[("step",) + k])
    best = med[("step",) + best_key]
    target("fast step, batch 1024: effective GFLOP/s (3 x 2 x forward MACs x images/s)",
           f"{gflops:.0f} = {gflops / peak:.2f}x peak ({h:.0f} images/s, {spread(('step', 'headnet', 1024, 2))})",
           ">= 0.5x peak", gflops >= 0.5 * peak)
    target("fast step, batch 1024, against PyTorch at batch 1024", f"{h / same:.2f}x ({same:.0f} images/s)", ">= 2x",
           h >= 2 * same)
    target("fast step, batch 1024, against PyTorch's best", f"{h / best:.2f}x ({best:.0f} images/s, batch "
           f"{best_key[1]}, {best_key[2]} thread{'s' if best_key[2] > 1 else ''})", ">= 1.5x", h >= 1.5 * best)
    for net, batch in nets:
        h = med[("net", "headnet", net, batch)]
        p = max(med[("net", "pytorch", net, batch, th)] for th in (1, 2))
        need = 4 if net == "tutorial" else 2.5
        target(f"{net} network, batch {batch}, against PyTorch", f"{h / p:.2f}x ({h:.0f} / {p:.0f} images/s)",
               f">= {need}x", h >= need * p)
    for net, batch in loaded if load else []:
        k = ("load", net, batch)
        target(f"{net} network, batch {batch}, beside a busy process", f"{med[k]:.2f}x slower ({spread(k)})",
               "<= 2.5x", med[k] <= 2.5)
    simd = " ".join(f for f in flags if f in ("avx", "avx2", "fma") or f.startswith("avx512")) or "no AVX"
    torch_version = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    lines = [f"### Issue #13's targets: {sum(met)} of {len(met)} met (medians of {repeats} rounds; FMA peak "
             f"{peak:.0f} GFLOP/s at {widest}, measured in the same run)", "",
             "| target | measured | required | met |", "|---|---|---|---|"] + rows + [
             "", f"Measured {datetime.date.today().isoformat()} by `python3 benchmarks/compare_pytorch.py --targets"
             f" --repeats {repeats}` on {model}, {os.cpu_count()} cores (flags: {simd}); headnet on 2 "
             f"threads at {widest} (automatic paths), PyTorch {torch_version} at its better of 1 and 2 threads; the "
             f"fast network does {macs / 1e6:.1f} M multiply-adds per image forward (counted by PyTorch hooks)."]
    print("\n".join(lines))
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
