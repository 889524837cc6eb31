// src/cuda/optim.cu — one SGD or Adam/AdamW step over a flat array of n real components
// (R = float, double; a complex parameter is passed as its 2n real components).
//
// Elementwise: thread e updates p[e] (and its state) exactly as the CPU loops in
// optim/optimizer.hpp, with the hyper-parameters converted to R on the host the way the
// CPU converts them (R(weight_decay), R(1 − dampening), R(1 − lr·wd), ...), and the
// expressions in the same order. No reductions, so the step is deterministic.
#include "common.cuh"

namespace erlmr::cuda {

namespace detail {
namespace {

__device__ inline float d_sqrt(float v) { return sqrtf(v); }
__device__ inline double d_sqrt(double v) { return sqrt(v); }

// g ← g + wd·p; with momentum: b ← g (first) or μ·b + (1−dampening)·g, g ← g + μ·b
// (Nesterov) or b; p ← p − lr·g.
template <class R>
__global__ void sgd_kernel(R* p, const R* grad, R* buf, std::int64_t n, R lr, R mu, R one_minus_damp, R wd,
                           bool use_momentum, bool nesterov, bool first) {
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    R g = grad[e] + wd * p[e];
    if (use_momentum) {
      const R b = first ? g : mu * buf[e] + one_minus_damp * g;
      buf[e] = b;
      g = nesterov ? g + mu * b : b;
    }
    p[e] -= lr * g;
  }
}

// Adam: g ← g + wd·p; AdamW: p ← p·(1 − lr·wd). m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g·g;
// p ← p − lr·(m/bc1)/(√(v/bc2) + eps).
template <class R>
__global__ void adam_kernel(R* p, const R* grad, R* m, R* v, std::int64_t n, R lr, R b1, R one_minus_b1, R b2,
                            R one_minus_b2, R eps, R wd, R decay, bool decoupled, R bc1, R bc2) {
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    R g = grad[e];
    R pe = p[e];
    if (decoupled) pe *= decay;
    else g += wd * pe;
    const R mi = b1 * m[e] + one_minus_b1 * g;
    const R si = b2 * v[e] + one_minus_b2 * g * g;
    m[e] = mi;
    v[e] = si;
    pe -= lr * (mi / bc1) / (d_sqrt(si / bc2) + eps);
    p[e] = pe;
  }
}

}  // namespace
}  // namespace detail

template <class R>
void sgd_step(R* p, const R* g, R* buf, std::int64_t n, double lr, double momentum, double dampening,
              double weight_decay, bool nesterov, bool first) {
  if (n <= 0) return;
  detail::sgd_kernel<R><<<detail::blocks_for(n), detail::kThreads, 0, stream()>>>(
      p, g, buf, n, R(lr), R(momentum), R(1 - dampening), R(weight_decay), momentum != 0, nesterov, first);
  check_launch("sgd_step");
}

template <class R>
void adam_step(R* p, const R* g, R* m, R* v, std::int64_t n, double lr, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled, double bc1, double bc2) {
  if (n <= 0) return;
  detail::adam_kernel<R><<<detail::blocks_for(n), detail::kThreads, 0, stream()>>>(
      p, g, m, v, n, R(lr), R(beta1), R(1 - beta1), R(beta2), R(1 - beta2), R(eps), R(weight_decay),
      R(1 - lr * weight_decay), decoupled, R(bc1), R(bc2));
  check_launch("adam_step");
}

#define ERLMR_INST_OPTIM(R)                                                                                   \
  template void sgd_step<R>(R*, const R*, R*, std::int64_t, double, double, double, double, bool, bool);      \
  template void adam_step<R>(R*, const R*, R*, R*, std::int64_t, double, double, double, double, double, bool, \
                             double, double);
ERLMR_CUDA_FOR_R(ERLMR_INST_OPTIM)
#undef ERLMR_INST_OPTIM

}  // namespace erlmr::cuda
