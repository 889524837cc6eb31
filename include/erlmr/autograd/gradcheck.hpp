// erlmr/autograd/gradcheck.hpp — finite-difference check of hand-written backward rules.
//
// Usage:
//   GradCheck gc;
//   Var<double> a(..., true);  Var<std::complex<double>> z(..., true);
//   gc.input(a).input(z);
//   auto r = gc.run([&] { return project(f(a, z), gen_seed); });
//   CHECK(r.ok);  // r.message says where it failed
//
// For every real component of every input (a complex element is checked twice,
// real and imaginary part separately) it compares the analytic gradient with the
// central difference (L(x + h) − L(x − h)) / 2h in double precision. With the
// convention of spec §2 the analytic complex gradient must equal
// ∂L/∂x + i·∂L/∂y, so the real part is compared with the difference in x and
// the imaginary part with the difference in y.
#pragma once
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "erlmr/autograd/backward.hpp"
#include "erlmr/ops/complex.hpp"
#include "erlmr/ops/reduce.hpp"

namespace erlmr {

struct GradCheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  std::int64_t checked = 0;
  std::string message;
};

// A real scalar Σ Re(conj(w)·out) with fixed random weights w: every output
// element influences the loss with its own weight, so a wrong rule cannot hide
// behind a symmetric reduction.
template <class T> Var<double> project(const Var<T>& out, std::uint64_t seed = 1234) {
  Generator g(seed);
  Var<T> w(Tensor<T>::uniform(out.shape(), g, -1.0, 1.0));
  if constexpr (is_complex_v<T>) return real(sum(mul(out, conj(w))));
  else return sum(mul(out, w));
}

class GradCheck {
 public:
  template <class T> GradCheck& input(const Var<T>& v) {
    static_assert(std::is_same_v<real_t<T>, double>, "gradcheck works in double precision");
    Probe p;
    p.name = "input " + std::to_string(probes_.size()) + " " + v.shape().str();
    constexpr int parts = is_complex_v<T> ? 2 : 1;
    p.components = parts * v.numel();
    double* base = reinterpret_cast<double*>(v.value().data());
    p.value = [base](std::int64_t k) -> double& { return base[k]; };
    p.grad = [v](std::int64_t k) {
      const auto& g = v.grad();
      return g.defined() ? reinterpret_cast<const double*>(g.data())[k] : 0.0;
    };
    p.zero_grad = [v] { v.zero_grad(); };
    probes_.push_back(std::move(p));
    return *this;
  }

  GradCheckResult run(const std::function<Var<double>()>& loss, double h = 1e-6, double rtol = 1e-6,
                      double atol = 1e-8) const {
    GradCheckResult r;
    for (const auto& p : probes_) p.zero_grad();
    backward(loss());
    for (const auto& p : probes_) {
      for (std::int64_t k = 0; k < p.components; ++k) {
        double& x = p.value(k);
        const double x0 = x;
        double lp, lm;
        {
          NoGradGuard ng;
          x = x0 + h;
          lp = loss().item();
          x = x0 - h;
          lm = loss().item();
          x = x0;
        }
        const double num = (lp - lm) / (2 * h), ana = p.grad(k);
        const double err = std::abs(num - ana), rel = err / std::max(std::abs(num), 1e-12);
        r.max_abs_err = std::max(r.max_abs_err, err);
        if (std::abs(num) > atol) r.max_rel_err = std::max(r.max_rel_err, rel);
        ++r.checked;
        if (err > atol + rtol * std::abs(num) && r.ok) {
          r.ok = false;
          std::ostringstream os;
          os.precision(12);
          os << p.name << " component " << k << (p.components > 1 ? (k % 2 ? " (imag part if complex)" : " (real part if complex)") : "")
             << ": analytic " << ana << " vs numeric " << num;
          r.message = os.str();
        }
      }
    }
    if (r.ok) r.message = "ok: " + std::to_string(r.checked) + " components";
    return r;
  }

 private:
  struct Probe {
    std::string name;
    std::int64_t components = 0;
    std::function<double&(std::int64_t)> value;
    std::function<double(std::int64_t)> grad;
    std::function<void()> zero_grad;
  };
  std::vector<Probe> probes_;
};

}  // namespace erlmr
