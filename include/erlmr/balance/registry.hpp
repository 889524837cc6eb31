// erlmr/balance/registry.hpp — methods by name, as `erlmr train --method` takes them.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "erlmr/balance/basic.hpp"
#if __has_include("erlmr/balance/ogm_ge.hpp")
#include "erlmr/balance/ogm_ge.hpp"
#define ERLMR_HAS_OGM_GE 1
#endif
#if __has_include("erlmr/balance/mmcosine.hpp")
#include "erlmr/balance/mmcosine.hpp"
#define ERLMR_HAS_MMCOSINE 1
#endif
#if __has_include("erlmr/balance/pmr.hpp")
#include "erlmr/balance/pmr.hpp"
#define ERLMR_HAS_PMR 1
#endif
#if __has_include("erlmr/balance/agm.hpp")
#include "erlmr/balance/agm.hpp"
#define ERLMR_HAS_AGM 1
#endif
#if __has_include("erlmr/balance/mmpareto.hpp")
#include "erlmr/balance/mmpareto.hpp"
#define ERLMR_HAS_MMPARETO 1
#endif
#if __has_include("erlmr/balance/mla.hpp")
#include "erlmr/balance/mla.hpp"
#define ERLMR_HAS_MLA 1
#endif
#if __has_include("erlmr/balance/gblending.hpp")
#include "erlmr/balance/gblending.hpp"
#define ERLMR_HAS_GBLENDING 1
#endif

namespace erlmr::balance {

inline std::vector<std::string> method_names() {
  std::vector<std::string> n{"erlmr", "joint", "uniform", "unimodal-a", "unimodal-g"};
#ifdef ERLMR_HAS_OGM_GE
  n.push_back("ogm-ge");
#endif
#ifdef ERLMR_HAS_MMCOSINE
  n.push_back("mmcosine");
#endif
#ifdef ERLMR_HAS_PMR
  n.push_back("pmr");
#endif
#ifdef ERLMR_HAS_AGM
  n.push_back("agm");
#endif
#ifdef ERLMR_HAS_MMPARETO
  n.push_back("mmpareto");
#endif
#ifdef ERLMR_HAS_MLA
  n.push_back("mla");
#endif
#ifdef ERLMR_HAS_GBLENDING
  n.push_back("gblending");
#endif
  return n;
}

template <RealScalar R, class D = CpuDevice>
std::unique_ptr<train::Method<R, D>> make_method(const std::string& name, const MethodOptions& o, erl::ErlmrModel<R, D>& model,
                                              std::int64_t classes) {
  using K = typename PlainMethod<R, D>::Kind;
  if (name == "erlmr") return std::make_unique<ErlmrMethod<R, D>>(o.erlmr_mode);
  if (name == "joint") return std::make_unique<PlainMethod<R, D>>(K::joint);
  if (name == "uniform") return std::make_unique<PlainMethod<R, D>>(K::uniform);
  if (name == "unimodal-a") return std::make_unique<PlainMethod<R, D>>(K::unimodal_a);
  if (name == "unimodal-g") return std::make_unique<PlainMethod<R, D>>(K::unimodal_g);
#ifdef ERLMR_HAS_OGM_GE
  if (name == "ogm-ge") return std::make_unique<OgmGe<R, D>>(o, model, classes);
#endif
#ifdef ERLMR_HAS_MMCOSINE
  if (name == "mmcosine") return std::make_unique<MMCosine<R, D>>(o, model, classes);
#endif
#ifdef ERLMR_HAS_PMR
  if (name == "pmr") return std::make_unique<Pmr<R, D>>(o, model, classes);
#endif
#ifdef ERLMR_HAS_AGM
  if (name == "agm") return std::make_unique<Agm<R, D>>(o, model, classes);
#endif
#ifdef ERLMR_HAS_MMPARETO
  if (name == "mmpareto") return std::make_unique<MMPareto<R, D>>(o, model, classes);
#endif
#ifdef ERLMR_HAS_MLA
  if (name == "mla") return std::make_unique<Mla<R, D>>(o, model, classes);
#endif
#ifdef ERLMR_HAS_GBLENDING
  if (name == "gblending") return std::make_unique<GBlending<R, D>>(o, model, classes);
#endif
  std::string all;
  for (const auto& n : method_names()) all += (all.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown method '" + name + "' (expected one of: " + all + ")");
}

}  // namespace erlmr::balance
