// headnet/headnet.hpp: everything in headnet's core, in one include: tensors, layers, losses,
// optimisers, schedules, the Trainer and safetensors files.
//
// Data sets (headnet/data/), charts (headnet/viz/) and the model zoo (headnet/models/) have their
// own headers, included on demand.
#pragma once

#include "headnet/core/error.hpp"
#include "headnet/core/init.hpp"
#include "headnet/core/parallel.hpp"
#include "headnet/core/random.hpp"
#include "headnet/core/shape.hpp"
#include "headnet/core/state_dict.hpp"
#include "headnet/core/tensor.hpp"
#include "headnet/io/safetensors.hpp"
#include "headnet/layers/batchnorm.hpp"
#include "headnet/layers/conv2d.hpp"
#include "headnet/layers/flatten.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/layers/linear.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/relu.hpp"
#include "headnet/layers/residual.hpp"
#include "headnet/layers/sequential.hpp"
#include "headnet/loss/cross_entropy.hpp"
#include "headnet/optim/adam.hpp"
#include "headnet/optim/lr_scheduler.hpp"
#include "headnet/optim/optimizer.hpp"
#include "headnet/optim/sgd.hpp"
#include "headnet/train/evaluate.hpp"
#include "headnet/train/progress.hpp"
#include "headnet/train/trainer.hpp"
#include "headnet/version.hpp"
