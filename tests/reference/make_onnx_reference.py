#!/usr/bin/env python3
"""Models exported by PyTorch's own ONNX writer, with recorded inputs and PyTorch's logits, for
headnet's ONNX reader tests (someone else's writer against our reader).

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/make_onnx_reference.py
It writes, in tests/data/onnx/:
  torch_tutorial.onnx   the PyTorch tutorial's CIFAR-10 network (torch.flatten, 3x32x32 inputs)
  torch_resnet.onnx     a small ResNet-style network: BatchNorm (folded into the convolutions by the
                        exporter in eval mode, and a BatchNorm2d after a pooling and a BatchNorm1d
                        after a Linear that stay), residual adds with identity and 1x1-conv
                        shortcuts, MaxPool, AvgPool, GELU (exported in its Erf form), SiLU, LeakyReLU,
                        Tanh, Sigmoid, Dropout, adaptive average pooling, Softmax-free logits
  torch_*.json          {"input_shape": [...], "input": [...], "logits": [...]}
Both models are exported in eval mode, opset 13, with a dynamic batch dimension. Weights and
BatchNorm statistics are random (seeded) and perturbed away from their initial values so that
every parameter matters.
"""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from pytorch_net import Net as TutorialNet  # noqa: E402  (the tutorial's network)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "onnx")


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.BatchNorm2d(16)  # after a pooling: stays a BatchNormalization node
        self.gelu = nn.GELU()
        self.avg = nn.AvgPool2d(2)
        self.silu = nn.SiLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(16, 32)
        self.bn_fc = nn.BatchNorm1d(32)
        self.leaky = nn.LeakyReLU(0.1)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(32, 24)
        self.fc3 = nn.Linear(24, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = self.gelu(self.norm(self.pool(x)))
        x = self.silu(self.avg(x))
        x = torch.flatten(self.gap(x), 1)
        x = self.drop(self.leaky(self.bn_fc(self.fc1(x))))
        x = torch.tanh(self.fc2(x)) + torch.sigmoid(self.fc2(x))
        return self.fc3(x)


def perturb(model, generator):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=generator))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=generator))


def export(name, model, input_shape, generator):
    perturb(model, generator)
    model.eval()
    x = torch.rand(input_shape, generator=generator) * 2 - 1
    with torch.no_grad():
        logits = model(x)
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"input_shape": list(input_shape), "input": [float(v) for v in x.reshape(-1).tolist()],
                   "logits": [float(v) for v in logits.reshape(-1).tolist()],
                   "torch_version": torch.__version__}, f)
    print(f"wrote {path}: {[n.op_type for n in __import__('onnx').load(path).graph.node]}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(20261127)
    export("torch_tutorial", TutorialNet(), (3, 3, 32, 32), generator)
    export("torch_resnet", ResNetish(), (2, 3, 16, 16), generator)


if __name__ == "__main__":
    main()
