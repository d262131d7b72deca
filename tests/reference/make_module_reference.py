#!/usr/bin/env python3
"""Records PyTorch's optimisers, learning-rate schedules, BatchNorm and a residual network's state
dict for headnet's module tests.

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/make_module_reference.py
It writes tests/data/module_reference.json. Everything is float64; inputs, weights and gradients are
random but stored in the file, so the tests do not depend on any generator matching PyTorch's.
"""
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from residual_model import residual_test_model  # noqa: E402  (the module tree headnet's test builds)
import pytorch_models  # noqa: E402  (headnet's model zoo in PyTorch)

torch.manual_seed(20261127)
torch.set_default_dtype(torch.float64)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


STEPS = 12


def optimizer_case(kind, options, groups=None):
    """Two parameters, (7,) and (3, 2); one group with `options`, or one group per entry of
    `groups` (each overriding `options`); STEPS steps with random gradients."""
    p1 = torch.randn(7, requires_grad=True)
    p2 = torch.randn(3, 2, requires_grad=True)
    initial = [flat(p1), flat(p2)]
    cls = dict(SGD=torch.optim.SGD, Adam=torch.optim.Adam, AdamW=torch.optim.AdamW)[kind]
    if groups is None:
        opt = cls([p1, p2], **options)
        group_options = [options]
    else:
        opt = cls([dict(params=[p1], **groups[0]), dict(params=[p2], **groups[1])], **options)
        group_options = [dict(options, **g) for g in groups]
    grads, after = [], []
    for _ in range(STEPS):
        g1, g2 = torch.randn(7), torch.randn(3, 2)
        p1.grad, p2.grad = g1.clone(), g2.clone()
        opt.step()
        grads.append([flat(g1), flat(g2)])
        after.append([flat(p1), flat(p2)])
    full = []
    for o in group_options:
        d = {k: v for k, v in opt.defaults.items() if k in ("lr", "momentum", "dampening", "weight_decay", "nesterov",
                                                           "betas", "eps", "amsgrad")}
        d.update(o)
        if "betas" in d:
            d["betas"] = list(d["betas"])
        full.append(d)
    return dict(type=kind, groups=full, initial=initial, grads=grads, after=after)


def optimizer_cases():
    cases = []
    for o in [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.8, dampening=0.3),
              dict(lr=0.1, weight_decay=0.01), dict(lr=0.1, momentum=0.9, nesterov=True),
              dict(lr=0.02, momentum=0.5, dampening=0.1, weight_decay=0.2),
              dict(lr=0.03, momentum=0.7, weight_decay=0.05, nesterov=True)]:
        cases.append(optimizer_case("SGD", o))
    for o in [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True),
              dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.005, betas=(0.5, 0.9), weight_decay=0.05, amsgrad=True)]:
        cases.append(optimizer_case("Adam", o))
    for o in [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True),
              dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0),
              dict(lr=0.005, betas=(0.5, 0.9), weight_decay=0.3, amsgrad=True)]:
        cases.append(optimizer_case("AdamW", o))
    # Parameter groups with their own options.
    cases.append(optimizer_case("SGD", dict(lr=0.1, momentum=0.9),
                                groups=[dict(), dict(lr=0.01, momentum=0.5, weight_decay=0.1, nesterov=True)]))
    cases.append(optimizer_case("Adam", dict(lr=0.01), groups=[dict(weight_decay=0.1), dict(lr=0.003, amsgrad=True)]))
    cases.append(optimizer_case("AdamW", dict(lr=0.01), groups=[dict(weight_decay=0.0), dict(lr=0.02, betas=(0.7, 0.95))]))
    return cases


def schedule_case(name, make, optimizer="SGD", steps=30, lrs=(0.1, 0.02), **record):
    p1, p2 = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    if optimizer == "SGD":
        opt = torch.optim.SGD([dict(params=[p1], lr=lrs[0]), dict(params=[p2], lr=lrs[1])], lr=lrs[0], momentum=0.9)
    else:
        opt = torch.optim.Adam([dict(params=[p1], lr=lrs[0]), dict(params=[p2], lr=lrs[1])], lr=lrs[0])
    sched = make(opt)
    lr, momentum = [], []
    for _ in range(steps):
        lr.append([g["lr"] for g in opt.param_groups])
        momentum.append([g["momentum"] if "momentum" in g else g["betas"][0] for g in opt.param_groups])
        opt.step()
        sched.step()
    return dict(name=name, optimizer=optimizer, base_lrs=list(lrs), lr=lr, momentum=momentum, **record)


def schedule_cases():
    S = torch.optim.lr_scheduler
    cases = [
        schedule_case("LambdaLR", lambda o: S.LambdaLR(o, lambda t: 0.95 ** t)),
        schedule_case("StepLR", lambda o: S.StepLR(o, step_size=3, gamma=0.5), step_size=3, gamma=0.5),
        schedule_case("MultiStepLR", lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3),
                      milestones=[2, 5, 9], gamma=0.3),
        schedule_case("CosineAnnealingLR", lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), steps=25,
                      T_max=10, eta_min=0.001),
        schedule_case("OneCycleLR", lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=30), max_lr=0.5, total_steps=30,
                      anneal="cos", three_phase=False),
        schedule_case("OneCycleLR", lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=30, anneal_strategy="linear",
                                                           pct_start=0.25, div_factor=10, final_div_factor=100),
                      max_lr=0.5, total_steps=30, anneal="linear", pct_start=0.25, div_factor=10, final_div_factor=100,
                      three_phase=False),
        schedule_case("OneCycleLR", lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=30, three_phase=True),
                      max_lr=0.5, total_steps=30, anneal="cos", three_phase=True),
        schedule_case("OneCycleLR", lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=20, base_momentum=0.8,
                                                           max_momentum=0.9), optimizer="Adam", steps=20, max_lr=0.01,
                      total_steps=20, anneal="cos", base_momentum=0.8, max_momentum=0.9, three_phase=False),
    ]
    # The fast CIFAR-10 recipe's shape, which PyTorch has no class for: numpy.interp of knots.
    steps, knots, factors = 30, [0, 6, 30], [0.2, 1.0, 0.0]
    cases.append(dict(name="PiecewiseLinearLR", optimizer="SGD", base_lrs=[0.1, 0.02], knots=knots, factors=factors,
                      lr=[[float(np.interp(t, knots, factors)) * b for b in (0.1, 0.02)] for t in range(steps)]))
    return cases


def batchnorm_case(kind, shape, **options):
    bn = (nn.BatchNorm2d if kind == "BatchNorm2d" else nn.BatchNorm1d)(shape[1], **options)
    if bn.affine:
        with torch.no_grad():
            bn.weight.copy_(torch.rand(shape[1]) + 0.5)
            bn.bias.copy_(torch.randn(shape[1]))
    initial = {k: flat(v) for k, v in bn.state_dict().items()}
    bn.train()
    steps = []
    for _ in range(3):
        x = (torch.randn(*shape) * 2 + 1).requires_grad_()
        y = bn(x)
        dy = torch.randn_like(y)
        for p in bn.parameters():
            p.grad = None
        y.backward(dy)
        steps.append(dict(x=flat(x), y=flat(y), dy=flat(dy), dx=flat(x.grad),
                          grads={k: flat(p.grad) for k, p in bn.named_parameters()},
                          buffers={k: flat(v) for k, v in bn.named_buffers()}))
    bn.eval()
    x = torch.randn(*shape).requires_grad_()
    y = bn(x)
    dy = torch.randn_like(y)
    for p in bn.parameters():
        p.grad = None
    y.backward(dy)
    eval_step = dict(x=flat(x), y=flat(y), dy=flat(dy), dx=flat(x.grad),
                     grads={k: flat(p.grad) for k, p in bn.named_parameters()})
    full = dict(eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)
    full.update(options)
    return dict(type=kind, shape=list(shape), options=full, initial=initial, train=steps, eval=eval_step)


def batchnorm_cases():
    return [batchnorm_case("BatchNorm2d", (3, 4, 5, 6)), batchnorm_case("BatchNorm2d", (2, 3, 3, 5), momentum=0.3, eps=1e-3),
            batchnorm_case("BatchNorm2d", (4, 2, 1, 1)), batchnorm_case("BatchNorm2d", (2, 3, 4, 4), affine=False),
            batchnorm_case("BatchNorm2d", (3, 2, 3, 3), track_running_stats=False),
            batchnorm_case("BatchNorm1d", (5, 4)), batchnorm_case("BatchNorm1d", (3, 4, 7), momentum=0.5)]


def layer_case(name, module, x_shape, positive=False, **args):
    """A layer's forward and backward on a random input: y, dx and each parameter's gradient."""
    x = torch.randn(*x_shape)
    if positive:
        x = x.abs() + 0.1
    x.requires_grad_()
    y = module(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    return dict(layer=name, args=args, x_shape=list(x_shape), x=flat(x), y_shape=list(y.shape), y=flat(y), dy=flat(dy),
                dx=flat(x.grad), params={k: flat(p) for k, p in module.named_parameters()},
                grads={k: flat(p.grad) for k, p in module.named_parameters()})


def layer_cases():
    F = nn.functional
    cases = [
        layer_case("GELU", nn.GELU(), (2, 3, 4, 5), approximate="none"),
        layer_case("GELU", nn.GELU(approximate="tanh"), (3, 7), approximate="tanh"),
        layer_case("LeakyReLU", nn.LeakyReLU(0.2), (2, 3, 5), negative_slope=0.2),
        layer_case("LeakyReLU", nn.LeakyReLU(), (4, 6), negative_slope=0.01),
        layer_case("SiLU", nn.SiLU(), (2, 3, 4, 5)),
        layer_case("Sigmoid", nn.Sigmoid(), (3, 8)),
        layer_case("Tanh", nn.Tanh(), (2, 2, 3, 3)),
        layer_case("Softmax", nn.Softmax(dim=1), (4, 10)),
        layer_case("Softmax", nn.Softmax(dim=1), (2, 5, 3, 2)),
        layer_case("LogSoftmax", nn.LogSoftmax(dim=1), (4, 10)),
        layer_case("LogSoftmax", nn.LogSoftmax(dim=1), (2, 4, 3)),
        layer_case("Identity", nn.Identity(), (3, 4)),
        layer_case("MaxPool2d", nn.MaxPool2d(3), (2, 3, 9, 11), kernel_size=3, stride=3, padding=0, ceil_mode=False),
        layer_case("MaxPool2d", nn.MaxPool2d(3, 2, 1), (2, 2, 8, 7), kernel_size=3, stride=2, padding=1, ceil_mode=False),
        layer_case("MaxPool2d", nn.MaxPool2d(2, ceil_mode=True), (1, 3, 7, 5), kernel_size=2, stride=2, padding=0,
                   ceil_mode=True),
        layer_case("MaxPool2d", nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 2, 10, 6), kernel_size=3, stride=2, padding=1,
                   ceil_mode=True),
        layer_case("AvgPool2d", nn.AvgPool2d(2), (2, 3, 8, 6), kernel_size=2, stride=2, padding=0, ceil_mode=False,
                   count_include_pad=True),
        layer_case("AvgPool2d", nn.AvgPool2d(3, 2, 1), (2, 2, 7, 9), kernel_size=3, stride=2, padding=1, ceil_mode=False,
                   count_include_pad=True),
        layer_case("AvgPool2d", nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 2, 7, 9), kernel_size=3, stride=2,
                   padding=1, ceil_mode=False, count_include_pad=False),
        layer_case("AvgPool2d", nn.AvgPool2d(3, 2, 1, ceil_mode=True), (1, 2, 8, 6), kernel_size=3, stride=2, padding=1,
                   ceil_mode=True, count_include_pad=True),
        layer_case("AvgPool2d", nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False), (1, 2, 5, 7), kernel_size=2,
                   stride=2, padding=0, ceil_mode=True, count_include_pad=False),
        layer_case("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d(1), (3, 4, 5, 7), output_size=[1, 1]),
        layer_case("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d((3, 2)), (2, 2, 7, 5), output_size=[3, 2]),
        layer_case("Conv2d", nn.Conv2d(3, 4, 3, padding="same"), (2, 3, 6, 9), in_channels=3, out_channels=4,
                   kernel_size=3, stride=1, padding="same", groups=1, bias=True),
        layer_case("Conv2d", nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7, 6), in_channels=4,
                   out_channels=6, kernel_size=3, stride=2, padding=1, groups=2, bias=True),
        layer_case("Conv2d", nn.Conv2d(3, 3, 5, padding="same", groups=3, bias=False), (2, 3, 7, 8), in_channels=3,
                   out_channels=3, kernel_size=5, stride=1, padding="same", groups=3, bias=False),
        layer_case("Conv2d", nn.Conv2d(2, 6, 3, padding=1, groups=2, bias=False), (1, 2, 5, 4), in_channels=2,
                   out_channels=6, kernel_size=3, stride=1, padding=1, groups=2, bias=False),
        layer_case("Conv2d", nn.Conv2d(3, 2, 3, stride=2, bias=False), (2, 3, 9, 6), in_channels=3, out_channels=2,
                   kernel_size=3, stride=2, padding=0, groups=1, bias=False),
        layer_case("Flatten", nn.Flatten(2), (2, 3, 4, 5), start_dim=2, end_dim=-1),
        layer_case("Flatten", nn.Flatten(0, 1), (2, 3, 4), start_dim=0, end_dim=1),
        layer_case("Flatten", nn.Flatten(), (2, 3, 4, 5), start_dim=1, end_dim=-1),
    ]
    x = torch.randn(2, 10, requires_grad=True)
    y = x * (1 / 9)
    dy = torch.randn_like(y)
    y.backward(dy)
    cases.append(dict(layer="Mul", args=dict(scale=1 / 9), x_shape=[2, 10], x=flat(x), y_shape=[2, 10], y=flat(y),
                      dy=flat(dy), dx=flat(x.grad), params={}, grads={}))
    return cases


def loss_cases():
    cases = []
    logits = torch.randn(6, 5)
    labels = torch.randint(0, 5, (6,))
    weights = torch.rand(6)
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.1, 0.35):
            z = logits.clone().requires_grad_()
            loss = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(z, labels)
            (loss if reduction != "none" else (loss * weights).sum()).backward()
            cases.append(dict(loss="CrossEntropyLoss", reduction=reduction, label_smoothing=smoothing, x=flat(logits),
                              x_shape=[6, 5], labels=labels.tolist(), value=flat(loss), grad_weights=flat(weights),
                              grad=flat(z.grad)))
        z = torch.log_softmax(logits, 1).detach().requires_grad_()
        loss = nn.NLLLoss(reduction=reduction)(z, labels)
        (loss if reduction != "none" else (loss * weights).sum()).backward()
        cases.append(dict(loss="NLLLoss", reduction=reduction, x=flat(z), x_shape=[6, 5], labels=labels.tolist(),
                          value=flat(loss), grad_weights=flat(weights), grad=flat(z.grad)))
        a, b = torch.randn(3, 4, 2).requires_grad_(), torch.randn(3, 4, 2)
        loss = nn.MSELoss(reduction=reduction)(a, b)
        w = torch.rand(3, 4, 2)
        (loss if reduction != "none" else (loss * w).sum()).backward()
        cases.append(dict(loss="MSELoss", reduction=reduction, x=flat(a), target=flat(b), x_shape=[3, 4, 2],
                          value=flat(loss), grad_weights=flat(w), grad=flat(a.grad)))
    return cases


def residual_state_dict():
    net = residual_test_model()
    return [dict(key=k, shape=list(v.shape), dtype=str(v.dtype).replace("torch.", "")) for k, v in net.state_dict().items()]


def model_state_dicts():
    out = {}
    for name in ("resnet9", "resnet18_cifar"):
        net = getattr(pytorch_models, name)()
        out[name] = dict(parameters=sum(p.numel() for p in net.parameters()),
                         state_dict=[dict(key=k, shape=list(v.shape), dtype=str(v.dtype).replace("torch.", ""))
                                     for k, v in net.state_dict().items()])
    return out


reference = dict(generator="tests/reference/make_module_reference.py", torch_version=torch.__version__,
                 optimizers=optimizer_cases(), schedules=schedule_cases(), batchnorm=batchnorm_cases(),
                 layers=layer_cases(), losses=loss_cases(),
                 residual_state_dict=residual_state_dict(), models=model_state_dicts())
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "module_reference.json")
with open(out, "w") as f:
    json.dump(reference, f)
print("wrote", os.path.normpath(out))
