#!/usr/bin/env python3
"""Records PyTorch's outputs, gradients and SGD updates for headnet's reference tests.

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/make_pytorch_reference.py
It writes tests/data/pytorch_reference.json. Everything is float64 so that the comparison with
headnet's double-precision layers can be tight (1e-10 relative). The inputs and weights are random
but stored in the file, so the test does not depend on any generator matching PyTorch's.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20261125)
torch.set_default_dtype(torch.float64)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def conv_case(c_in, c_out, k, stride, padding, n, h, w, bias=True):
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=bias)
    x = torch.randn(n, c_in, h, w, requires_grad=True)
    y = conv(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    case = dict(in_channels=c_in, out_channels=c_out, kernel_size=k, stride=stride, padding=padding,
                input_shape=list(x.shape), output_shape=list(y.shape), bias=bias,
                x=flat(x), weight=flat(conv.weight), y=flat(y), dy=flat(dy), dx=flat(x.grad),
                grad_weight=flat(conv.weight.grad))
    if bias:
        case.update(bias_values=flat(conv.bias), grad_bias=flat(conv.bias.grad))
    return case


def pool_case(k, stride, n, c, h, w):
    x = torch.randn(n, c, h, w, requires_grad=True)
    y = F.max_pool2d(x, k, stride)
    dy = torch.randn_like(y)
    y.backward(dy)
    return dict(kernel_size=k, stride=stride, input_shape=list(x.shape), output_shape=list(y.shape),
                x=flat(x), y=flat(y), dy=flat(dy), dx=flat(x.grad))


def linear_case(n, fin, fout):
    lin = nn.Linear(fin, fout)
    x = torch.randn(n, fin, requires_grad=True)
    y = lin(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    return dict(in_features=fin, out_features=fout, n=n, x=flat(x), weight=flat(lin.weight),
                bias_values=flat(lin.bias), y=flat(y), dy=flat(dy), dx=flat(x.grad),
                grad_weight=flat(lin.weight.grad), grad_bias=flat(lin.bias.grad))


def cross_entropy_case(n, classes, scale):
    logits = (torch.randn(n, classes) * scale).requires_grad_()
    labels = torch.randint(0, classes, (n,))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return dict(n=n, classes=classes, logits=flat(logits), labels=labels.tolist(), loss=float(loss),
                grad_logits=flat(logits.grad))


class SmallTutorialNet(nn.Module):
    """The tutorial network's structure on 16x16 inputs, small enough to store."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 1 * 1, 12)
        self.fc2 = nn.Linear(12, 11)
        self.fc3 = nn.Linear(11, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def network_case():
    net = SmallTutorialNet()
    initial = {k: flat(v) for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    steps = []
    for _ in range(3):
        x = torch.randn(4, 3, 16, 16)
        labels = torch.randint(0, 10, (4,))
        opt.zero_grad()
        logits = net(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        grads = {k: flat(p.grad) for k, p in net.named_parameters()}
        opt.step()
        steps.append(dict(x=flat(x), labels=labels.tolist(), logits=flat(logits), loss=float(loss), grads=grads,
                          after={k: flat(v) for k, v in net.state_dict().items()}))
    return dict(initial=initial, lr=0.01, momentum=0.9, steps=steps)


def sgd_cases():
    cases = []
    options = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.8, dampening=0.3),
               dict(lr=0.1, weight_decay=0.01), dict(lr=0.1, momentum=0.9, nesterov=True),
               dict(lr=0.02, momentum=0.5, dampening=0.1, weight_decay=0.2),
               dict(lr=0.03, momentum=0.7, weight_decay=0.05, nesterov=True)]
    for opt_args in options:
        p = torch.randn(7, requires_grad=True)
        initial = flat(p)
        opt = torch.optim.SGD([p], **opt_args)
        grads, after = [], []
        for _ in range(4):
            g = torch.randn(7)
            p.grad = g.clone()
            opt.step()
            grads.append(flat(g))
            after.append(flat(p))
        full = dict(lr=0.0, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
        full.update(opt_args)
        cases.append(dict(options=full, initial=initial, grads=grads, after=after))
    return cases


reference = dict(
    generator="tests/reference/make_pytorch_reference.py", torch_version=torch.__version__,
    conv=[conv_case(1, 1, 1, 1, 0, 1, 5, 5), conv_case(3, 6, 5, 1, 0, 2, 12, 12),
          conv_case(2, 3, 3, 2, 1, 3, 7, 9), conv_case(4, 2, 5, 2, 2, 1, 11, 8),
          conv_case(3, 4, 3, 1, 1, 3, 6, 5, bias=False)],
    pool=[pool_case(2, 2, 2, 3, 6, 6), pool_case(2, 2, 1, 2, 7, 5), pool_case(3, 2, 2, 2, 9, 8),
          pool_case(3, 1, 1, 1, 5, 5)],
    linear=[linear_case(1, 5, 3), linear_case(4, 16, 7)],
    cross_entropy=[cross_entropy_case(5, 10, 1.0), cross_entropy_case(3, 4, 1000.0)],
    network=network_case(),
    sgd=sgd_cases(),
)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pytorch_reference.json")
with open(out, "w") as f:
    json.dump(reference, f)
print("wrote", os.path.normpath(out))
