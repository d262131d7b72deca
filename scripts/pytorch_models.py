"""headnet's model zoo in PyTorch, module for module, so that state dicts move both ways:
torch.nn modules whose state_dict keys, shapes and order are those of headnet's models::resnet9,
models::resnet18_cifar (include/headnet/models/resnet.hpp) and models::airbench
(include/headnet/models/airbench.hpp).

    import sys; sys.path.insert(0, "scripts"); from pytorch_models import resnet9
    net = resnet9(); net.load_state_dict(state, strict=True)
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class Residual(nn.Module):
    """headnet's Residual: body layers registered on the block itself, an optional shortcut named
    "shortcut", y = body(x) + shortcut(x) (identity without one), then a ReLU if relu=True."""

    def __init__(self, body, shortcut=None, relu=False):
        super().__init__()
        self.body_names = list(body)
        for name, module in body.items():
            self.add_module(name, module)
        if shortcut is not None:
            self.shortcut = shortcut
        self.relu_after = relu

    def forward(self, x):
        y = x
        for name in self.body_names:
            y = getattr(self, name)(y)
        y = y + (self.shortcut(x) if hasattr(self, "shortcut") else x)
        return F.relu(y) if self.relu_after else y


class Mul(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def conv_bn_items(c_in, c_out):
    return [("conv", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)), ("bn", nn.BatchNorm2d(c_out)), ("relu", nn.ReLU())]


def conv_bn(c_in, c_out):
    return nn.Sequential(OrderedDict(conv_bn_items(c_in, c_out)))


def resnet9_stage(c_in, c_out, residual):
    items = conv_bn_items(c_in, c_out) + [("pool", nn.MaxPool2d(2))]
    if residual:
        items.append(("residual", Residual(OrderedDict(res1=conv_bn(c_out, c_out), res2=conv_bn(c_out, c_out)))))
    return nn.Sequential(OrderedDict(items))


def resnet9(classes=10):
    return nn.Sequential(OrderedDict(
        prep=conv_bn(3, 64), layer1=resnet9_stage(64, 128, True), layer2=resnet9_stage(128, 256, False),
        layer3=resnet9_stage(256, 512, True), pool=nn.MaxPool2d(4), flatten=nn.Flatten(),
        linear=nn.Linear(512, classes, bias=False), scale=Mul(0.125)))


def basic_block(c_in, c_out, stride):
    body = OrderedDict(conv1=nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), bn1=nn.BatchNorm2d(c_out),
                       relu=nn.ReLU(), conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), bn2=nn.BatchNorm2d(c_out))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
    return Residual(body, shortcut, relu=True)


def resnet18_cifar(classes=10):
    layers, c_in = OrderedDict(), 64
    for i, (width, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
        layers[f"layer{i + 1}"] = nn.Sequential(basic_block(c_in, width, stride), basic_block(width, width, 1))
        c_in = width
    return nn.Sequential(OrderedDict(
        [("conv1", nn.Conv2d(3, 64, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU())] +
        list(layers.items()) + [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("linear", nn.Linear(512, classes))]))


def airbench_block(c_in, c_out):
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), pool=nn.MaxPool2d(2),
        norm1=nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4), act1=nn.GELU(),
        conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), norm2=nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4),
        act2=nn.GELU()))


def airbench(width1=64, width2=256, width3=256, classes=10):
    """The fast CIFAR-10 recipe's network (models::airbench, cifar10-fast)."""
    return nn.Sequential(OrderedDict(
        whiten=nn.Conv2d(3, 24, 2, bias=True), act=nn.GELU(), block1=airbench_block(24, width1),
        block2=airbench_block(width1, width2), block3=airbench_block(width2, width3), pool=nn.MaxPool2d(3),
        flatten=nn.Flatten(), head=nn.Linear(width3, classes, bias=False), scale=Mul(1 / 9)))


if __name__ == "__main__":
    for make in (resnet9, resnet18_cifar, airbench):
        net = make()
        print(make.__name__, sum(p.numel() for p in net.parameters()), "parameters,", len(net.state_dict()), "state-dict keys")
