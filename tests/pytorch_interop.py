#!/usr/bin/env python3
"""Loads headnet's safetensors weights into the PyTorch tutorial's Net and compares predictions.

Usage: pytorch_interop.py FIXTURE_FOLDER (made by pytorch_interop_fixture). Exits 77 (CTest's
"skipped") with a clear message when PyTorch is not installed. The safetensors file is parsed here
with the standard library, as the format is simple, because Debian has no python3-safetensors;
with the safetensors package a user would call safetensors.torch.load_file instead.
"""
import os
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("SKIPPED: PyTorch is not installed (Debian: apt-get install python3-torch); "
          "headnet's weights were not checked against PyTorch")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from safetensors_io import load_safetensors  # noqa: E402


class Net(nn.Module):  # verbatim from the PyTorch "Training a Classifier" tutorial
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


folder = sys.argv[1]
net = Net()
net.load_state_dict(load_safetensors(folder + "/model.safetensors"), strict=True)
inputs = torch.frombuffer(bytearray(open(folder + "/inputs.f32", "rb").read()), dtype=torch.float32).reshape(16, 3, 32, 32)
expected = torch.frombuffer(bytearray(open(folder + "/logits.f32", "rb").read()), dtype=torch.float32).reshape(16, 10)
with torch.no_grad():
    logits = net(inputs)
difference = (logits - expected).abs().max().item()
same = bool((logits.argmax(1) == expected.argmax(1)).all())
print(f"PyTorch {torch.__version__}: max |logit difference| {difference:.2e}, same predictions: {same}")
sys.exit(0 if same and difference < 1e-4 else 1)
