"""The residual test model in PyTorch: the same module tree that tests/residual_model.hpp builds
with headnet, so that both have the same state_dict keys, shapes and order.

  conv1 Conv2d(3, 8, 3, padding 1, no bias), bn1 BatchNorm2d(8), relu
  layer1: Sequential(Residual(conv1 8->8, bn1, relu, conv2 8->8, bn2), ReLU)
  layer2: Sequential(Residual(conv1 8->16 stride 2, bn1, relu, conv2 16->16, bn2;
                              shortcut: Sequential(Conv2d(8, 16, 1, stride 2, no bias), BatchNorm2d(16))), ReLU)
  pool MaxPool2d(4), flatten, fc Linear(16, 10)
on (N, 3, 8, 8) inputs. headnet's Residual names its body's layers directly under the block (as
torchvision's BasicBlock does) and its shortcut "shortcut".
"""
import os
import sys
from collections import OrderedDict

import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from pytorch_models import Residual  # noqa: E402  (headnet's Residual in PyTorch)


def block(c_in, c_out, stride):
    body = OrderedDict(conv1=nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), bn1=nn.BatchNorm2d(c_out),
                       relu=nn.ReLU(), conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), bn2=nn.BatchNorm2d(c_out))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential(Residual(body, shortcut), nn.ReLU())


def residual_test_model():
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(8), relu=nn.ReLU(),
        layer1=block(8, 8, 1), layer2=block(8, 16, 2),
        pool=nn.MaxPool2d(4), flatten=nn.Flatten(), fc=nn.Linear(16, 10)))
