// erlmr/train/checkpoint.hpp — model state <-> .npz (PyTorch state_dict names and layouts).
//
// A checkpoint is what `numpy.savez` writes: one array per state_dict key,
// float arrays in the parameter's dtype, num_batches_tracked as int64 0-d arrays.
// Loading is strict by default: a missing key, an unexpected key or a shape
// mismatch throws std::runtime_error naming the file and the key. Any float
// dtype is accepted and converted (a float64 export loads into a float32 model).
// Saving is atomic (temporary file + rename, done by data::write_npz).
#pragma once
#include <set>
#include <stdexcept>
#include <string>

#include "erlmr/data/npy.hpp"
#include "erlmr/nn/module.hpp"

namespace erlmr::train {

template <class T, class D> data::NpyArray to_npy(const Tensor<T, D>& t) {
  return data::NpyArray::make<T>(t.shape().vec(), t.to_vector());
}

// Converts an array to a tensor of element type T with the expected shape.
template <class T>
Tensor<T> from_npy(const data::NpyArray& a, const std::string& where, const Shape* expect = nullptr) {
  Shape s(a.shape);
  if (expect && !(s == *expect))
    throw std::runtime_error(where + ": shape " + s.str() + " does not match the model's " + expect->str());
  return Tensor<T>::from_vector(s, a.as<T>());
}

struct LoadOptions {
  bool strict = true;          // every model key must be present, and no extra keys (under the prefix)
  std::string prefix;          // e.g. "param/" for the fixtures
};

// Copies arrays into the model state in place (parameters keep their identity), on
// whichever device the model lives.
template <RealScalar R, class D>
void load_state(nn::StateLists<R, D>& st, const data::NpzMap& arrays, const std::string& file, const LoadOptions& opt = {}) {
  std::set<std::string> used;
  auto find = [&](const std::string& name) -> const data::NpyArray* {
    auto it = arrays.find(opt.prefix + name);
    if (it == arrays.end()) {
      if (opt.strict) throw std::runtime_error(file + ": missing key '" + opt.prefix + name + "'");
      return nullptr;
    }
    used.insert(it->first);
    return &it->second;
  };
  for (auto& p : st.params)
    if (auto* a = find(p.name))
      p.var.value().copy_(as_device<D>(from_npy<R>(*a, file + ": key '" + opt.prefix + p.name + "'", &p.var.shape())));
  for (auto& b : st.buffers)
    if (auto* a = find(b.name))
      b.tensor.copy_(as_device<D>(from_npy<R>(*a, file + ": key '" + opt.prefix + b.name + "'", &b.tensor.shape())));
  for (auto& c : st.counters)
    if (auto* a = find(c.name)) {
      auto v = a->template as<std::int64_t>();
      if (v.size() != 1) throw std::runtime_error(file + ": key '" + opt.prefix + c.name + "' is not a single integer");
      c.tensor.data()[0] = v[0];
    }
  if (opt.strict)
    for (const auto& [k, v] : arrays)
      if (k.rfind(opt.prefix, 0) == 0 && !used.count(k))
        throw std::runtime_error(file + ": unexpected key '" + k + "' (not part of this model: wrong fusion or window?)");
}

template <RealScalar R, class D> void add_state(data::NpzMap& out, nn::StateLists<R, D>& st, const std::string& prefix = "") {
  for (auto& p : st.params) out[prefix + p.name] = to_npy(p.var.value());
  for (auto& b : st.buffers) out[prefix + b.name] = to_npy(b.tensor);
  for (auto& c : st.counters) out[prefix + c.name] = to_npy(c.tensor);
}

}  // namespace erlmr::train
