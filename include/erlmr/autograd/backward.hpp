// erlmr/autograd/backward.hpp — walking the tape.
//
// backward(loss):   like loss.backward(): accumulate into every leaf's grad().
// grad(loss, xs):   like torch.autograd.grad: return d loss / d x for the chosen
//                   leaves only; no leaf's grad() is touched, and nodes that do not
//                   lead to a chosen leaf are not visited.
// grad_factored:    grad() with linear layers' weight gradients kept as factors aᵀ·x,
//                   for dot products between gradients without forming them.
// grad_seeds:       grad_factored for several scalar outputs in one walk of the tape.
// All take retain_graph (keep the rules for another pass); backward, grad and grad_factored
// also take a seed gradient for non-scalar outputs.
#pragma once
#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "erlmr/autograd/variable.hpp"

namespace erlmr {

namespace detail {

// Nodes reachable from the roots through nodes that require grad, in decreasing creation
// order. Visited nodes are marked with a fresh traversal number (no set to allocate).
inline PoolVector<NodeBase*> reverse_tape(std::span<NodeBase* const> roots) {
  const std::uint64_t mark = next_mark();
  PoolVector<NodeBase*> order, stack;
  for (NodeBase* r : roots)
    if (r->visit_mark != mark) {
      r->visit_mark = mark;
      stack.push_back(r);
    }
  while (!stack.empty()) {
    NodeBase* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const auto& p : n->parents)
      if (p->requires_grad && p->visit_mark != mark) {
        p->visit_mark = mark;
        stack.push_back(p.get());
      }
  }
  std::sort(order.begin(), order.end(), [](const NodeBase* a, const NodeBase* b) { return a->id > b->id; });
  return order;
}
inline PoolVector<NodeBase*> reverse_tape(NodeBase* root) { return reverse_tape(std::span<NodeBase* const>(&root, 1)); }

template <class T, class D> Tensor<T, D> seed_gradient(const Var<T, D>& out, const Tensor<T, D>* seed) {
  if (seed) {
    check_same_shape(out.shape(), seed->shape(), "backward (seed gradient)");
    return seed->clone();
  }
  if (out.numel() != 1)
    throw AutogradError("backward: output of shape " + out.shape().str() +
                        " is not a scalar; pass a seed gradient of the same shape");
  return Tensor<T, D>::ones(out.shape());
}

// Runs the rules of `tape` (already in reverse order) for which keep(n) is true.
template <class Keep>
void run_tape(const PoolVector<NodeBase*>& tape, bool retain_graph, bool clear_after_use, Keep keep) {
  for (NodeBase* n : tape) {
    if (!n->has_adjoint() || n->is_leaf() || !keep(n)) continue;
    if (n->released)
      throw AutogradError(std::string("backward: the graph through '") + n->op +
                          "' was freed by an earlier backward pass; pass retain_graph = true to the first one");
    const profile::RuleTimer timer;
    n->run_backward();
    timer.finish(n->op);
    if (clear_after_use) n->clear_adjoint();
    if (!retain_graph) n->release();
  }
}

}  // namespace detail

template <class T, class D>
void backward(const Var<T, D>& out, bool retain_graph = false, const Tensor<T, D>* seed = nullptr) {
  if (!out.requires_grad())
    throw AutogradError("backward: the output does not require grad (no parameter took part, or no_grad was active)");
  auto tape = detail::reverse_tape(out.node().get());
  out.node()->adjoint = detail::seed_gradient(out, seed);
  const detail::ConsumeAdjoints consume(true);
  detail::run_tape(tape, retain_graph, true, [](NodeBase*) { return true; });
  for (NodeBase* n : tape)
    if (n->is_leaf()) {
      n->accumulate_adjoint_into_grad();
      n->clear_adjoint();
    }
}

namespace detail {
// Marks the nodes of `tape` that are one of the inputs or lie above one (need_mark = the
// returned number; marks as in reverse_tape).
template <class V> std::uint64_t mark_needed(const PoolVector<NodeBase*>& tape, const std::vector<V>& inputs) {
  const std::uint64_t wanted = next_mark(), needed = next_mark();
  for (const auto& v : inputs) v.node()->want_mark = wanted;
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {  // increasing creation order
    NodeBase* n = *it;
    bool need = n->want_mark == wanted;
    for (const auto& p : n->parents) need = need || p->need_mark == needed;
    if (need) n->need_mark = needed;
  }
  return needed;
}
// For each input, the first position in `inputs` of the same node (an input listed twice
// gets the gradient found for its first listing).
template <class V> PoolVector<std::size_t> first_positions(const std::vector<V>& inputs) {
  PoolVector<std::size_t> first(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    first[i] = i;
    for (std::size_t j = 0; j < i; ++j)
      if (inputs[j].node() == inputs[i].node()) {
        first[i] = first[j];
        break;
      }
  }
  return first;
}
// Whether n's rule passes gradient towards a needed node.
inline bool leads_to(const NodeBase* n, std::uint64_t needed) {
  for (const auto& p : n->parents)
    if (p->need_mark == needed) return true;
  return false;
}

// The pass behind grad() and grad_factored(): runs only the rules that lead to an input,
// then hands each input's adjoint (undefined when none arrived) to take(i, adjoint).
template <class T, class U, class D, class Take>
void grad_pass(const Var<T, D>& out, const std::vector<Var<U, D>>& inputs, bool retain_graph, const Tensor<T, D>* seed,
               Take take) {
  if (!out.requires_grad()) throw AutogradError("grad: the output does not require grad");
  auto tape = reverse_tape(out.node().get());
  const std::uint64_t needed = mark_needed(tape, inputs);
  out.node()->adjoint = seed_gradient(out, seed);
  // Only rules that lead to a wanted node run; with an intermediate input, adjoints are kept
  // until the end because a wanted intermediate node may also pass gradient further down.
  // With leaf inputs only, no node's adjoint is read after its rule (a leaf has no rule, so its
  // adjoint is left for take): each is dropped right after its rule, and rules may take theirs.
  bool leaves = true;
  for (const auto& v : inputs) leaves = leaves && v.is_leaf();
  const ConsumeAdjoints consume(leaves);
  run_tape(tape, retain_graph, /*clear_after_use=*/leaves, [&](NodeBase* n) { return leads_to(n, needed); });
  for (std::size_t i = 0; i < inputs.size(); ++i) take(i, inputs[i].node()->adjoint);
  for (NodeBase* n : tape) n->clear_adjoint();
  for (const auto& v : inputs) v.node()->clear_adjoint();
}
}  // namespace detail

// Gradients of `out` with respect to `inputs` (leaves or intermediate nodes of the
// same element type). An input the output does not depend on gets a zero tensor.
template <class T, class U, class D>
std::vector<Tensor<U, D>> grad(const Var<T, D>& out, const std::vector<Var<U, D>>& inputs, bool retain_graph = false,
                               const Tensor<T, D>* seed = nullptr) {
  std::vector<Tensor<U, D>> result;
  result.reserve(inputs.size());
  detail::grad_pass(out, inputs, retain_graph, seed, [&](std::size_t i, const Tensor<U, D>& adj) {
    result.push_back(adj.defined() ? adj : Tensor<U, D>::zeros(inputs[i].shape()));
  });
  return result;
}

// A gradient that may be partly kept in factored form: dense + Σ_k terms[k].aᵀ·terms[k].x.
// `dense` is undefined when nothing arrived densely. to_dense() (ops/linalg.hpp) forms it;
// factored_gram (same file) takes dot products without forming it.
template <class T, class D = CpuDevice> struct Gradient {
  Shape shape;
  Tensor<T, D> dense;
  PoolVector<GradFactor<T, D>> terms;
  bool factored() const { return !terms.empty(); }
};

// grad() with each input's weight-gradient products left unformed where a rule can say
// them as aᵀ·x (the linear layers on the host): what the min-norm weight of ERL-MR needs
// is dot products between two such gradients, and for a (out × in) weight seen by a batch
// of n rows ⟨a₁ᵀx₁, a₂ᵀx₂⟩ = Σ (a₁a₂ᵀ) ⊙ (x₁x₂ᵀ) costs n²(out + in) instead of the
// n·out·in of each product. Every other contribution arrives in `dense` as with grad().
template <class T, class U, class D>
PoolVector<Gradient<U, D>> grad_factored(const Var<T, D>& out, const std::vector<Var<U, D>>& inputs,
                                         bool retain_graph = false, const Tensor<T, D>* seed = nullptr) {
  PoolVector<Gradient<U, D>> result(inputs.size());
  // The sinks are pointers into `result`, which is not resized while they are set; they
  // are cleared on every way out (a rule may throw).
  struct Sinks {
    const std::vector<Var<U, D>>& in;
    ~Sinks() {
      for (const auto& v : in) v.node()->factor_sink = nullptr;
    }
  } sinks{inputs};
  const auto first = detail::first_positions(inputs);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    result[i].shape = inputs[i].shape();
    // Leaves only: an intermediate node must receive its whole adjoint to pass it on.
    if (first[i] == i && inputs[i].is_leaf() && inputs[i].shape().rank() == 2)
      inputs[i].node()->factor_sink = &result[i].terms;
  }
  detail::grad_pass(out, inputs, retain_graph, seed, [&](std::size_t i, const Tensor<U, D>& adj) {
    if (first[i] != i) result[i] = result[first[i]];
    else result[i].dense = adj;
  });
  for (auto& g : result)
    if (!g.dense.defined() && g.terms.empty()) g.dense = Tensor<U, D>::zeros(g.shape);
  return result;
}

// grad_factored for several scalar outputs at once, in ONE walk of the tape: result[s][i] is
// d outs[s] / d inputs[i] (leaves only), with rank-2 leaves' weight-gradient products left as
// factors where a rule can say them so (as grad_factored). Each node's rule runs for every
// seed that reached it — once per seed, or once for all of them where the op recorded a rule
// for several seeds (record_seeds; the shared projection does, so W is read once for the
// input gradients of all seeds). Every seed's gradient is the one its own grad_factored pass
// gives. Only rules that lead to an input run. retain_graph as for backward().
template <class T, class U, class D>
PoolVector<PoolVector<Gradient<U, D>>> grad_seeds(std::span<const Var<T, D>> outs, const std::vector<Var<U, D>>& inputs,
                                                  bool retain_graph = false) {
  const int S = static_cast<int>(outs.size());
  if (S < 1 || S > kMaxSeeds)
    throw AutogradError("grad_seeds: between 1 and " + std::to_string(kMaxSeeds) + " outputs, got " + std::to_string(S));
  PoolVector<NodeBase*> roots;
  for (const auto& o : outs) {
    if (!o.requires_grad()) throw AutogradError("grad_seeds: an output does not require grad");
    if (o.numel() != 1) throw AutogradError("grad_seeds: output of shape " + o.shape().str() + " is not a scalar");
    roots.push_back(o.node().get());
  }
  for (const auto& v : inputs)
    if (!v.is_leaf()) throw AutogradError("grad_seeds: the inputs must be leaves");
  PoolVector<PoolVector<Gradient<U, D>>> result(static_cast<std::size_t>(S));
  for (auto& r : result) r.resize(inputs.size());
  const auto first = detail::first_positions(inputs);
  struct Sinks {  // cleared on every way out (a rule may throw)
    const std::vector<Var<U, D>>& in;
    ~Sinks() {
      for (const auto& v : in) {
        for (auto& f : v.node()->seed_factor_sink) f = nullptr;
        v.node()->clear_seed_adjoints();
      }
    }
  } sinks{inputs};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    for (int s = 0; s < S; ++s) {
      result[static_cast<std::size_t>(s)][i].shape = inputs[i].shape();
      if (first[i] == i && inputs[i].shape().rank() == 2)
        inputs[i].node()->seed_factor_sink[s] = &result[static_cast<std::size_t>(s)][i].terms;
    }
  }
  auto tape = detail::reverse_tape(std::span<NodeBase* const>(roots.data(), roots.size()));
  const std::uint64_t needed = detail::mark_needed(tape, inputs);
  const detail::ConsumeAdjoints consume(true);  // the inputs are leaves
  struct Clear {  // the intermediate nodes' seed adjoints, on every way out
    const PoolVector<NodeBase*>& tape;
    ~Clear() {
      for (NodeBase* n : tape) n->clear_seed_adjoints();
    }
  } clear{tape};
  for (int s = 0; s < S; ++s) {
    auto& n = *outs[static_cast<std::size_t>(s)].node();
    const detail::ActiveSeed active(s);
    n.add_adjoint(Tensor<T, D>::ones(n.value.shape()));
  }
  for (NodeBase* n : tape) {
    if (n->is_leaf() || !detail::leads_to(n, needed)) continue;
    bool any = false;
    for (int s = 0; s < S; ++s) any = any || n->has_seed_adjoint(s);
    if (!any) continue;
    if (n->released)
      throw AutogradError(std::string("grad_seeds: the graph through '") + n->op +
                          "' was freed by an earlier backward pass; pass retain_graph = true to the first one");
    const profile::RuleTimer timer;
    n->run_backward_seeds(S);
    timer.finish(n->op);
    n->clear_seed_adjoints();
    if (!retain_graph) n->release();
  }
  for (std::size_t i = 0; i < inputs.size(); ++i)
    for (int s = 0; s < S; ++s) {
      auto& g = result[static_cast<std::size_t>(s)][i];
      if (first[i] != i) {
        g = result[static_cast<std::size_t>(s)][first[i]];
        continue;
      }
      auto& node = *inputs[i].node();
      g.dense = std::move(node.seed_adjoint[s]);
      if (!g.dense.defined() && g.terms.empty()) g.dense = Tensor<U, D>::zeros(g.shape);
    }
  return result;
}

}  // namespace erlmr
