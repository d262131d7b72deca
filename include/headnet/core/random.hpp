// headnet/core/random.hpp: the seeded generator behind initialisation and shuffling.
//
// std::uniform_real_distribution and std::shuffle are allowed to differ between standard libraries,
// so "same seed, same network" would not hold across compilers. Generator is xoshiro256** seeded
// through splitmix64, with its own uniform and shuffle, so the sequence is fixed by headnet alone and
// its whole state is four integers that a checkpoint can save.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace headnet {

/// A seedable xoshiro256** random generator; every layer, loader and augmentation owns one.
class Generator {
 public:
  /// The generator's whole state, saved in checkpoints.
  using State = std::array<std::uint64_t, 4>;

  /// Named streams: what each consumer of one user seed draws from. Initial weights use stream 0
  /// (what manual_seed seeds); the data order must not reuse those numbers, or the first epoch's
  /// permutation would be a function of the initial weights.
  enum Stream : std::uint64_t { weights = 0, data_order = 1, augmentation = 2, dropout = 3 };

  /// A generator seeded with `seed` on one of the independent streams.
  explicit Generator(std::uint64_t seed = 0, std::uint64_t stream = weights) { this->seed(seed, stream); }

  /// Restarts the generator from `seed` on stream `stream`.
  void seed(std::uint64_t seed, std::uint64_t stream = weights) {
    std::uint64_t s = stream;
    std::uint64_t x = stream == weights ? seed : seed ^ splitmix64(s);
    for (auto& word : state_) word = splitmix64(x);
  }

  /// The next 64 random bits.
  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// A uniform double in [low, high).
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  /// Standard normal, by Box-Muller from two uniforms (no spare value kept: the state stays the four
  /// words a checkpoint saves).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }

  /// Uniform integer in [0, bound) without modulo bias (Lemire's method).
  std::uint64_t below(std::uint64_t bound) {
    if (bound == 0) return 0;
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
    auto low = static_cast<std::uint64_t>(m);
    if (low < bound) {
      const std::uint64_t threshold = -bound % bound;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * bound;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Fisher-Yates shuffle of [first, last).
  template <typename It>
  void shuffle(It first, It last) {
    auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      std::uint64_t j = below(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

  /// The current state, to save.
  const State& state() const { return state_; }
  /// Restores a state saved by state().
  void set_state(const State& state) { state_ = state; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  State state_{};
};

/// The generator that layer constructors draw their initial weights from, as torch.manual_seed
/// seeds PyTorch's: call manual_seed(s) before building a network to get the same network for the
/// same s. One per thread, so building networks on two threads does not race.
inline Generator& default_generator() {
  thread_local Generator generator(0);
  return generator;
}

/// Seeds the default generator, from which layers draw their initial weights (as torch.manual_seed).
inline void manual_seed(std::uint64_t seed) { default_generator().seed(seed); }

}  // namespace headnet
