// headnet-conv-kernels: Google Benchmark micro-benchmarks of the convolution and pooling kernels.
//
// For each layer shape (the tutorial's two convs, the wide variant's two, and 3x3 padding-1 convs of
// 64->64 at 32x32, 128->128 at 16x16, 256->256 at 8x8) and batch 1, 4, 32 and 128:
//   im2col            unfolding alone (reported in GB/s written)
//   forward           im2col + GEMM + bias
//   backward_input    GEMM + col2im (dx only)
//   backward_weight   im2col + GEMM (dW and db only)
// and MaxPool2d 2x2 forward and backward on the pooled layers. GFLOP/s counts
// 2 * N * C_out * H_out * W_out * C_in * K * K per pass; peak_fraction divides it by the fp32 FMA
// peak that this binary measures at start-up with a register-only FMA loop on the same number of
// threads (printed first). Threads: OMP_NUM_THREADS (default: all cores).
// --algorithm=automatic|im2col_gemm|direct picks the convolution path (default: automatic, what
// Conv2d uses), to compare the two on each shape.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <headnet/headnet.hpp>

namespace {

using namespace headnet;

// fp32 FLOP/s of a loop of independent FMAs on registers only, summed over `threads` threads.
double measure_fma_peak(int threads) {
  double best = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const long iterations = 20'000'000;
    double seconds = 0;
#pragma omp parallel num_threads(threads) reduction(max : seconds)
    {
#if defined(__FMA__) && defined(__AVX__)
      __m256 a[10];
      for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(1.0f + 1e-7f * float(i));
      const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
      const auto start = std::chrono::steady_clock::now();
      for (long i = 0; i < iterations; ++i)
        for (int k = 0; k < 10; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      float sink = 0;
      for (int k = 0; k < 10; ++k) sink += _mm256_cvtss_f32(a[k]);
      benchmark::DoNotOptimize(sink);
#else
      float a[8] = {1, 1, 1, 1, 1, 1, 1, 1};
      const auto start = std::chrono::steady_clock::now();
      for (long i = 0; i < iterations; ++i)
        for (int k = 0; k < 8; ++k) a[k] = a[k] * 0.999999f + 1e-6f;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      benchmark::DoNotOptimize(a);
#endif
    }
#if defined(__FMA__) && defined(__AVX__)
    const double flops = double(iterations) * 10 * 8 * 2 * threads;
#else
    const double flops = double(iterations) * 8 * 2 * threads;
#endif
    best = std::max(best, flops / seconds);
  }
  return best;
}

double fma_peak() {
  static const double peak = [] {
    const double p = measure_fma_peak(num_threads());
    std::printf("Measured fp32 FMA peak: %.1f GFLOP/s on %d threads\n", p / 1e9, num_threads());
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

void report(benchmark::State& state, double flops_per_iteration) {
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
  report(state, f.flops());
}

void BM_backward_input(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  for (auto _ : state) {
    kernels::conv2d_backward<float>(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.dy.data(), f.dx.data(), nullptr, nullptr,
                                    f.ws, algorithm);
    benchmark::ClobberMemory();
  }
  report(state, f.flops());
}

void BM_backward_weight(benchmark::State& state, ConvShape s) {
  Fixture f(s, int(state.range(0)));
  for (auto _ : state) {
    kernels::conv2d_backward<float>(f.g, f.n, f.c_out, f.x.data(), f.w.data(), f.dy.data(), nullptr, f.dw.data(),
                                    f.db.data(), f.ws, algorithm);
    benchmark::ClobberMemory();
  }
  report(state, f.flops());
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

const int registered = [] {
  for (const auto& s : shapes) {
    const std::string n = s.name;
    for (auto* b : {benchmark::RegisterBenchmark(("im2col/" + n).c_str(), BM_im2col, s),
                    benchmark::RegisterBenchmark(("forward/" + n).c_str(), BM_forward, s),
                    benchmark::RegisterBenchmark(("backward_input/" + n).c_str(), BM_backward_input, s),
                    benchmark::RegisterBenchmark(("backward_weight/" + n).c_str(), BM_backward_weight, s)}) {
      b->Arg(1)->Arg(4)->Arg(32)->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
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
      const std::string name = arg.substr(12);
      if (name == "automatic") algorithm = kernels::ConvAlgorithm::automatic;
      else if (name == "im2col_gemm") algorithm = kernels::ConvAlgorithm::im2col_gemm;
      else if (name == "direct") algorithm = kernels::ConvAlgorithm::direct;
      else {
        std::fprintf(stderr, "--algorithm must be automatic, im2col_gemm or direct, not '%s'\n", name.c_str());
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
