// headnet/kernels/activations_impl.hpp: the element-wise activation loops, written once in plain
// C++ for the compiler to vectorise. Not a header to include: kernels/activations.hpp includes it
// once per instruction set (simd/for_each_isa.hpp), inside namespace activations::<isa> with the
// compiler's target set to that instruction set, so that a binary built without -march still runs
// GELU's erf and exp on the CPU's widest vectors. The loops are static members of `Loops`, so that
// one dispatcher (activations.hpp) hands a whole copy to each public function.
//
// (No include guard: included once per instruction set.)

// Each public function of kernels/activations.hpp, same name, same contract.
struct Loops {
  template <typename T, typename Op>
  static void activation_forward(const Op& op, std::int64_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n > activation_parallel_threshold)
    for (std::int64_t i = 0; i < n; ++i) y[i] = op.value(x[i]);
  }

  template <typename T, typename Op>
  static void activation_backward(const Op& op, std::int64_t n, const T* x, const T* y, const T* dy, T* dx) {
#pragma omp parallel for schedule(static) if (n > activation_parallel_threshold)
    for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * op.derivative(x[i], y[i]);
  }
};
