// erlmr/train/trainer.hpp — training, evaluation, linear probes and checkpoints.
//
// The method (ERL-MR or a baseline) is a train::Method from erlmr/balance/ that turns a
// batch into gradients; the trainer owns the data order, the optimiser, the schedule,
// evaluation, probes and checkpoints, so every method runs on the same encoders, fusion,
// data, seeds and budget.
//
// Determinism: the model is initialised from Generator(seed), dropout masks come
// from Generator(seed + 1) whose (seed, offset) is checkpointed, and each epoch's
// shuffle from Generator(seed + 2, epoch·N). With the fixed-order kernels this
// makes a run bitwise reproducible, independent of the thread count, and a run
// resumed from a checkpoint continues exactly as if it had not stopped.
// metrics.csv therefore holds no wall-clock times (they go to summary.json).
#pragma once
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "erlmr/data/dataset.hpp"
#include "erlmr/balance/registry.hpp"
#include "erlmr/erl/step.hpp"
#include "erlmr/optim/optimizer.hpp"
#include "erlmr/optim/schedule.hpp"
#include "erlmr/train/checkpoint.hpp"
#include "erlmr/train/method.hpp"
#include "erlmr/train/metrics.hpp"

namespace erlmr::train {

struct TrainConfig {
  std::string method = "erlmr";  // see balance::method_names()
  balance::MethodOptions options{};
  erl::FusionKind fusion = erl::FusionKind::concat;
  std::string arch = "auto";  // auto | sensor | general (see model_config_for)
  std::int64_t width = 64;    // general models: pooled feature width d
  int epochs = 20;
  std::int64_t batch = 16;
  std::string optimizer = "sgd";  // sgd | adam | adamw
  double lr = 1e-3, momentum = 0.9, weight_decay = 1e-4;
  bool nesterov = false;
  optim::Schedule schedule{};
  std::uint64_t seed = 42;
  double dropout = 0.5;
  int probe_epochs = 30;
  std::int64_t eval_batch = 256;
};

struct EvalResult {
  double loss = 0, acc = 0, acc_a = 0, acc_g = 0, f1 = 0, rho = 0, phase_cos = 0;
};

struct EpochMetrics {
  int epoch = 0;
  double lr = 0, loss = 0, loss_ce = 0, loss_phase = 0, loss_uni = 0, gamma = 0, phase_cos = 0;
  EvalResult test;
  std::vector<std::pair<std::string, double>> signals;  // the method's own per-epoch quantities
  static constexpr int kFields = 14;
  std::vector<double> to_row() const {
    return {double(epoch), lr, loss, loss_ce, loss_phase, loss_uni, test.acc, test.acc_a, test.acc_g, test.f1, phase_cos,
            gamma, test.rho, test.loss};
  }
  static EpochMetrics from_row(const double* r) {
    EpochMetrics m;
    m.epoch = int(r[0]);
    m.lr = r[1];
    m.loss = r[2];
    m.loss_ce = r[3];
    m.loss_phase = r[4];
    m.loss_uni = r[5];
    m.test.acc = r[6];
    m.test.acc_a = r[7];
    m.test.acc_g = r[8];
    m.test.f1 = r[9];
    m.phase_cos = r[10];
    m.gamma = r[11];
    m.test.rho = r[12];
    m.test.loss = r[13];
    return m;
  }
  std::string csv_header() const {
    std::string h = "epoch,lr,train_loss,train_loss_ce,train_loss_phase,train_loss_uni,test_acc,test_acc_a,test_acc_g,test_macro_f1,"
                    "phase_cos,gamma,rho,test_loss";
    for (const auto& [k, v] : signals) h += "," + k;
    return h;
  }
  std::string csv_line() const {
    std::ostringstream o;
    o.precision(9);
    auto r = to_row();
    o << epoch;
    for (std::size_t i = 1; i < r.size(); ++i) o << ',' << r[i];
    for (const auto& [k, v] : signals) o << ',' << v;
    return o.str();
  }
};

// Per-sample argmax predictions of the fused output and the two unimodal heads.
struct Predictions {
  std::vector<std::int64_t> fused, a, g;
};

struct ProbeResult {
  double acc_a = 0, acc_g = 0;
};

// Progress callbacks: per step (for a progress bar) and per epoch.
struct Progress {
  std::function<void(int epoch, std::int64_t step, std::int64_t steps, double running_loss)> on_step;
  std::function<void(const EpochMetrics&)> on_epoch;
};

// The model for a dataset. arch "auto" picks the released sensor model when both modalities
// are (1, 3, T) windows of the same T, and the general model otherwise (an encoder per
// modality chosen by its per-sample rank, spec §4); "sensor" and "general" force one.
template <RealScalar R> erl::ModelConfig model_config_for(const data::Dataset<R>& data, const TrainConfig& cfg) {
  erl::ModelConfig mc;
  mc.classes = data.classes;
  mc.fusion = cfg.fusion;
  mc.dropout = cfg.dropout;
  mc.width = cfg.width;
  if (cfg.arch != "auto" && cfg.arch != "sensor" && cfg.arch != "general")
    throw std::invalid_argument("unknown architecture '" + cfg.arch + "' (expected auto, sensor or general)");
  const bool sensor = cfg.arch == "sensor" || (cfg.arch == "auto" && data.sensor_layout());
  if (sensor) {
    if (!data.sensor_layout())
      throw std::invalid_argument("the sensor model needs both modalities as (N, 1, 3, T) windows of the same T; " + data.name + " has " +
                                  Shape(data.sample_shape(0)).str() + " and " + Shape(data.sample_shape(1)).str());
    mc.arch = erl::Arch::sensor;
    mc.window = data.window();
  } else {
    mc.arch = erl::Arch::general;
    mc.input_a = data.sample_shape(0);
    mc.input_g = data.sample_shape(1);
  }
  return mc;
}

// D is where the model, the batches and the optimiser state live (CpuDevice, or CudaDevice
// with erlmr/cuda.hpp included and erlmr::cuda linked). The data set, the shuffles, the
// metrics, the linear probes and the checkpoints stay on the host; the model is built on
// the host from the seed and moved, so a run starts from the same weights on every device.
template <RealScalar R, class D = CpuDevice>
class Trainer {
 public:
  using Model = erl::ErlmrModel<R, D>;

  Trainer(const TrainConfig& cfg, const data::Dataset<R>& data) : cfg_(cfg), data_(data), init_gen_(cfg.seed), drop_gen_(cfg.seed + 1) {
    if constexpr (std::is_same_v<D, CpuDevice>) model_ = std::make_unique<Model>(model_config_for(data, cfg), init_gen_);
    else model_ = erl::ErlmrModel<R>(model_config_for(data, cfg), init_gen_).template to<D>();
    auto opts = cfg.options;
    opts.seed = cfg.seed;
    method_ = balance::make_method<R, D>(cfg.method, opts, *model_, data_.classes);
    split_holdout();
    optim_ = optim::make_optimizer<R, D>(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov);
    optim_->add_params(model_->parameters());
    if (auto extra = method_->extra_parameters(); !extra.empty()) optim_->add_params(extra);
    cfg_.schedule.base = cfg.lr;
    if (cfg_.schedule.kind == optim::Schedule::Kind::cosine) cfg_.schedule.epochs = cfg.epochs;
  }

  Model& model() { return *model_; }
  train::Method<R, D>& method() { return *method_; }
  const std::vector<EpochMetrics>& history() const { return history_; }
  int epoch() const { return static_cast<int>(history_.size()); }

  // One epoch of training; returns the epoch's metrics (test evaluation included).
  EpochMetrics train_epoch(const Progress& progress = {}) {
    const int ep = epoch();
    optim_->lr = cfg_.schedule.lr(ep);
    const auto& tr = train_split_;
    const std::int64_t N = tr.size(), B = cfg_.batch, steps = N / B;  // drop the last partial batch (PyTorch drop_last)
    const auto order = permutation(N, ep);
    auto params = model_->parameters();
    for (auto& p : method_->extra_parameters()) params.push_back(p);
    std::vector<Batch<R, D>> batches;
    batches.reserve(static_cast<std::size_t>(steps));
    for (std::int64_t s = 0; s < steps; ++s) {
      auto [x1, x2, y] = gather(tr, order, s * B, B);
      batches.push_back({on_device(x1), on_device(x2), y});
    }
    method_->begin_epoch(*model_, EpochView<R, D>{ep, cfg_.epochs, &batches, &holdout_batches_});
    double s_loss = 0, s_ce = 0, s_ph = 0, s_uni = 0, s_gamma = 0;
    std::vector<std::pair<std::string, double>> sig;
    nn::Context ctx{true, &drop_gen_, 1.0};
    for (std::int64_t s = 0; s < steps; ++s) {
      optim::zero_grad(params);
      const auto st = method_->step(*model_, batches[static_cast<std::size_t>(s)], ctx, ep);
      optim_->step();
      s_loss += st.loss;
      s_ce += st.loss_ce;
      s_ph += st.loss_phase;
      s_uni += st.loss_uni;
      s_gamma += st.gamma;
      if (sig.empty()) sig = st.signals;
      else
        for (std::size_t k = 0; k < sig.size() && k < st.signals.size(); ++k) sig[k].second += st.signals[k].second;
      if (progress.on_step) progress.on_step(ep, s + 1, steps, s_loss / double(s + 1));
    }
    EpochMetrics m;
    m.epoch = ep + 1;
    m.lr = optim_->lr;
    const double n = double(std::max<std::int64_t>(steps, 1));
    m.loss = s_loss / n;
    m.loss_ce = s_ce / n;
    m.loss_phase = s_ph / n;
    m.loss_uni = s_uni / n;
    m.gamma = s_gamma / n;
    m.phase_cos = 1 - m.loss_phase;
    for (auto& kv : sig) kv.second /= n;
    m.signals = sig;
    m.test = evaluate(data_.test);
    history_.push_back(m);
    if (progress.on_epoch) progress.on_epoch(m);
    return m;
  }

  // Evaluation-mode metrics on a split (no graph, running batch-norm statistics).
  EvalResult evaluate(const data::Split<R>& sp, Predictions* predictions = nullptr) {
    NoGradGuard ng;
    nn::Context ctx{false, nullptr, 1.0};
    const std::int64_t N = sp.size();
    std::vector<std::int64_t> p, pa, pg;
    double conf_a = 0, conf_g = 0, loss = 0, phase = 0;
    std::int64_t batches = 0;
    std::vector<std::int64_t> idx(static_cast<std::size_t>(N));
    for (std::int64_t i = 0; i < N; ++i) idx[static_cast<std::size_t>(i)] = i;
    for (std::int64_t b0 = 0; b0 < N; b0 += cfg_.eval_batch) {
      const std::int64_t nb = std::min(cfg_.eval_batch, N - b0);
      auto [x1, x2, y] = gather(sp, idx, b0, nb);
      auto f = method_->evaluate(*model_, on_device(x1), on_device(x2), ctx);
      const auto out = as_host(f.out.value()), out_a = as_host(f.out_a.value()), out_g = as_host(f.out_g.value());
      for (auto [dst, src] : {std::pair{&p, &out}, std::pair{&pa, &out_a}, std::pair{&pg, &out_g}}) {
        auto am = argmax_rows(*src);
        dst->insert(dst->end(), am.begin(), am.end());
      }
      conf_a += true_class_confidence(out_a, y);
      conf_g += true_class_confidence(out_g, y);
      loss += double(cross_entropy(f.out, y).item()) * double(nb);
      if (nb > 1) {
        phase += double(erl::phase_cosine_loss(f.theta_a, f.theta_g).item());
        ++batches;
      }
    }
    EvalResult r;
    if (predictions) *predictions = {p, pa, pg};
    r.acc = accuracy(p, sp.y);
    r.acc_a = accuracy(pa, sp.y);
    r.acc_g = accuracy(pg, sp.y);
    r.f1 = macro_f1(p, sp.y, data_.classes);
    r.rho = conf_g > 0 ? conf_a / conf_g : 0;
    r.loss = loss / double(std::max<std::int64_t>(N, 1));
    r.phase_cos = batches ? 1 - phase / double(batches) : 0;
    return r;
  }

  // Linear probes: a fresh linear classifier on each frozen encoder's fused features h_m.
  ProbeResult probe(int epochs = -1) {
    if (epochs < 0) epochs = cfg_.probe_epochs;
    auto [ha_tr, hg_tr] = features(data_.train);
    auto [ha_te, hg_te] = features(data_.test);
    return {train_probe(ha_tr, data_.train.y, ha_te, data_.test.y, epochs, 11),
            train_probe(hg_tr, data_.train.y, hg_te, data_.test.y, epochs, 12)};
  }

  // ---- checkpoints -------------------------------------------------------------------
  data::NpzMap checkpoint() {
    data::NpzMap m;
    auto st = model_->state();
    add_state(m, st);
    for (std::size_t i = 0; i < optim_->state_count(); ++i) {
      const auto b = optim_->get_state(i);
      m["trainer/optim/" + std::to_string(i)] = data::NpyArray::make<R>({static_cast<std::int64_t>(b.size())}, b);
    }
    m["trainer/optim_steps"] = data::NpyArray::make<std::int64_t>({}, {optim_->steps});
    m["trainer/dropout_rng"] = data::NpyArray::make<std::int64_t>(
        {2}, {static_cast<std::int64_t>(drop_gen_.seed()), static_cast<std::int64_t>(drop_gen_.offset())});
    std::vector<double> rows;
    for (const auto& h : history_) {
      auto r = h.to_row();
      rows.insert(rows.end(), r.begin(), r.end());
    }
    m["trainer/history"] = data::NpyArray::make<double>({static_cast<std::int64_t>(history_.size()), EpochMetrics::kFields}, rows);
    // Method signals: names joined by ',' as bytes, values (epochs × signals).
    std::string names;
    std::vector<double> sv;
    const std::size_t ns = history_.empty() ? 0 : history_.front().signals.size();
    if (ns) {
      for (const auto& [k, v] : history_.front().signals) names += (names.empty() ? "" : ",") + k;
      for (const auto& h : history_)
        for (std::size_t k = 0; k < ns; ++k) sv.push_back(k < h.signals.size() ? h.signals[k].second : 0.0);
    }
    m["trainer/signal_names"] = data::NpyArray::make<std::uint8_t>({static_cast<std::int64_t>(names.size())},
                                                                  std::vector<std::uint8_t>(names.begin(), names.end()));
    m["trainer/signals"] = data::NpyArray::make<double>({static_cast<std::int64_t>(history_.size()), static_cast<std::int64_t>(ns)}, sv);
    method_->save_state(m, "trainer/method/");
    auto text = [](const std::string& t) {
      return data::NpyArray::make<std::uint8_t>({static_cast<std::int64_t>(t.size())}, std::vector<std::uint8_t>(t.begin(), t.end()));
    };
    m["trainer/method_name"] = text(cfg_.method);
    m["trainer/fusion"] = text(erl::fusion_name(cfg_.fusion));
    m["trainer/arch"] = text(erl::arch_name(model_->cfg.arch));
    m["trainer/width"] = data::NpyArray::make<std::int64_t>({}, {model_->cfg.width});
    return m;
  }
  void save_checkpoint(const std::string& path) { data::write_npz(path, checkpoint(), true); }

  // Restores a checkpoint written by save_checkpoint (model-only files load too: training
  // state then starts fresh).
  void load_checkpoint(const std::string& path) {
    auto m = data::read_npz(path);
    auto st = model_->state();
    LoadOptions opt;
    opt.strict = true;
    data::NpzMap model_only;
    for (auto& [k, v] : m)
      if (k.rfind("trainer/", 0) != 0) model_only[k] = v;
    load_state(st, model_only, path, opt);
    if (!m.count("trainer/history")) return;
    for (std::size_t i = 0; i < optim_->state_count(); ++i) {
      auto it = m.find("trainer/optim/" + std::to_string(i));
      if (it == m.end()) throw std::runtime_error(path + ": missing optimizer state " + std::to_string(i) + " (different optimizer?)");
      try {
        optim_->set_state(i, it->second.template as<R>());
      } catch (const std::exception& e) {
        throw std::runtime_error(path + ": " + e.what() + " (different model or optimizer?)");
      }
    }
    optim_->steps = m.at("trainer/optim_steps").template as<std::int64_t>().at(0);
    auto rng = m.at("trainer/dropout_rng").template as<std::int64_t>();
    drop_gen_.set_state(static_cast<std::uint64_t>(rng.at(0)), static_cast<std::uint64_t>(rng.at(1)));
    const auto& h = m.at("trainer/history");
    auto rows = h.template as<double>();
    if (h.shape.size() != 2 || h.shape[1] != EpochMetrics::kFields)
      throw std::runtime_error(path + ": trainer/history has shape " + Shape(h.shape).str());
    history_.clear();
    for (std::int64_t i = 0; i < h.shape[0]; ++i) history_.push_back(EpochMetrics::from_row(rows.data() + i * EpochMetrics::kFields));
    if (m.count("trainer/signals")) {
      const auto nb = m.at("trainer/signal_names").template as<std::uint8_t>();
      std::vector<std::string> names;
      std::string cur;
      for (auto c : nb) {
        if (c == ',') { names.push_back(cur); cur.clear(); }
        else cur.push_back(char(c));
      }
      if (!cur.empty()) names.push_back(cur);
      const auto& sa = m.at("trainer/signals");
      const auto sv = sa.template as<double>();
      if (sa.shape.size() != 2 || sa.shape[0] != h.shape[0] || sa.shape[1] != static_cast<std::int64_t>(names.size()))
        throw std::runtime_error(path + ": trainer/signals has shape " + Shape(sa.shape).str());
      for (std::size_t i = 0; i < history_.size(); ++i)
        for (std::size_t k = 0; k < names.size(); ++k) history_[i].signals.push_back({names[k], sv[i * names.size() + k]});
    }
    method_->load_state(m, "trainer/method/");
  }

  const TrainConfig& config() const { return cfg_; }

 private:
  // A host batch tensor as a (constant) graph input on the trainer's device.
  static Var<R, D> on_device(const Tensor<R>& x) { return Var<R, D>(as_device<D>(x)); }
  // Splits off the method's held-out fraction of the training data (a fixed random subset).
  void split_holdout() {
    const double f = method_->holdout_fraction();
    const std::int64_t N = data_.train.size(), nh = static_cast<std::int64_t>(f * double(N));
    if (nh <= 0) {
      train_split_ = data_.train;
      return;
    }
    if (N - nh < cfg_.batch) throw std::runtime_error("the held-out fraction leaves fewer training samples than one batch");
    const auto p = permutation(N, -1);
    std::vector<std::int64_t> keep(p.begin() + nh, p.end()), hold(p.begin(), p.begin() + nh);
    std::sort(keep.begin(), keep.end());
    std::sort(hold.begin(), hold.end());
    auto [x1, x2, y] = gather(data_.train, keep, 0, static_cast<std::int64_t>(keep.size()));
    train_split_.x1 = x1;
    train_split_.x2 = x2;
    train_split_.y = y;
    for (std::int64_t b0 = 0; b0 < nh; b0 += cfg_.eval_batch) {
      auto [h1, h2, hy] = gather(data_.train, hold, b0, std::min(cfg_.eval_batch, nh - b0));
      holdout_batches_.push_back({on_device(h1), on_device(h2), hy});
    }
  }

  std::vector<std::int64_t> permutation(std::int64_t n, int ep) const {
    Generator g(cfg_.seed + 2, static_cast<std::uint64_t>(ep + 1) * static_cast<std::uint64_t>(n));
    const std::uint64_t o = g.reserve(static_cast<std::uint64_t>(n));
    std::vector<std::int64_t> p(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
    for (std::int64_t i = n - 1; i > 0; --i) {  // Fisher–Yates with counter-based draws
      const auto j = static_cast<std::int64_t>(g.uniform(o + static_cast<std::uint64_t>(i)) * double(i + 1));
      std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(std::min(j, i))]);
    }
    return p;
  }

  static std::tuple<Tensor<R>, Tensor<R>, std::vector<std::int64_t>> gather(const data::Split<R>& sp,
                                                                           const std::vector<std::int64_t>& idx,
                                                                           std::int64_t start, std::int64_t n) {
    Shape s1 = sp.x1.shape(), s2 = sp.x2.shape();
    const std::int64_t per1 = s1.numel() / std::max<std::int64_t>(s1[0], 1), per2 = s2.numel() / std::max<std::int64_t>(s2[0], 1);
    s1[0] = n;
    s2[0] = n;
    Tensor<R> x1(s1), x2(s2);
    std::vector<std::int64_t> y(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t j = idx[static_cast<std::size_t>(start + i)];
      std::copy_n(sp.x1.data() + j * per1, per1, x1.data() + i * per1);
      std::copy_n(sp.x2.data() + j * per2, per2, x2.data() + i * per2);
      y[static_cast<std::size_t>(i)] = sp.y[static_cast<std::size_t>(j)];
    }
    return {x1, x2, y};
  }

  std::pair<Tensor<R>, Tensor<R>> features(const data::Split<R>& sp) {
    NoGradGuard ng;
    nn::Context ctx{false, nullptr, 1.0};
    const std::int64_t N = sp.size(), dim = model_->cfg.fused_dim();
    Tensor<R> ha(Shape{N, dim}), hg(Shape{N, dim});
    std::vector<std::int64_t> idx(static_cast<std::size_t>(N));
    for (std::int64_t i = 0; i < N; ++i) idx[static_cast<std::size_t>(i)] = i;
    for (std::int64_t b0 = 0; b0 < N; b0 += cfg_.eval_batch) {
      const std::int64_t nb = std::min(cfg_.eval_batch, N - b0);
      auto [x1, x2, y] = gather(sp, idx, b0, nb);
      auto f = model_->forward(on_device(x1), on_device(x2), ctx);
      std::copy_n(as_host(f.h_a.value()).data(), nb * dim, ha.data() + b0 * dim);
      std::copy_n(as_host(f.h_g.value()).data(), nb * dim, hg.data() + b0 * dim);
    }
    return {ha, hg};
  }

  // Trains a fresh Linear(dim, K) on frozen features with Adam and returns test accuracy.
  double train_probe(const Tensor<R>& ftr, const std::vector<std::int64_t>& ytr, const Tensor<R>& fte,
                     const std::vector<std::int64_t>& yte, int epochs, std::uint64_t salt) {
    const std::int64_t N = ftr.shape()[0], dim = ftr.shape()[1], B = 64;
    // Standardise features with the training statistics, per dimension.
    Tensor<R> mu = Tensor<R>::zeros(Shape{dim}), sd = Tensor<R>::zeros(Shape{dim});
    for (std::int64_t i = 0; i < N; ++i) mu.vec() += ftr.mat(N, dim).row(i).transpose().array();
    mu.vec() /= R(std::max<std::int64_t>(N, 1));
    for (std::int64_t i = 0; i < N; ++i) sd.vec() += (ftr.mat(N, dim).row(i).transpose().array() - mu.vec()).square();
    sd.vec() = (sd.vec() / R(std::max<std::int64_t>(N, 1))).sqrt() + R(1e-6);
    auto norm = [&](const Tensor<R>& f) {
      Tensor<R> o = f.clone();
      const std::int64_t n = f.shape()[0];
      for (std::int64_t i = 0; i < n; ++i) o.mat(n, dim).row(i).array() = (o.mat(n, dim).row(i).array() - mu.vec().transpose()) / sd.vec().transpose();
      return o;
    };
    const Tensor<R> tr = norm(ftr), te = norm(fte);
    Generator g(cfg_.seed * 131 + salt);
    nn::Linear<R> head(dim, data_.classes, g);
    optim::Adam<R> opt(1e-3, 0.9, 0.999, 1e-8, 1e-4, true);
    opt.add_params(std::vector<Var<R>>{head.weight, head.bias});
    for (int ep = 0; ep < epochs; ++ep) {
      Generator pg(cfg_.seed * 131 + salt + 1, static_cast<std::uint64_t>(ep) * static_cast<std::uint64_t>(N));
      const std::uint64_t o = pg.reserve(static_cast<std::uint64_t>(N));
      std::vector<std::int64_t> p(static_cast<std::size_t>(N));
      for (std::int64_t i = 0; i < N; ++i) p[static_cast<std::size_t>(i)] = i;
      for (std::int64_t i = N - 1; i > 0; --i)
        std::swap(p[static_cast<std::size_t>(i)],
                  p[static_cast<std::size_t>(std::min<std::int64_t>(i, static_cast<std::int64_t>(pg.uniform(o + i) * double(i + 1))))]);
      for (std::int64_t b0 = 0; b0 + B <= N; b0 += B) {
        Tensor<R> xb(Shape{B, dim});
        std::vector<std::int64_t> yb(static_cast<std::size_t>(B));
        for (std::int64_t i = 0; i < B; ++i) {
          const auto j = p[static_cast<std::size_t>(b0 + i)];
          std::copy_n(tr.data() + j * dim, dim, xb.data() + i * dim);
          yb[static_cast<std::size_t>(i)] = ytr[static_cast<std::size_t>(j)];
        }
        head.weight.zero_grad();
        head.bias.zero_grad();
        backward(cross_entropy(linear(Var<R>(xb), head.weight, head.bias), yb));
        opt.step();
      }
    }
    NoGradGuard ng;
    auto logits = linear(Var<R>(te), head.weight, head.bias).value();
    return accuracy(argmax_rows(logits), yte);
  }

  TrainConfig cfg_;
  const data::Dataset<R>& data_;
  Generator init_gen_, drop_gen_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<optim::ParamViews<R, D>> optim_;
  std::unique_ptr<train::Method<R, D>> method_;
  data::Split<R> train_split_;                // the training data the steps see (minus any held-out part), host
  std::vector<Batch<R, D>> holdout_batches_;  // the method's held-out part, in fixed batches
  std::vector<EpochMetrics> history_;
};

}  // namespace erlmr::train
