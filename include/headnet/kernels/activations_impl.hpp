// headnet/kernels/activations_impl.hpp: the element-wise activation loops, written once in plain
// C++ for the compiler to vectorise. Not a header to include: kernels/activations.hpp includes it
// once per instruction set (simd/for_each_isa.hpp), inside namespace activations::<isa> with the
// compiler's target set to that instruction set, so that a binary built without -march still runs
// GELU's erf and exp on the CPU's widest vectors. The loops are static members of `Loops`, so that
// one dispatcher (activations.hpp) hands a whole copy to each public function.
//
// (No include guard: included once per instruction set.)

// Each public function of kernels/activations.hpp, same name, same contract. Each loop reads a local
// copy of the activation: through the reference, LeakyReLU's slope might alias the output, and
// GCC 12 reloaded it every element and kept the loop scalar.
struct Loops {
  template <typename T, typename Op>
  static void activation_forward(const Op& op, std::int64_t n, const T* x, T* y) {
    const Op f = op;
#pragma omp parallel for schedule(static) if (n > activation_parallel_threshold)
    for (std::int64_t i = 0; i < n; ++i) y[i] = f.value(x[i]);
  }

  template <typename T, typename Op>
  static void activation_backward(const Op& op, std::int64_t n, const T* x, const T* y, const T* dy, T* dx) {
    const Op f = op;
#pragma omp parallel for schedule(static) if (n > activation_parallel_threshold)
    for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * f.derivative(x[i], y[i]);
  }
};
