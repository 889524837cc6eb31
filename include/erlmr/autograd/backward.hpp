// erlmr/autograd/backward.hpp — walking the tape.
//
// backward(loss):   like loss.backward(): accumulate into every leaf's grad().
// grad(loss, xs):   like torch.autograd.grad: return d loss / d x for the chosen
//                   leaves only; no leaf's grad() is touched, and nodes that do not
//                   lead to a chosen leaf are not visited.
// Both take retain_graph (keep the rules for another pass) and a seed gradient
// for non-scalar outputs.
#pragma once
#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "erlmr/autograd/variable.hpp"

namespace erlmr {

namespace detail {

// Nodes reachable from root through nodes that require grad, in decreasing creation order.
inline std::vector<NodeBase*> reverse_tape(NodeBase* root) {
  std::vector<NodeBase*> order, stack{root};
  std::unordered_set<NodeBase*> seen{root};
  while (!stack.empty()) {
    NodeBase* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const auto& p : n->parents)
      if (p->requires_grad && seen.insert(p.get()).second) stack.push_back(p.get());
  }
  std::sort(order.begin(), order.end(), [](const NodeBase* a, const NodeBase* b) { return a->id > b->id; });
  return order;
}

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
void run_tape(const std::vector<NodeBase*>& tape, bool retain_graph, bool clear_after_use, Keep keep) {
  for (NodeBase* n : tape) {
    if (!n->has_adjoint() || n->is_leaf() || !keep(n)) continue;
    if (n->released)
      throw AutogradError(std::string("backward: the graph through '") + n->op +
                          "' was freed by an earlier backward pass; pass retain_graph = true to the first one");
    n->run_backward();
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
  detail::run_tape(tape, retain_graph, true, [](NodeBase*) { return true; });
  for (NodeBase* n : tape)
    if (n->is_leaf()) {
      n->accumulate_adjoint_into_grad();
      n->clear_adjoint();
    }
}

// Gradients of `out` with respect to `inputs` (leaves or intermediate nodes of the
// same element type). An input the output does not depend on gets a zero tensor.
template <class T, class U, class D>
std::vector<Tensor<U, D>> grad(const Var<T, D>& out, const std::vector<Var<U, D>>& inputs, bool retain_graph = false,
                               const Tensor<T, D>* seed = nullptr) {
  if (!out.requires_grad()) throw AutogradError("grad: the output does not require grad");
  auto tape = detail::reverse_tape(out.node().get());
  // A node is needed when one of the inputs is it or lies below it.
  std::unordered_set<NodeBase*> wanted;
  for (const auto& v : inputs) wanted.insert(v.node().get());
  std::unordered_set<NodeBase*> needed;
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {  // increasing creation order
    NodeBase* n = *it;
    bool need = wanted.count(n) > 0;
    for (const auto& p : n->parents) need = need || needed.count(p.get()) > 0;
    if (need) needed.insert(n);
  }
  out.node()->adjoint = detail::seed_gradient(out, seed);
  // Only rules that lead to a wanted node run; adjoints are kept until the end
  // because a wanted intermediate node may also pass gradient further down.
  detail::run_tape(tape, retain_graph, false, [&](NodeBase* n) {
    for (const auto& p : n->parents)
      if (needed.count(p.get())) return true;
    return false;
  });
  std::vector<Tensor<U, D>> result;
  result.reserve(inputs.size());
  for (const auto& v : inputs) {
    auto& adj = v.node()->adjoint;
    result.push_back(adj.defined() ? adj : Tensor<U, D>::zeros(v.shape()));
  }
  for (NodeBase* n : tape) n->clear_adjoint();
  for (const auto& v : inputs) v.node()->clear_adjoint();
  return result;
}

}  // namespace erlmr
