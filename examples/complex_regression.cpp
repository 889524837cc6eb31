// A small complex-valued model trained with erlmr's autograd: the loss falls.
//
// Teacher: y = |CReLU(x·W*ᵀ)| with a random complex W*. Student: the same form
// with complex W (a complex parameter), plus a real Euler front end
// z = μ·exp(iθ) whose modulus μ is learned too. Plain SGD on the spec §2
// gradient convention (z ← z − lr·grad).
#include <cstdio>
#include <erlmr/erlmr.hpp>
#include <erlmr/optim/optimizer.hpp>

using namespace erlmr;
using C = std::complex<double>;

int main() {
  Generator g(2024);
  const std::int64_t N = 256, D = 8, H = 6;
  Var<double> theta(Tensor<double>::uniform(Shape{N, D}, g, -3.14, 3.14));  // input phases
  Var<double> mu_true(Tensor<double>::uniform(Shape{D}, g, 0.5, 1.5));
  Var<C> w_true(Tensor<C>::randn(Shape{H, D}, g, 0.7));
  Tensor<double> target;
  {
    NoGradGuard ng;
    target = abs(crelu(linear(euler(mu_true, theta), w_true))).value();
  }
  Var<double> y(target);
  Var<double> mu(Tensor<double>::ones(Shape{D}), true);
  Var<C> w(Tensor<C>::randn(Shape{H, D}, g, 0.7), true);
  optim::SGD<double> opt(0.2, 0.9);
  opt.add_params(std::vector<Var<double>>{mu});
  opt.add_params(std::vector<Var<C>>{w});
  std::printf("step   loss\n");
  double first = 0, last = 0;
  for (int step = 0; step <= 300; ++step) {
    mu.zero_grad();
    w.zero_grad();
    auto pred = abs(crelu(linear(euler(mu, theta), w)));
    auto diff = sub(pred, y);
    auto loss = mean(mul(diff, diff));
    backward(loss);
    opt.step();
    last = loss.item();
    if (step == 0) first = last;
    if (step % 30 == 0) std::printf("%4d   %.6f\n", step, last);
  }
  std::printf("loss fell from %.4f to %.4f (%s)\n", first, last, last < 0.2 * first ? "ok" : "did not fall enough");
  return last < 0.2 * first ? 0 : 1;
}
