#!/usr/bin/env python3
"""headnet's resnet9 and resnet18_cifar against their PyTorch counterparts (scripts/pytorch_models.py).

Usage: models_interop.py FOLDER, after `models_interop_fixture FOLDER`. For each model:
- its parameter count equals PyTorch's;
- headnet's initial state dict loads with load_state_dict(strict=True), and three SGD steps (lr 0.02,
  momentum 0.9) on the same batches give the same losses as headnet's (1e-4; both in float64, see
  models_interop_fixture.cpp);
- headnet's trained state dict (BatchNorm statistics included) loads strictly and gives the same
  eval-mode logits (1e-4), in float64 and in float32 (headnet's float kernels).
Exits 77 (CTest's "skipped") without PyTorch.
"""
import os
import sys

try:
    import torch
except ImportError:
    print("SKIPPED: PyTorch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "scripts"))
import pytorch_models  # noqa: E402
from safetensors_io import load_safetensors  # noqa: E402

torch.set_num_threads(2)
folder = sys.argv[1]
ok = True
for name in ("resnet9", "resnet18_cifar"):
    path = lambda kind: os.path.join(folder, f"{name}_{kind}.safetensors")  # noqa: E731
    net = getattr(pytorch_models, name)().double()
    net.load_state_dict(load_safetensors(path("initial")), strict=True)
    batches = load_safetensors(path("batches"))
    results = load_safetensors(path("results"))
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for b in range(3):
        loss = torch.nn.functional.cross_entropy(net(batches[f"x{b}"]), batches["labels"][b].long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    loss_difference = max(abs(a - b) for a, b in zip(losses, results["losses"].tolist()))
    net.load_state_dict(load_safetensors(path("trained")), strict=True)
    net.eval()
    with torch.no_grad():
        logits = net(batches["x0"])
    logit_difference = (logits - results["logits"]).abs().max().item()
    net = net.float()
    with torch.no_grad():
        logits32 = net(batches["x0"].float())
    float_results = load_safetensors(path("float_results"))
    logit_difference = max(logit_difference, (logits32 - float_results["logits"]).abs().max().item())
    count = sum(p.numel() for p in net.parameters())
    print(f"{name}: {count} parameters; losses PyTorch {['%.6f' % v for v in losses]}, headnet "
          f"{['%.6f' % v for v in results['losses'].tolist()]}, max difference {loss_difference:.2e}; "
          f"eval logits max difference {logit_difference:.2e}")
    ok = ok and loss_difference < 1e-4 and logit_difference < 1e-4
sys.exit(0 if ok else 1)
