// erlmr/autograd/variable.hpp — define-by-run reverse mode.
//
// A Var<T> is a handle on a graph node: the node holds the forward value, the
// nodes it was computed from (its parents), and a hand-written backward rule.
// Every node gets a creation index from a global counter; since a node is
// always created after its parents, sorting a graph's nodes by decreasing
// index is a valid reverse topological order. That is the "tape": backward()
// gathers the nodes reachable from the output with an explicit stack (no
// recursion, so a graph of a million nodes is fine) and walks them in
// decreasing creation order, each rule adding into its parents' adjoints.
//
// Complex gradients follow PyTorch's convention (spec §2): for a real loss L
// and z = x + iy the gradient stored for z is ∂L/∂x + i·∂L/∂y.
//
// Graph memory: a rule captures the tensors it needs (shared buffers). After a
// backward pass the rules are released unless retain_graph is set; running a
// second pass through a released node throws.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "erlmr/autograd/profile.hpp"
#include "erlmr/core/tensor.hpp"

namespace erlmr {

class AutogradError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// ---- grad mode ------------------------------------------------------------
namespace detail {
inline thread_local int g_no_grad_depth = 0;
inline std::uint64_t next_node_id() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed);
}
// A fresh number for marking the nodes one graph traversal has seen (never 0).
inline std::uint64_t next_mark() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}
}  // namespace detail

inline bool grad_enabled() { return detail::g_no_grad_depth == 0; }

// ---- several seeds in one pass -------------------------------------------------
// grad_seeds (backward.hpp) walks the tape once for up to kMaxSeeds outputs at the same time:
// every node keeps one adjoint per seed, and a rule runs once per seed that reached its node
// (with that seed "active": add_grad and add_grad_factor then write the active seed's slots),
// or once for all of them when the op recorded a rule for several seeds (record_seeds).
inline constexpr int kMaxSeeds = 4;
namespace detail {
// Sets one of this thread's pass settings for a scope and restores the previous value on every
// way out (the rules of one pass run on the thread that walks the tape).
template <class V> class ScopedSetting {
 public:
  ScopedSetting(V& setting, V v) : setting_(setting), saved_(setting) { setting_ = v; }
  ~ScopedSetting() { setting_ = saved_; }
  ScopedSetting(const ScopedSetting&) = delete;
  ScopedSetting& operator=(const ScopedSetting&) = delete;

 private:
  V& setting_;
  V saved_;
};
inline thread_local int g_active_seed = -1;  // -1: an ordinary pass (the node's `adjoint`)
// Makes seed s the active one for the scope.
struct ActiveSeed : ScopedSetting<int> {
  explicit ActiveSeed(int s) : ScopedSetting(g_active_seed, s) {}
};
// Whether the pass under way drops every node's adjoint right after the node's rule ran
// (backward, grad_seeds, and grad_factored/grad when all the inputs are leaves — not when an
// intermediate node's adjoint is wanted as a result). A rule may then take its adjoint's
// buffer instead of copying it (take_adjoint).
inline thread_local bool g_consume_adjoints = false;
struct ConsumeAdjoints : ScopedSetting<bool> {
  explicit ConsumeAdjoints(bool on) : ScopedSetting(g_consume_adjoints, on) {}
};
}  // namespace detail

// RAII scope in which no op records a graph (like torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() { ++detail::g_no_grad_depth; }
  ~NoGradGuard() { --detail::g_no_grad_depth; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
};

// ---- nodes ----------------------------------------------------------------
struct NodeBase {
  std::uint64_t id = detail::next_node_id();
  bool requires_grad = false;
  bool released = false;  // backward rule freed after a pass without retain_graph
  const char* op = "leaf";
  // Traversal marks (backward.hpp): set to the traversal's next_mark() when visited,
  // wanted as a grad() input, or needed on the way to one.
  std::uint64_t visit_mark = 0, want_mark = 0, need_mark = 0;
  PoolVector<std::shared_ptr<NodeBase>> parents;

  // Destroying a long chain must not recurse once per node: parents that this
  // node holds the last reference to are dismantled with an explicit stack.
  virtual ~NodeBase() {
    PoolVector<std::shared_ptr<NodeBase>> stack = std::move(parents);
    while (!stack.empty()) {
      std::shared_ptr<NodeBase> p = std::move(stack.back());
      stack.pop_back();
      if (p.use_count() == 1) {
        p->release();  // the rule may hold the last other references to p's parents
        for (auto& q : p->parents) stack.push_back(std::move(q));
        p->parents.clear();
      }
    }
  }
  bool is_leaf() const { return parents.empty(); }
  virtual bool has_adjoint() const = 0;
  virtual void clear_adjoint() = 0;
  virtual void run_backward() = 0;  // propagate the adjoint to the parents
  // The same for the seeds of a grad_seeds pass whose adjoints reached this node.
  virtual bool has_seed_adjoint(int s) const = 0;
  virtual void clear_seed_adjoints() = 0;
  virtual void run_backward_seeds(int seeds) = 0;
  virtual void release() = 0;       // drop the backward rule and what it captured
  virtual void accumulate_adjoint_into_grad() = 0;
};

// One term aᵀ·x of a weight gradient kept in factored form: a is (..., out), x is
// (..., in) with the same number of rows (the product of the leading axes), both real
// and row-major, so the term is an (out, in) matrix that is never formed. A linear
// layer's weight gradient is exactly such a term (a: the output adjoint, x: the input);
// see grad_factored in backward.hpp.
template <class T, class D = CpuDevice> struct GradFactor {
  Tensor<T, D> a, x;
  // Rows of the factors as matrices with `cols` columns (out for a, in for x).
  static std::int64_t rows_of(const Tensor<T, D>& t, std::int64_t cols) { return cols > 0 ? t.numel() / cols : 0; }
  // Whether the term is an (out × in) matrix: a and x have out and in columns and as many rows.
  bool fits(std::int64_t out, std::int64_t in) const {
    return out > 0 && in > 0 && a.numel() % out == 0 && x.numel() % in == 0 && rows_of(a, out) == rows_of(x, in);
  }
};

// A node on device D holds its value, gradient and adjoint on D; the tape itself
// (ids, parents, rules) lives on the host whatever the device.
template <class T, class D = CpuDevice>
struct Node final : NodeBase {
  using TensorT = Tensor<T, D>;
  using Rule = PoolFunction<void(const TensorT&)>;  // the captures live in a pool block
  // A rule for several seeds at once: adjoints[s] is seed s's adjoint of this node, or
  // nullptr where that seed did not reach it; it adds into the parents' slots of each seed
  // under detail::ActiveSeed(s).
  using SeedsRule = PoolFunction<void(const TensorT* const* adjoints, int seeds)>;
  TensorT value;
  TensorT grad;     // accumulated gradient of a leaf (what .grad is in PyTorch)
  TensorT adjoint;  // gradient flowing during one backward pass
  TensorT seed_adjoint[kMaxSeeds];  // the same per seed during a grad_seeds pass
  Rule rule;
  SeedsRule seeds_rule;  // optional (record_seeds)
  // Set by grad_factored (or grad_seeds, per seed) for the duration of one pass: a rule that
  // can express its contribution to this node's gradient as aᵀ·x appends the factors here
  // instead of forming the product (only products of real factors on the host do).
  PoolVector<GradFactor<T, D>>* factor_sink = nullptr;
  PoolVector<GradFactor<T, D>>* seed_factor_sink[kMaxSeeds] = {};

  bool has_adjoint() const override { return adjoint.defined(); }
  void clear_adjoint() override { adjoint = TensorT(); }
  void run_backward() override {
    if (!rule) return;
    rule(adjoint);
  }
  bool has_seed_adjoint(int s) const override { return seed_adjoint[s].defined(); }
  void clear_seed_adjoints() override {
    for (auto& a : seed_adjoint) a = TensorT();
  }
  void run_backward_seeds(int seeds) override {
    if (seeds_rule) {
      const TensorT* adj[kMaxSeeds] = {};
      for (int s = 0; s < seeds; ++s) adj[s] = seed_adjoint[s].defined() ? &seed_adjoint[s] : nullptr;
      seeds_rule(adj, seeds);
      return;
    }
    if (!rule) return;
    for (int s = 0; s < seeds; ++s)
      if (seed_adjoint[s].defined()) {
        const detail::ActiveSeed active(s);
        rule(seed_adjoint[s]);
      }
  }
  void release() override {
    rule = nullptr;
    seeds_rule = nullptr;
    released = true;
  }
  // The adjoint slot add_adjoint writes and the factor sink in use: the active seed's in a
  // grad_seeds pass.
  TensorT& adjoint_slot() { return detail::g_active_seed < 0 ? adjoint : seed_adjoint[detail::g_active_seed]; }
  PoolVector<GradFactor<T, D>>* active_factor_sink() const {
    return detail::g_active_seed < 0 ? factor_sink : seed_factor_sink[detail::g_active_seed];
  }
  void accumulate_adjoint_into_grad() override {
    if (!adjoint.defined()) return;
    // The adjoint is dropped right after this (backward clears it), so its buffer is
    // adopted when no other handle refers to it: no copy of a large weight gradient.
    if (!grad.defined()) grad = adjoint.use_count() == 1 ? std::move(adjoint) : adjoint.clone();
    else D::add_inplace(grad.data(), adjoint.data(), grad.numel());
  }
  // The active slot for a rule that writes its part of the adjoint in place (slice, real,
  // imag, arg): fresh when nothing had arrived, and the slot then holds an uninitialised
  // tensor of the value's shape that the rule must fill whole; otherwise the rule adds into
  // it. The slot owns its buffer (see add_adjoint), so writing into it is safe.
  TensorT& adjoint_to_fill(bool& fresh) {
    TensorT& a = adjoint_slot();
    fresh = !a.defined();
    if (fresh) a = TensorT(value.shape());
    return a;
  }
  // Adds g (same shape as value) into the adjoint. The adjoint is accumulated in
  // place, so it must own its buffer: g's buffer is adopted only when no other
  // handle refers to it (a rule may pass one tensor to several parents).
  void add_adjoint(TensorT g) {
    check_same_shape(value.shape(), g.shape(), op);
    TensorT& a = adjoint_slot();
    if (!a.defined()) {
      a = g.use_count() == 1 ? std::move(g) : g.clone();
    } else {
      D::add_inplace(a.data(), g.data(), a.numel());
    }
  }
};

// ---- Var --------------------------------------------------------------------
template <class T, class D = CpuDevice>
class Var {
 public:
  using value_type = T;
  using device_type = D;
  using TensorT = Tensor<T, D>;
  using NodePtr = std::shared_ptr<Node<T, D>>;

  Var() = default;
  // A leaf. Parameters are leaves with requires_grad = true.
  explicit Var(TensorT value, bool requires_grad = false) : node_(std::allocate_shared<Node<T, D>>(PoolAllocator<Node<T, D>>())) {
    node_->value = std::move(value);
    node_->requires_grad = requires_grad;
  }
  explicit Var(NodePtr n) : node_(std::move(n)) {}

  bool defined() const { return node_ != nullptr; }
  const TensorT& value() const { return node_->value; }
  const Shape& shape() const { return node_->value.shape(); }
  std::int64_t numel() const { return node_->value.numel(); }
  T item() const { return node_->value.item(); }
  bool requires_grad() const { return node_ && node_->requires_grad; }
  bool is_leaf() const { return node_->is_leaf(); }
  const char* op() const { return node_->op; }
  void set_requires_grad(bool r) {
    if (!is_leaf()) throw AutogradError("set_requires_grad: only leaves can change requires_grad");
    node_->requires_grad = r;
  }

  // Accumulated gradient of a leaf (undefined tensor until a backward pass reaches it).
  const TensorT& grad() const { return node_->grad; }
  TensorT& mutable_grad() const { return node_->grad; }
  void zero_grad() const { node_->grad = TensorT(); }

  // A new leaf with the same value (shared buffer) and no history.
  Var detach() const { return Var(node_->value, false); }
  // A new leaf on device D2 holding a copy of the value, with the same
  // requires_grad (like PyTorch's x.to(device).detach().requires_grad_(…)):
  // moving a parameter to another device is this one call.
  template <class D2> Var<T, D2> to() const { return Var<T, D2>(node_->value.template to<D2>(), requires_grad()); }

  const NodePtr& node() const { return node_; }

 private:
  NodePtr node_;
};

// ---- recording ops ------------------------------------------------------------
// Whether record() with these parents keeps the op's rule: grad mode is on and a parent
// requires a gradient (an undefined Var, such as an absent bias, requires none). An op that
// keeps tensors only for its rule asks this first and skips them when the answer is no.
template <class... Parents> bool will_record(const Parents&... parents) {
  return grad_enabled() && (false || ... || parents.requires_grad());
}

// Creates the result node of an op. `rule` receives the adjoint of the result
// and adds into the parents' adjoints (with add_grad below). No node is
// recorded when grad mode is off or no parent requires a gradient.
template <class T, class D, class Rule, class... Parents>
Var<T, D> record(const char* op, Tensor<T, D> value, Rule&& rule, const Parents&... parents) {
  profile::on_record(op);
  const bool needs = will_record(parents...);
  auto n = std::allocate_shared<Node<T, D>>(PoolAllocator<Node<T, D>>());
  n->value = std::move(value);
  n->op = op;
  if (needs) {
    n->requires_grad = true;
    n->parents.reserve(sizeof...(Parents));
    (n->parents.push_back(parents.node()), ...);
    n->rule = std::forward<Rule>(rule);
  }
  return Var<T, D>(std::move(n));
}

// record() for a variable number of parents (concat).
template <class T, class D, class Rule>
Var<T, D> record_n(const char* op, Tensor<T, D> value, Rule&& rule, std::span<const Var<T, D>> parents) {
  profile::on_record(op);
  bool needs = false;
  for (const auto& p : parents) needs = needs || p.requires_grad();
  auto n = std::allocate_shared<Node<T, D>>(PoolAllocator<Node<T, D>>());
  n->value = std::move(value);
  n->op = op;
  if (needs && grad_enabled()) {
    n->requires_grad = true;
    n->parents.reserve(parents.size());
    for (const auto& p : parents) n->parents.push_back(p.node());
    n->rule = std::forward<Rule>(rule);
  }
  return Var<T, D>(std::move(n));
}

// Gives the node of `out` (just returned by record) a rule for several seeds at once, used by
// grad_seeds instead of running its one-seed rule once per seed. No-op when no node was
// recorded with a rule (grad mode off, or no parent requires grad).
template <class T, class D, class SeedsRule> void record_seeds(const Var<T, D>& out, SeedsRule&& rule) {
  if (out.node()->rule) out.node()->seeds_rule = std::forward<SeedsRule>(rule);
}

// Adds g into v's adjoint when v takes part in differentiation.
template <class T, class D> void add_grad(const Var<T, D>& v, Tensor<T, D> g) {
  if (v.requires_grad()) v.node()->add_adjoint(std::move(g));
}

// The adjoint slot of v for a rule that fills its part in place (Node::adjoint_to_fill), or
// nullptr when v takes no part in differentiation.
template <class T, class D> Tensor<T, D>* adjoint_to_fill(const Var<T, D>& v, bool& fresh) {
  fresh = false;
  return v.requires_grad() ? &v.node()->adjoint_to_fill(fresh) : nullptr;
}

// The adjoint g a rule was called with, as a tensor the rule may hand on: g's own buffer when
// the pass drops it after the rule anyway (detail::g_consume_adjoints; g is then left
// empty), else a handle sharing it (add_grad copies a shared buffer before accumulating into
// it). Only for a rule's own argument.
template <class T, class D> Tensor<T, D> take_adjoint(const Tensor<T, D>& g) {
  if (detail::g_consume_adjoints) return std::move(const_cast<Tensor<T, D>&>(g));
  return g;
}

// Whether v's gradient is being collected in factored form in this pass: the rule then
// calls add_grad_factor instead of forming aᵀ·x.
template <class T, class D> bool wants_grad_factors(const Var<T, D>& v) {
  return v.requires_grad() && v.node()->active_factor_sink() != nullptr;
}
// Records aᵀ·x (a: (..., out), x: (..., in), as many rows) as a term of v's gradient.
template <class T, class D> void add_grad_factor(const Var<T, D>& v, Tensor<T, D> a, Tensor<T, D> x) {
  GradFactor<T, D> f{std::move(a), std::move(x)};
  if (v.shape().rank() != 2 || !f.fits(v.shape()[0], v.shape()[1]))
    throw AutogradError(std::string("add_grad_factor: factors of ") + std::to_string(f.a.numel()) + " and " +
                        std::to_string(f.x.numel()) + " elements do not make a gradient of shape " + v.shape().str());
  v.node()->active_factor_sink()->push_back(std::move(f));
}

}  // namespace erlmr
