// headnet-conv-kernels: Google Benchmark micro-benchmarks of the convolution and pooling kernels.
//
// For each layer shape (the tutorial's two convs, the wide variant's two, and 3x3 padding-1 convs of
// 64->64 at 32x32, 128->128 at 16x16, 256->256 at 8x8) and batch 1, 4, 32 and 128:
//   im2col            unfolding alone (reported in GB/s written)
//   forward           im2col + GEMM + bias
//   backward_input    GEMM + col2im (dx only)
//   backward_weight   im2col + GEMM (dW and db only)
// and MaxPool2d 2x2 forward and backward on the pooled layers; the fast recipe's pooled convs with
// the max-pool fused into the conv's output or after it (conv_maxpool_forward/<shape>/<batch>/<fused>,
// GFLOP/s of the conv); and the fast recipe's BatchNorm2d ->
// GELU pairs (batchnorm_gelu_forward|backward/<C>x<H>x<W>/<batch>/<fused>), with the GELU fused
// into the BatchNorm (1, what Sequential does) or as its own layer (0), in G elements/s; and each
// element-wise activation layer (activation_forward|backward/<name>/<batch>, on (batch, 64, 16, 16),
// G elements/s). GFLOP/s counts
// 2 * N * C_out * H_out * W_out * C_in * K * K per pass; peak_fraction divides it by the fp32 FMA
// peak that this binary measures at start-up with a register-only FMA loop on the same number of
// threads (printed first). Threads: OMP_NUM_THREADS (default: all cores).
// --algorithm=automatic|im2col_gemm|direct|winograd_4x4|winograd_3x3|winograd_2x2 picks the convolution path (default: automatic, what
// Conv2d uses), to compare the two on each shape; --isa=portable|avx2|avx512 the direct kernels'
// instruction set (default: the widest the CPU has, or HEADNET_ISA), and the peak is measured at
// that width. The fast recipe's 3x3 layers (fast_*) run at batch 32 and 256.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <headnet/headnet.hpp>

namespace {

using namespace headnet;

// fp32 FLOP/s of a loop of independent FMAs on registers only, summed over `threads` threads, at
// one vector width: 12 independent chains hide the FMA latency (4 cycles x 2 ports plus margin) on
// every CPU we run on; the portable "register" is two 4-float vectors (simd/vec.hpp), so 6 of them
// make 12 chains (12 would not fit x86's 16 registers). One function per instruction set, each
// compiled for its own target, as the kernels are (simd/vec.hpp); a macro, because a template
// instantiated outside a target region would call the vector operations out of line. Returns the
// seconds per vector FMA.
#define HEADNET_FMA_LOOP(function, V)                                                     \
  double function(long iterations) {                                                      \
    constexpr int chains = V::isa == simd::Isa::portable ? 6 : 12;                        \
    V::reg a[chains];                                                                     \
    float init[16];                                                                       \
    for (int i = 0; i < 16; ++i) init[i] = 1.0f + 1e-7f * float(i);                       \
    for (int i = 0; i < chains; ++i) a[i] = V::loadu(init);                               \
    const float mf = 0.999999f, cf = 1e-6f;                                               \
    const V::reg m = V::broadcast(&mf), c = V::broadcast(&cf);                            \
    benchmark::DoNotOptimize(a); /* the loop may not move out of the timed interval */    \
    const auto start = std::chrono::steady_clock::now();                                  \
    for (long i = 0; i < iterations; ++i)                                                 \
      for (int k = 0; k < chains; ++k) a[k] = V::fma(a[k], m, c);                         \
    benchmark::DoNotOptimize(a);                                                          \
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); \
    float sink = 0;                                                                       \
    for (int k = 0; k < chains; ++k) sink += V::hsum(a[k]);                               \
    benchmark::DoNotOptimize(sink);                                                       \
    return seconds / (double(iterations) * chains);                                       \
  }

HEADNET_FMA_LOOP(fma_seconds_portable, simd::Portable)
#if HEADNET_SIMD_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,fma")
HEADNET_FMA_LOOP(fma_seconds_avx2, simd::Avx2)
#pragma GCC pop_options
#endif
#if HEADNET_SIMD_AVX512
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
HEADNET_FMA_LOOP(fma_seconds_avx512, simd::Avx512)
#pragma GCC pop_options
#endif

double measure_fma_peak(simd::Isa isa, int threads) {
  double best = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const long iterations = 10'000'000;
    double seconds = 0;  // per vector FMA, on the slowest thread
#pragma omp parallel num_threads(threads) reduction(max : seconds)
    {
      switch (isa) {
#if HEADNET_SIMD_AVX512
        case simd::Isa::avx512: seconds = fma_seconds_avx512(iterations); break;
#endif
#if HEADNET_SIMD_AVX2
        case simd::Isa::avx2: seconds = fma_seconds_avx2(iterations); break;
#endif
        default: seconds = fma_seconds_portable(iterations); break;
      }
    }
    best = std::max(best, double(simd::vector_width(isa)) * 2 * threads / seconds);
  }
  return best;
}

// The peak at the kernels' instruction set (printed first, with the peak of every narrower set the
// CPU has, so that a reader sees what the wider registers are worth on this machine).
double fma_peak() {
  static const double peak = [] {
    const simd::Isa isa = simd::active_isa();
    double p = 0;
    for (simd::Isa other : {simd::Isa::avx2, simd::Isa::avx512}) {
      if (!simd::available(other) || other == isa) continue;
      std::printf("fp32 FMA peak at %s: %.1f GFLOP/s on %d threads\n", simd::name(other),
                  measure_fma_peak(other, num_threads()) / 1e9, num_threads());
    }
    p = measure_fma_peak(isa, num_threads());
    std::printf("Kernels: %s (best here: %s)\n", simd::name(isa), simd::name(simd::best_isa()));
    std::printf("Measured fp32 FMA peak: %.1f GFLOP/s on %d threads at %s\n", p / 1e9, num_threads(), simd::name(isa));
    return p;
  }();
  return peak;
}

kernels::ConvAlgorithm algorithm = kernels::ConvAlgorithm::automatic;

struct ConvShape {
  const char* name;
  int c_in, c_out, k, padding, h;
};
const ConvShape shapes[] = {
    {"tutorial_conv1", 3, 6, 5, 0, 32},   {"tutorial_conv2", 6, 16, 5, 0, 14}, {"wide_conv1", 3, 128, 5, 0, 32},
    {"wide_conv2", 128, 16, 5, 0, 14},    {"3x3_64_32x32", 64, 64, 3, 1, 32},  {"3x3_128_16x16", 128, 128, 3, 1, 16},
    {"3x3_256_8x8", 256, 256, 3, 1, 8},
    // The fast recipe's convolutions (airbench: after the 2x2 whitening conv, 31x31 then pooled).
    {"fast_24_64_31x31", 24, 64, 3, 1, 31}, {"fast_64_64_15x15", 64, 64, 3, 1, 15},
    {"fast_64_256_15x15", 64, 256, 3, 1, 15}, {"fast_256_256_7x7", 256, 256, 3, 1, 7},
    {"fast_256_256_3x3", 256, 256, 3, 1, 3},
};

struct Fixture {
  kernels::ConvGeometry g;
  int n, c_out;
  std::vector<float> x, w, b, y, dy, dx, dw, db;
  kernels::Conv2dWorkspace<float> ws;
  Fixture(const ConvShape& s, int batch) : g{s.c_in, s.h, s.h, s.k, 1, s.padding}, n(batch), c_out(s.c_out) {
    Generator gen(1);
    auto fill = [&](std::vector<float>& v, std::int64_t size) {
      v.resize(std::size_t(size));
      for (float& f : v) f = float(gen.uniform(-1, 1));
    };
    fill(x, n * g.image_size());
    fill(w, c_out * g.patch_size());
    fill(b, c_out);
    fill(y, std::int64_t(n) * c_out * g.out_pixels());
    fill(dy, std::int64_t(n) * c_out * g.out_pixels());
    fill(dx, n * g.image_size());
    fill(dw, c_out * g.patch_size());
    fill(db, c_out);
  }
  double flops() const { return 2.0 * n * c_out * double(g.out_pixels()) * double(g.patch_size()); }
};

// The counters, and as the label the path the pass took (what --algorithm forced, or the automatic
// choice for this shape and batch): "direct/avx2", "winograd_4x4/avx512", "im2col_gemm", ...
void report(benchmark::State& state, const Fixture& f, kernels::ConvPass pass) {
  const double flops_per_iteration = f.flops();
  state.SetLabel(kernels::select_conv_path<float>(f.g, f.c_out, pass, algorithm, simd::active_isa(), f.n).name());
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_fraction"] =
      benchmark::Counter(flops_per_iteration / fma_peak(), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_im2col(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  std::vector<float> columns(std::size_t(f.g.patch_size() * f.g.out_pixels()));
  for (auto _ : state) {
    for (int i = 0; i < f.n; ++i) kernels::im2col(f.g, f.x.data() + i * f.g.image_size(), columns.data(), f.g.out_pixels());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s written"] = benchmark::Counter(double(columns.size()) * 4 * f.n * 1e-9,
                                                      benchmark::Counter::kIsIterationInvariantRate);
}

void BM_forward(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  for (auto _ : state) {
    kernels::conv2d_forward(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.b.data(), f.y.data(), f.ws, algorithm);
    benchmark::ClobberMemory();
  }
  report(state, f, kernels::ConvPass::forward);
}

void BM_backward_input(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  for (auto _ : state) {
    kernels::conv2d_backward<float>(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.dy.data(), f.dx.data(), nullptr, nullptr,
                                    f.ws, algorithm);
    benchmark::ClobberMemory();
  }
  report(state, f, kernels::ConvPass::input_gradient);
}

void BM_backward_weight(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  for (auto _ : state) {
    kernels::conv2d_backward<float>(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.dy.data(), nullptr, f.dw.data(),
                                    f.db.data(), f.ws, algorithm);
    benchmark::ClobberMemory();
  }
  report(state, f, kernels::ConvPass::weight_gradient);
}

void BM_maxpool_forward(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  kernels::PoolGeometry p{f.g.out_height(), f.g.out_width(), 2, 2};
  std::vector<float> out(std::size_t(f.n * f.c_out * p.out_height() * p.out_width()));
  std::vector<std::int32_t> arg(out.size());
  for (auto _ : state) {
    kernels::maxpool2d_forward(p, std::int64_t(f.n) * f.c_out, f.y.data(), out.data(), arg.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s read"] = benchmark::Counter(double(f.y.size()) * 4e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_maxpool_backward(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  kernels::PoolGeometry p{f.g.out_height(), f.g.out_width(), 2, 2};
  std::vector<float> out(std::size_t(f.n * f.c_out * p.out_height() * p.out_width()));
  std::vector<std::int32_t> arg(out.size());
  kernels::maxpool2d_forward(p, std::int64_t(f.n) * f.c_out, f.y.data(), out.data(), arg.data());
  for (auto _ : state) {
    kernels::maxpool2d_backward(p, std::int64_t(f.n) * f.c_out, out.data(), arg.data(), f.dy.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s written"] = benchmark::Counter(double(f.dy.size()) * 4e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The fast recipe's pooled convolutions, conv -> MaxPool2d(2): fused (1, what Sequential does:
// kernels::conv2d_maxpool_forward) or the conv's whole output written and then pooled (0).
void BM_conv_maxpool_forward(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  const bool fused = state.range(1) != 0;
  const kernels::PoolGeometry p = kernels::pool_2x2(f.g.out_height(), f.g.out_width());
  std::vector<float> out(std::size_t(f.n) * f.c_out * p.out_height() * p.out_width());
  std::vector<std::int32_t> arg(out.size());
  for (auto _ : state) {
    if (fused) {
      kernels::conv2d_maxpool_forward(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.b.data(),
                                      kernels::PooledOutput<float>{out.data(), arg.data()}, f.ws, algorithm);
    } else {
      kernels::conv2d_forward(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.b.data(), f.y.data(), f.ws, algorithm);
      kernels::maxpool2d_forward(p, std::int64_t(f.n) * f.c_out, f.y.data(), out.data(), arg.data());
    }
    benchmark::ClobberMemory();
  }
  report(state, f, kernels::ConvPass::forward);
}

// The fast recipe's norm -> act pairs (models/airbench.hpp), fused or apart, training mode.
struct NormShape {
  const char* name;
  int channels, height, width;
};
const NormShape norm_shapes[] = {{"64x15x15", 64, 15, 15}, {"256x7x7", 256, 7, 7}, {"256x3x3", 256, 3, 3}};

struct NormFixture {
  Sequential<float> net;
  Tensor<float> x, dz;
  NormFixture(const NormShape& s, int n, bool fused) {
    net.set_fusion(fused);
    net.add("norm", BatchNorm2d<float>(s.channels, 1e-12, 0.4));
    net.add("act", GELU<float>());
    net.set_needs_input_grad(true);
    x = Tensor<float>({n, s.channels, s.height, s.width});
    dz = Tensor<float>(x.shape());
    Generator gen(7);
    for (float& v : x) v = float(gen.uniform(-2, 2));
    for (float& v : dz) v = float(gen.uniform(-1, 1));
    net.forward(x);
    net.backward(dz);  // buffers sized before timing
  }
};

void BM_batchnorm_gelu(benchmark::State& state, NormShape s, bool backward) {
  NormFixture f(s, int(state.range(0)), state.range(1) != 0);
  for (auto _ : state) {
    if (backward)
      f.net.backward(f.dz);
    else
      f.net.forward(f.x);
    benchmark::ClobberMemory();
  }
  state.counters["Gelem/s"] = benchmark::Counter(double(f.x.numel()) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The element-wise activations as layers (what a user's network runs), forward and backward on
// (batch, 64, 16, 16), in G elements/s; compare_pytorch.py --activations times PyTorch's kernels on
// the same tensors.
std::unique_ptr<Layer<float>> make_activation(const std::string& name) {
  if (name == "relu") return std::make_unique<ReLU<float>>();
  if (name == "leaky_relu") return std::make_unique<LeakyReLU<float>>();
  if (name == "gelu") return std::make_unique<GELU<float>>();
  if (name == "gelu_tanh") return std::make_unique<GELU<float>>("tanh");
  if (name == "silu") return std::make_unique<SiLU<float>>();
  if (name == "sigmoid") return std::make_unique<Sigmoid<float>>();
  return std::make_unique<Tanh<float>>();
}
const char* const activation_names[] = {"relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"};

void BM_activation(benchmark::State& state, std::string name, bool backward) {
  const auto layer = make_activation(name);
  layer->set_needs_input_grad(true);
  Tensor<float> x({int(state.range(0)), 64, 16, 16}), dy(x.shape());
  Generator gen(7);
  for (float& v : x) v = float(gen.uniform(-4, 4));
  for (float& v : dy) v = float(gen.uniform(-1, 1));
  layer->forward(x);
  layer->backward(dy);  // buffers sized before timing
  for (auto _ : state) {
    if (backward)
      layer->backward(dy);
    else
      layer->forward(x);
    benchmark::ClobberMemory();
  }
  state.counters["Gelem/s"] = benchmark::Counter(double(x.numel()) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

const int registered = [] {
  for (const char* name : activation_names)
    for (bool backward : {false, true})
      benchmark::RegisterBenchmark(((backward ? "activation_backward/" : "activation_forward/") + std::string(name)).c_str(),
                                   BM_activation, std::string(name), backward)
          ->Arg(32)->Arg(256)->UseRealTime()->Unit(benchmark::kMicrosecond);
  for (const auto& s : norm_shapes) {
    const std::string n = s.name;
    for (auto* b : {benchmark::RegisterBenchmark(("batchnorm_gelu_forward/" + n).c_str(), BM_batchnorm_gelu, s, false),
                    benchmark::RegisterBenchmark(("batchnorm_gelu_backward/" + n).c_str(), BM_batchnorm_gelu, s, true)})
      b->ArgsProduct({{256, 1024}, {0, 1}})->ArgNames({"", "fused"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  for (const auto& s : shapes) {
    const std::string n = s.name;
    for (auto* b : {benchmark::RegisterBenchmark(("im2col/" + n).c_str(), BM_im2col, s),
                    benchmark::RegisterBenchmark(("forward/" + n).c_str(), BM_forward, s),
                    benchmark::RegisterBenchmark(("backward_input/" + n).c_str(), BM_backward_input, s),
                    benchmark::RegisterBenchmark(("backward_weight/" + n).c_str(), BM_backward_weight, s)}) {
      if (n.rfind("fast_", 0) == 0)
        b->Arg(32)->Arg(256)->UseRealTime()->Unit(benchmark::kMicrosecond);
      else
        b->Arg(1)->Arg(4)->Arg(32)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
    if (n == "fast_24_64_31x31" || n == "fast_64_256_15x15" || n == "fast_256_256_7x7")  // pooled in the recipe
      benchmark::RegisterBenchmark(("conv_maxpool_forward/" + n).c_str(), BM_conv_maxpool_forward, s)
          ->ArgsProduct({{256, 1024}, {0, 1}})
          ->ArgNames({"", "fused"})
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    if (s.padding == 0) {  // the pooled layers of the tutorial networks
      for (auto* b : {benchmark::RegisterBenchmark(("maxpool_forward/" + n).c_str(), BM_maxpool_forward, s),
                      benchmark::RegisterBenchmark(("maxpool_backward/" + n).c_str(), BM_maxpool_backward, s)}) {
        b->Arg(1)->Arg(4)->Arg(32)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
      }
    }
  }
  return 0;
}();

}  // namespace

int main(int argc, char** argv) {
  // Our own flag, removed before Google Benchmark sees the rest.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--algorithm=", 0) == 0) {
      try {
        algorithm = kernels::parse_conv_algorithm(arg.substr(12));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "--algorithm: %s\n", e.what());
        return 1;
      }
      continue;
    }
    if (arg.rfind("--isa=", 0) == 0) {
      try {
        simd::set_isa(simd::parse_isa(arg.substr(6)));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "--isa: %s\n", e.what());
        return 1;
      }
      continue;
    }
    argv[kept++] = argv[i];
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fma_peak();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
