#!/usr/bin/env python3
"""The residual test model (BatchNorm statistics included) moves between headnet and PyTorch.

Usage: residual_interop.py FOLDER, after `residual_interop_fixture write FOLDER`.
1. Loads headnet's model.safetensors into the PyTorch module tree of tests/residual_model.py with
   load_state_dict(strict=True) and compares eval-mode outputs with headnet's (1e-5).
2. Trains a PyTorch model of the same tree a few steps (so that its running statistics move) and
   writes pytorch_model.safetensors and pytorch_io.safetensors (input x, eval-mode output y), which
   `residual_interop_fixture check FOLDER` loads into headnet and compares.
Exits 77 (CTest's "skipped") when PyTorch is not installed.
"""
import os
import sys

try:
    import torch
except ImportError:
    print("SKIPPED: PyTorch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from residual_model import residual_test_model  # noqa: E402
from safetensors_io import load_safetensors, save_safetensors  # noqa: E402

folder = sys.argv[1]
net = residual_test_model()
state = load_safetensors(os.path.join(folder, "model.safetensors"))
net.load_state_dict(state, strict=True)
assert list(state) == list(net.state_dict()), "the file's order differs from PyTorch's state_dict order"
io = load_safetensors(os.path.join(folder, "io.safetensors"))
net.eval()
with torch.no_grad():
    y = net(io["x"])
difference = (y - io["y"]).abs().max().item()
print(f"PyTorch {torch.__version__} on headnet's weights: max |output difference| {difference:.2e}")
ok = difference < 1e-5

torch.manual_seed(5)
theirs = residual_test_model()
opt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
for _ in range(4):
    x = torch.randn(8, 3, 8, 8)
    loss = torch.nn.functional.cross_entropy(theirs(x), torch.randint(0, 10, (8,)))
    opt.zero_grad()
    loss.backward()
    opt.step()
theirs.eval()
x = torch.randn(5, 3, 8, 8)
with torch.no_grad():
    y = theirs(x)
save_safetensors(os.path.join(folder, "pytorch_model.safetensors"), theirs.state_dict())
save_safetensors(os.path.join(folder, "pytorch_io.safetensors"), {"x": x, "y": y})
sys.exit(0 if ok else 1)
