// headnet/headnet.hpp: everything in headnet's core, in one include.
//
// Data reading (headnet/data/), weight files (headnet/io/) and charts (headnet/viz/) have their own
// headers, included on demand, because they bring further dependencies.
#pragma once

#include "headnet/core/error.hpp"
#include "headnet/core/init.hpp"
#include "headnet/core/parallel.hpp"
#include "headnet/core/random.hpp"
#include "headnet/core/shape.hpp"
#include "headnet/core/tensor.hpp"
#include "headnet/layers/conv2d.hpp"
#include "headnet/layers/flatten.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/layers/linear.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/relu.hpp"
#include "headnet/layers/sequential.hpp"
#include "headnet/loss/cross_entropy.hpp"
#include "headnet/optim/sgd.hpp"
#include "headnet/version.hpp"
