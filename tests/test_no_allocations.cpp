// A training step in steady state allocates nothing: no operator new and no malloc (Eigen's GEMM
// blocking buffers come from malloc when they are too large for the stack).
//
// This file replaces the global allocation functions of its own test executable to count calls, so
// it is built apart from the other tests.
#include <atomic>
#include <cstdlib>
#include <new>

#include <catch2/catch.hpp>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>
#include <headnet/models/resnet.hpp>
#include <headnet/models/tutorial_net.hpp>

#include "residual_model.hpp"

namespace {
std::atomic<long> allocations{0};
std::atomic<bool> counting{false};
void note() {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (std::getenv("HEADNET_ABORT_ON_ALLOCATION")) std::abort();  // to find the caller in a debugger
  }
}
}  // namespace

extern "C" void* __libc_malloc(std::size_t);
extern "C" void* __libc_calloc(std::size_t, std::size_t);
extern "C" void* __libc_realloc(void*, std::size_t);
extern "C" void* __libc_memalign(std::size_t, std::size_t);
extern "C" void __libc_free(void*);

extern "C" {
void* malloc(std::size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) {
  note();
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) {
  note();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  note();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** p, std::size_t alignment, std::size_t n) {
  note();
  *p = __libc_memalign(alignment, n);
  return *p ? 0 : ENOMEM;
}
void free(void* p) { __libc_free(p); }
}

void* operator new(std::size_t n) {
  note();
  void* p = __libc_malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t) noexcept { __libc_free(p); }

using namespace headnet;

TEST_CASE("A warm training step allocates nothing", "[allocations]") {
  data::ImageSet set;
  for (int i = 0; i < 256; ++i) {
    set.labels.push_back(i % 10);
    for (int k = 0; k < 3072; ++k) set.pixels.push_back(std::uint8_t((i * 7 + k) % 256));
  }
  for (int conv1 : {6, 128}) {
    for (int batch : {4, 32}) {
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        manual_seed(0);
        auto net = models::tutorial_net<float>(conv1, 16);
        SGD<float> sgd(net.parameters(), SGDOptions(0.001).momentum(0.9));
        CrossEntropyLoss<float> criterion;
        data::BatchLoader loader(set, batch, true, 1);
        Tensor<float> images;
        std::vector<std::int32_t> labels;
        auto step = [&] {
          if (!loader.next(images, labels)) {
            loader.start_epoch();
            loader.next(images, labels);
          }
          sgd.zero_grad();
          criterion.forward(net.forward(images), labels);
          net.backward(criterion.backward());
          sgd.step();
        };
        for (int i = 0; i < 3; ++i) step();  // warm-up: buffers grow to their size
        allocations = 0;
        counting = true;
        for (int i = 0; i < 5; ++i) step();
        counting = false;
        INFO("conv1 " << conv1 << ", batch " << batch << ", " << threads << " threads");
        CHECK(allocations.load() == 0);
      }
    }
  }
}

TEST_CASE("A warm training step of a residual network with BatchNorm allocates nothing", "[allocations]") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    manual_seed(0);
    auto net = headnet_test::residual_test_model<float>();
    net.set_needs_input_grad(false);
    AdamW<float> adamw(net.parameters(), AdamWOptions(0.01));
    CosineAnnealingLR<float> schedule(adamw, 100);
    CrossEntropyLoss<float> criterion;
    Tensor<float> images({16, 3, 8, 8});
    Generator gen(1);
    for (float& v : images) v = float(gen.uniform(-1, 1));
    std::vector<std::int32_t> labels(16);
    for (int i = 0; i < 16; ++i) labels[std::size_t(i)] = i % 10;
    auto step = [&] {
      adamw.zero_grad();
      criterion.forward(net.forward(images), labels);
      net.backward(criterion.backward());
      adamw.step();
      schedule.step();
      net.zero_grad();  // the model's own zero_grad too: its gradient list is gathered once
    };
    for (int i = 0; i < 3; ++i) step();
    allocations = 0;
    counting = true;
    for (int i = 0; i < 5; ++i) step();
    counting = false;
    INFO(threads << " threads");
    CHECK(allocations.load() == 0);
  }
}

TEST_CASE("A warm training step of resnet9 at batch 32 allocates nothing", "[allocations]") {
  // Every convolution path the 3x3 layers can take: the automatic choice, then each forced.
  const kernels::ConvAlgorithm algorithm =
      GENERATE(kernels::ConvAlgorithm::automatic, kernels::ConvAlgorithm::direct, kernels::ConvAlgorithm::im2col_gemm,
               kernels::ConvAlgorithm::winograd_4x4, kernels::ConvAlgorithm::winograd_3x3,
               kernels::ConvAlgorithm::winograd_2x2);
  INFO("convolutions: " << kernels::name(algorithm));
  set_num_threads(2);
  manual_seed(0);
  auto net = models::resnet9<float>();
  REQUIRE(set_conv_algorithm(net, algorithm) == 8);
  SGD<float> sgd(net.parameters(), SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(5e-4));
  CrossEntropyLoss<float> criterion(Reduction::mean, 0.2);
  Tensor<float> images({32, 3, 32, 32});
  Generator gen(2);
  for (float& v : images) v = float(gen.uniform(-1, 1));
  std::vector<std::int32_t> labels(32);
  for (int i = 0; i < 32; ++i) labels[std::size_t(i)] = i % 10;
  auto step = [&] {
    sgd.zero_grad();
    criterion.forward(net.forward(images), labels);
    net.backward(criterion.backward());
    sgd.step();
  };
  for (int i = 0; i < 2; ++i) step();
  allocations = 0;
  counting = true;
  for (int i = 0; i < 2; ++i) step();
  counting = false;
  CHECK(allocations.load() == 0);
}

TEST_CASE("Drawing augmented batches in parallel allocates nothing once warm", "[allocations][augment]") {
  data::ImageSet set;
  for (int i = 0; i < 600; ++i) {
    set.labels.push_back(i % 10);
    for (int k = 0; k < 3072; ++k) set.pixels.push_back(std::uint8_t((i * 13 + k) % 256));
  }
  set_num_threads(2);
  data::BatchLoader loader(set, 128, true, 1);
  data::AugmentOptions o;
  o.pad = 2;
  o.flip = data::Flip::alternating;
  o.cutout = 8;
  loader.set_augmentation(o, 1);
  Tensor<float> images;
  std::vector<std::int32_t> labels;
  loader.next(images, labels);
  loader.next(images, labels);
  allocations = 0;
  counting = true;
  loader.next(images, labels);
  loader.next(images, labels);
  counting = false;
  CHECK(allocations.load() == 0);
}
