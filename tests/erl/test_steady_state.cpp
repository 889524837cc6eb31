// Steady state: after warm-up, a training step (forward, backward passes, γ, optimiser
// update) makes no heap allocation at all. This executable replaces the global operator
// new to count calls while armed; tensor buffers come from the BlockCache, graph nodes,
// backward rules, parent lists and tape vectors from the SmallPool.
#include "test_util.hpp"

#include <atomic>
#include <cstdlib>
#include <erlmr/balance/registry.hpp>
#include <erlmr/erl/step.hpp>
#include <new>

namespace {
std::atomic<bool> g_armed{false};
std::atomic<long> g_news{0};

void* counted_alloc(std::size_t n, std::size_t align) {
  if (g_armed.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align) : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, std::size_t(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace erlmr;
using namespace erlmr::erl;

namespace {
// operator new calls and block-cache misses while `f` runs.
template <class F> std::pair<long, std::uint64_t> count_allocations(F&& f) {
  const auto misses = HostBlockCache::instance().system_allocations();
  g_news = 0;
  g_armed = true;
  f();
  g_armed = false;
  return {g_news.load(), HostBlockCache::instance().system_allocations() - misses};
}
}  // namespace

TEST_CASE("steady state: the counter sees allocations (the test can fail)") {
  const auto [news, misses] = count_allocations([] {
    std::vector<int> v(100);
    Tensor<float> t(Shape{1 << 20});  // a size no earlier test has cached
    CHECK(v.size() == 100);
    CHECK(t.numel() == 1 << 20);
  });
  CHECK(news >= 1);
  CHECK(misses == 1);
}

TEST_CASE("steady state: after warm-up an ERL-MR training step makes no heap allocation") {
  for (auto mode : {StepMode::fused, StepMode::faithful})
    for (bool adam : {false, true}) {
      CAPTURE(int(mode));
      CAPTURE(adam);
      Generator g(1);
      ModelConfig cfg;
      cfg.window = 9;
      cfg.classes = 3;
      ErlmrModel<float> m(cfg, g);
      Generator xg(2), drop(3);
      train::Batch<float> batch{Var<float>(Tensor<float>::randn(Shape{8, 1, 3, cfg.window}, xg)),
                                Var<float>(Tensor<float>::randn(Shape{8, 1, 3, cfg.window}, xg)),
                                {0, 1, 2, 0, 1, 2, 0, 1}};
      auto params = m.parameters();
      std::unique_ptr<optim::Optimizer<float>> opt;
      if (adam) opt = std::make_unique<optim::Adam<float>>(1e-3);
      else opt = std::make_unique<optim::SGD<float>>(1e-3, 0.9, 1e-4);
      opt->add_params(params);
      balance::MethodOptions o;
      o.erlmr_mode = mode;
      auto method = balance::make_method<float>("erlmr", o, m, cfg.classes);
      nn::Context ctx{true, &drop, 1.0};
      auto step = [&] {
        optim::zero_grad(params);
        method->step(m, batch, ctx, 0);
        opt->step();
      };
      for (int i = 0; i < 3; ++i) step();
      const auto [news, misses] = count_allocations([&] {
        for (int i = 0; i < 3; ++i) step();
      });
      CHECK(news == 0);
      CHECK(misses == 0);
    }
}
