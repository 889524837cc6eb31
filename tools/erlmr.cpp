// erlmr — the command line: one reference step, training, evaluation.
//
//   erlmr step  --fixture F.npz --fusion concat --dtype f64 --out OUT.npz
//   erlmr train --data synthetic|DIR --method erlmr[,joint,...] --epochs 20 --out runs/x [--device cuda]
//   erlmr eval  --checkpoint runs/x/erlmr/checkpoint.npz --data synthetic|DIR
//   erlmr data build av-fashion --out data/av-fashion   (docs/av-fashion.md)
//
// Every run writes metrics.csv, summary.json, accuracy.svg and checkpoints under --out.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/erl/step.hpp>
#include <erlmr/train/plot.hpp>
#include <erlmr/train/trainer.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "compare.hpp"
#if defined(ERLMR_HAS_CUDA)
#include <erlmr/cuda.hpp>  // --device cuda (built with -DERLMR_CUDA=ON, docs/cuda.md)
#endif
#if defined(ERLMR_HAVE_ESPEAK)
#include "av_fashion.hpp"
#endif

using namespace erlmr;
namespace fs = std::filesystem;

namespace {

struct DataOptions {
  std::string source = "synthetic";
  std::int64_t window = 64, train_size = 2400, test_size = 1200, classes = 0;
  std::uint64_t data_seed = 7;
};

template <RealScalar R> data::Dataset<R> load_data(const DataOptions& o) {
  if (o.source == "synthetic") {
    data::SyntheticConfig c;
    c.window = o.window;
    c.train = o.train_size;
    c.test = o.test_size;
    c.seed = o.data_seed;
    return data::synthetic_sensor<R>(c);
  }
  return data::load_npy_dir<R>(o.source, o.classes);
}

// ---------------------------------------------------------------- step
struct StepOptions {
  std::string fixture, fusion = "concat", dtype = "f64", out, mode = "fused";
};

template <RealScalar R> int run_step(const StepOptions& o) {
  auto npz = data::read_npz(o.fixture);
  auto need = [&](const std::string& k) -> const data::NpyArray& {
    auto it = npz.find(k);
    if (it == npz.end()) throw std::runtime_error(o.fixture + ": missing key '" + k + "'");
    return it->second;
  };
  const auto& x1a = need("input/x1");
  const auto& x2a = need("input/x2");
  if (x1a.shape.size() != 4) throw std::runtime_error(o.fixture + ": input/x1 has shape " + Shape(x1a.shape).str() + ", expected (B, 1, 3, T)");
  erl::ModelConfig cfg;
  cfg.window = x1a.shape[3];
  cfg.fusion = erl::parse_fusion(o.fusion);
  // The class count is read off the fusion layer's output size.
  const std::string head = cfg.fusion == erl::FusionKind::sum ? "param/fusion.fc_x.bias" : "param/fusion.fc_out.bias";
  cfg.classes = need(head).numel();
  Generator g(0);
  erl::ErlmrModel<R> model(cfg, g);
  auto st = model.state();
  train::load_state(st, npz, o.fixture, {true, "param/"});
  Var<R> x1(train::from_npy<R>(x1a, o.fixture + ": input/x1")), x2(train::from_npy<R>(x2a, o.fixture + ": input/x2"));
  auto y = need("input/y").template as<std::int64_t>();
  nn::Context ctx{true, nullptr, 0.0};  // training mode, dropout off
  auto r = erl::erlmr_step(model, x1, x2, y, ctx, erl::parse_step_mode(o.mode));
  data::NpzMap out;
  for (auto& p : st.params) out["grad/" + p.name] = train::to_npy(p.var.grad());
  for (auto& b : st.buffers) out["after/" + b.name] = train::to_npy(b.tensor);
  out["value/out"] = train::to_npy(r.fwd.out.value());
  out["value/out_a"] = train::to_npy(r.fwd.out_a.value());
  out["value/out_g"] = train::to_npy(r.fwd.out_g.value());
  out["value/theta_a"] = train::to_npy(r.fwd.theta_a.value());
  out["value/theta_g"] = train::to_npy(r.fwd.theta_g.value());
  const std::vector<std::pair<std::string, double>> scalars{
      {"loss_ce", r.loss_ce}, {"loss_phase", r.loss_phase}, {"loss_uni", r.loss_uni}, {"gamma", r.gamma}, {"loss", r.loss}};
  for (const auto& [k, v] : scalars) out["value/" + k] = data::NpyArray::make<R>({}, std::vector<R>{R(v)});
  data::write_npz(o.out, out, true);
  std::printf("step: loss %.10g (ce %.10g, phase %.10g, uni %.10g, gamma %.10g) -> %s\n", r.loss, r.loss_ce, r.loss_phase, r.loss_uni,
              r.gamma, o.out.c_str());
  return 0;
}

// ---------------------------------------------------------------- train
struct TrainOptions {
  DataOptions data;
  balance::MethodOptions options;
  std::string methods = "erlmr", fusion = "concat", mode = "fused", optimizer = "sgd", schedule = "step", out = "runs/latest",
              dtype = "f32", resume, arch = "auto", device = "cpu";
  std::int64_t width = 64;
  std::vector<int> milestones{50, 100, 150};
  double lr = 1e-3, momentum = 0.9, weight_decay = 1e-4, factor = 0.9, dropout = 0.5;
  int epochs = 20, probe_epochs = 30, threads = 0;
  std::int64_t batch = 16;
  std::uint64_t seed = 42;
  bool no_progress = false, nesterov = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void write_text(const fs::path& p, const std::string& s) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << s;
    if (!f) throw std::runtime_error(p.string() + ": cannot write");
  }
  fs::rename(tmp, p);
}

std::string fmt_time(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%d:%02d", int(s) / 60, int(s) % 60);
  return b;
}

struct RunSummary {
  std::string method;
  train::EpochMetrics last, best;
  train::ProbeResult probe;
  double seconds_per_epoch = 0;
};

// Calls f(CpuDevice{}) or f(CudaDevice{}) for --device cpu | cuda; a build without the CUDA
// backend, or a machine without a usable GPU, gets an error saying which.
template <class F> int by_device(const std::string& device, F&& f) {
  if (device == "cpu") return f(CpuDevice{});
  if (device == "cuda") {
#if defined(ERLMR_HAS_CUDA)
    std::string why;
    if (!cuda::available(&why)) throw std::runtime_error("--device cuda: no usable CUDA device (" + why + ")");
    return f(CudaDevice{});
#else
    throw std::runtime_error("--device cuda: this erlmr was built without the CUDA backend (configure with -DERLMR_CUDA=ON; docs/cuda.md)");
#endif
  }
  throw std::invalid_argument("unknown device '" + device + "' (expected cpu or cuda)");
}

template <RealScalar R, class D> RunSummary train_one(const TrainOptions& o, const std::string& method, const data::Dataset<R>& d,
                                                      const fs::path& dir) {
  train::TrainConfig c;
  c.method = method;
  c.options = o.options;
  c.options.erlmr_mode = erl::parse_step_mode(o.mode);
  c.fusion = erl::parse_fusion(o.fusion);
  c.arch = o.arch;
  c.width = o.width;
  c.epochs = o.epochs;
  c.batch = o.batch;
  c.optimizer = o.optimizer;
  c.lr = o.lr;
  c.momentum = o.momentum;
  c.weight_decay = o.weight_decay;
  c.nesterov = o.nesterov;
  c.schedule.kind = optim::Schedule::parse(o.schedule);
  c.schedule.milestones = o.milestones;
  c.schedule.factor = o.factor;
  c.seed = o.seed;
  c.dropout = o.dropout;
  c.probe_epochs = o.probe_epochs;
  if (d.train.size() < c.batch) throw std::runtime_error("training split has " + std::to_string(d.train.size()) + " samples, fewer than one batch");
  train::Trainer<R, D> t(c, d);
  fs::create_directories(dir);
  const fs::path ckpt = dir / "checkpoint.npz";
  if (!o.resume.empty()) {
    const fs::path src = o.resume == "auto" ? ckpt : fs::path(o.resume);
    if (fs::exists(src)) {
      t.load_checkpoint(src.string());
      std::printf("[%s] resumed from %s at epoch %d\n", method.c_str(), src.string().c_str(), t.epoch());
    } else if (o.resume != "auto") {
      throw std::runtime_error(src.string() + ": checkpoint not found");
    }
  }
  const bool tty = isatty(fileno(stderr)) && !o.no_progress;
  train::Progress prog;
  auto t0 = std::chrono::steady_clock::now();
  auto epoch_t0 = t0;
  prog.on_step = [&](int ep, std::int64_t s, std::int64_t n, double running) {
    if (!tty || (s % 5 != 0 && s != n)) return;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_t0).count();
    const double rate = double(s) / std::max(el, 1e-9);
    const int w = 24, fill = int(double(w) * double(s) / double(n));
    std::fprintf(stderr, "\r[%s] epoch %d/%d [%s%s] %3d%% %6.1f step/s ETA %s loss %.4f ", method.c_str(), ep + 1, o.epochs,
                 std::string(static_cast<std::size_t>(fill), '#').c_str(), std::string(static_cast<std::size_t>(w - fill), '.').c_str(),
                 int(100 * s / n), rate, fmt_time(double(n - s) / std::max(rate, 1e-9)).c_str(), running);
    std::fflush(stderr);
  };
  std::vector<double> epoch_seconds;
  prog.on_epoch = [&](const train::EpochMetrics& m) {
    const auto now = std::chrono::steady_clock::now();
    epoch_seconds.push_back(std::chrono::duration<double>(now - epoch_t0).count());
    epoch_t0 = now;
    if (tty) std::fprintf(stderr, "\r\033[K");
    std::printf("[%s] epoch %3d  lr %.2e  loss %.4f (ce %.4f phase %.4f uni %.4f)  test acc %.4f  a %.4f  g %.4f  f1 %.4f  gamma %.3f  rho %.3f\n",
                method.c_str(), m.epoch, m.lr, m.loss, m.loss_ce, m.loss_phase, m.loss_uni, m.test.acc, m.test.acc_a, m.test.acc_g,
                m.test.f1, m.gamma, m.test.rho);
    std::fflush(stdout);
    // metrics.csv is rewritten from the full history (so a resumed run's file is identical).
    std::string csv = m.csv_header() + "\n";
    for (const auto& h : t.history()) csv += h.csv_line() + "\n";
    write_text(dir / "metrics.csv", csv);
    t.save_checkpoint(ckpt.string());
  };
  while (t.epoch() < o.epochs) t.train_epoch(prog);
  const auto probe = t.probe();
  // Final artefacts.
  RunSummary rs;
  rs.method = method;
  if (t.history().empty()) throw std::runtime_error("no epochs were trained");
  rs.last = t.history().back();
  rs.best = rs.last;
  for (const auto& h : t.history())
    if (h.test.acc > rs.best.test.acc) rs.best = h;
  rs.probe = probe;
  double tot = 0;
  for (double s : epoch_seconds) tot += s;
  rs.seconds_per_epoch = epoch_seconds.empty() ? 0 : tot / double(epoch_seconds.size());
  {
    data::NpzMap model_only;
    auto st = t.model().state();
    train::add_state(model_only, st);
    data::write_npz((dir / "model.npz").string(), model_only, true);
  }
  std::vector<double> fa, aa, ag;
  for (const auto& h : t.history()) {
    fa.push_back(h.test.acc);
    aa.push_back(h.test.acc_a);
    ag.push_back(h.test.acc_g);
  }
  write_text(dir / "accuracy.svg",
             train::svg_line_plot(std::string("test accuracy — ") + method + " on " + d.name, "accuracy",
                                  {{"fused", "#1f77b4", fa}, {"head a (" + d.modality_a + ")", "#d62728", aa},
                                   {"head g (" + d.modality_g + ")", "#2ca02c", ag}}));
  nlohmann::ordered_json j;
  j["method"] = method;
  j["data"] = d.name;
  j["fusion"] = o.fusion;
  j["arch"] = erl::arch_name(t.model().cfg.arch);
  j["encoders"] = {{d.modality_a, t.model().enc_a->describe()}, {d.modality_g, t.model().enc_g->describe()}};
  j["step_mode"] = o.mode;
  j["dtype"] = o.dtype;
  j["device"] = o.device;
  j["epochs"] = o.epochs;
  j["batch"] = o.batch;
  j["seed"] = o.seed;
  j["threads"] = num_threads();
  j["final"] = {{"epoch", rs.last.epoch}, {"test_acc", rs.last.test.acc}, {"test_macro_f1", rs.last.test.f1},
                {"test_acc_a", rs.last.test.acc_a}, {"test_acc_g", rs.last.test.acc_g}, {"rho", rs.last.test.rho}};
  j["best"] = {{"epoch", rs.best.epoch}, {"test_acc", rs.best.test.acc}, {"test_acc_a", rs.best.test.acc_a}, {"test_acc_g", rs.best.test.acc_g}};
  j["probe"] = {{"acc_a", probe.acc_a}, {"acc_g", probe.acc_g}, {"epochs", o.probe_epochs}};
  j["seconds_per_epoch"] = rs.seconds_per_epoch;
  j["notes"] = "final = last epoch; best = epoch with the highest fused test accuracy; acc_a/acc_g are the unimodal heads; "
               "probe = linear classifier trained on each frozen encoder's features";
  write_text(dir / "summary.json", j.dump(2) + "\n");
  return rs;
}

template <RealScalar R, class D> int run_train(const TrainOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  const auto d = load_data<R>(o.data);
  std::printf("data: %s, %lld train / %lld test samples, %s %s + %s %s, %lld classes; device %s, threads %d\n", d.name.c_str(),
              (long long)d.train.size(), (long long)d.test.size(), d.modality_a.c_str(), Shape(d.sample_shape(0)).str().c_str(),
              d.modality_g.c_str(), Shape(d.sample_shape(1)).str().c_str(), (long long)d.classes, o.device.c_str(), num_threads());
  std::vector<RunSummary> runs;
  const auto methods = split_list(o.methods);
  for (const auto& m : methods) runs.push_back(train_one<R, D>(o, m, d, methods.size() > 1 ? fs::path(o.out) / m : fs::path(o.out)));
  std::printf("\n| method | fused acc (last) | best (epoch) | macro-F1 | head a | head g | probe a | probe g | s/epoch |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : runs)
    std::printf("| %s | %.4f | %.4f (%d) | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f |\n", r.method.c_str(), r.last.test.acc,
                r.best.test.acc, r.best.epoch, r.last.test.f1, r.last.test.acc_a, r.last.test.acc_g, r.probe.acc_a, r.probe.acc_g,
                r.seconds_per_epoch);
  std::printf("\nhead a/g: unimodal heads (a = %s, g = %s); probe: linear classifier on each frozen encoder. Outputs in %s\n",
              d.modality_a.c_str(), d.modality_g.c_str(), o.out.c_str());
  return 0;
}

// ---------------------------------------------------------------- eval
struct EvalOptions {
  DataOptions data;
  std::string checkpoint, fusion = "concat", dtype = "f32", method = "erlmr", arch = "auto", predictions, device = "cpu";
  std::int64_t width = 64;
  int threads = 0;
};

template <RealScalar R, class D> int run_eval(const EvalOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  const auto d = load_data<R>(o.data);
  train::TrainConfig c;
  c.fusion = erl::parse_fusion(o.fusion);
  c.method = o.method;
  c.arch = o.arch;
  c.width = o.width;
  {  // A checkpoint written by `erlmr train` records its method and fusion.
    const auto npz = data::read_npz(o.checkpoint);
    auto text = [&](const char* k) -> std::string {
      auto it = npz.find(k);
      if (it == npz.end()) return "";
      const auto b = it->second.template as<std::uint8_t>();
      return std::string(b.begin(), b.end());
    };
    if (auto m = text("trainer/method_name"); !m.empty()) c.method = m;
    if (auto f = text("trainer/fusion"); !f.empty()) c.fusion = erl::parse_fusion(f);
    if (auto a = text("trainer/arch"); !a.empty()) c.arch = a;
    if (auto it = npz.find("trainer/width"); it != npz.end() && it->second.numel() == 1) c.width = it->second.template as<std::int64_t>().at(0);
  }
  train::Trainer<R, D> t(c, d);
  t.load_checkpoint(o.checkpoint);
  train::Predictions pred;
  const auto r = t.evaluate(d.test, &pred);
  if (!o.predictions.empty()) {
    std::string csv = "index,label,fused,head_a,head_g\n";
    for (std::size_t i = 0; i < d.test.y.size(); ++i)
      csv += std::to_string(i) + "," + std::to_string(d.test.y[i]) + "," + std::to_string(pred.fused[i]) + "," + std::to_string(pred.a[i]) +
             "," + std::to_string(pred.g[i]) + "\n";
    write_text(o.predictions, csv);
  }
  std::printf("%s on %s (test, %lld samples): acc %.4f  macro-F1 %.4f  head a %.4f  head g %.4f  rho %.3f  loss %.4f\n",
              o.checkpoint.c_str(), d.name.c_str(), (long long)d.test.size(), r.acc, r.f1, r.acc_a, r.acc_g, r.rho, r.loss);
  return 0;
}

void add_data_options(CLI::App* c, DataOptions& d) {
  c->add_option("--data", d.source, "'synthetic' or a directory of .npy files (x1_train.npy x2_train.npy y_train.npy ..., docs/data.md)");
  c->add_option("--window", d.window, "synthetic: window length T")->check(CLI::Range(3, 100000));
  c->add_option("--train-size", d.train_size, "synthetic: training windows")->check(CLI::Range(1, 10000000));
  c->add_option("--test-size", d.test_size, "synthetic: test windows")->check(CLI::Range(1, 10000000));
  c->add_option("--data-seed", d.data_seed, "synthetic: generator seed");
  c->add_option("--classes", d.classes, "directory data: number of classes (default: max label + 1)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"erlmr: balanced multimodal learning with Euler representations (ERL-MR)"};
  app.require_subcommand(1);

  StepOptions so;
  auto* step = app.add_subcommand("step", "one fused-mode ERL-MR step on a fixture; writes gradients and values");
  step->add_option("--fixture", so.fixture, "fixture .npz (param/*, input/*)")->required()->check(CLI::ExistingFile);
  step->add_option("--fusion", so.fusion, "concat | sum | film | gated");
  step->add_option("--dtype", so.dtype, "f64 | f32");
  step->add_option("--mode", so.mode, "fused | faithful");
  step->add_option("--out", so.out, "output .npz")->required();

  TrainOptions to;
  auto* tr = app.add_subcommand("train", "train one or more methods (comma-separated) and print a comparison table");
  add_data_options(tr, to.data);
  std::string all_methods;
  for (const auto& n : balance::method_names()) all_methods += (all_methods.empty() ? "" : ", ") + n;
  tr->add_option("--method", to.methods, "one or more (comma-separated) of: " + all_methods);
  tr->add_option("--fusion", to.fusion, "concat | sum | film | gated");
  tr->add_option("--arch", to.arch, "auto | sensor | general (auto: sensor model for two (1, 3, T) inputs, else CNN/MLP by input rank)");
  tr->add_option("--width", to.width, "general models: pooled feature width d (even)")->check(CLI::Range(2, 65536));
  tr->add_option("--mode", to.mode, "ERL-MR step: fused | faithful");
  tr->add_option("--epochs", to.epochs)->check(CLI::Range(1, 100000));
  tr->add_option("--batch", to.batch)->check(CLI::Range(2, 100000));
  tr->add_option("--lr", to.lr);
  tr->add_option("--momentum", to.momentum);
  tr->add_option("--weight-decay", to.weight_decay);
  tr->add_flag("--nesterov", to.nesterov);
  tr->add_option("--optimizer", to.optimizer, "sgd | adam | adamw");
  tr->add_option("--schedule", to.schedule, "step | cosine | constant");
  tr->add_option("--milestones", to.milestones, "epochs after which the step schedule multiplies lr by --factor")->delimiter(',');
  tr->add_option("--factor", to.factor);
  tr->add_option("--dropout", to.dropout)->check(CLI::Range(0.0, 0.99));
  tr->add_option("--seed", to.seed);
  tr->add_option("--threads", to.threads, "0 = all cores");
  tr->add_option("--dtype", to.dtype, "f32 | f64");
  tr->add_option("--device", to.device, "cpu | cuda (the model, batches and optimiser on the GPU; needs a -DERLMR_CUDA=ON build)");
  tr->add_option("--probe-epochs", to.probe_epochs);
  tr->add_option("--out", to.out, "output directory");
  tr->add_option("--resume", to.resume, "checkpoint to resume from ('auto': OUT/checkpoint.npz if present)");
  tr->add_flag("--no-progress", to.no_progress, "plain per-epoch lines even on a terminal");
  auto& mo = to.options;
  tr->add_option("--ogm-alpha", mo.ogm_alpha, "OGM-GE: modulation strength α");
  tr->add_option("--ogm-start", mo.ogm_start, "OGM-GE: first epoch (0-based) with modulation");
  tr->add_option("--ogm-end", mo.ogm_end, "OGM-GE: last epoch (0-based) with modulation");
  tr->add_option("--mmcosine-scale", mo.mmcosine_scale, "MMCosine: logit scale s");
  tr->add_option("--pmr-alpha", mo.pmr_alpha, "PMR: weight α of the prototype loss");
  tr->add_option("--pmr-momentum", mo.pmr_momentum, "PMR: EMA momentum of the prototypes across epochs");
  tr->add_option("--agm-alpha", mo.agm_alpha, "AGM: modulation strength α");
  tr->add_option("--agm-average", mo.agm_average, "AGM: running-average factor of r̄_u");
  tr->add_option("--mmpareto-boost", mo.mmpareto_boost, "MMPareto: gradient magnitude boost");
  tr->add_option("--mla-a0", mo.mla_a0, "MLA: base of the projector's regulariser a = a0^(1 + i/N)");
  tr->add_option("--gb-super-epoch", mo.gb_super_epoch, "G-Blending: epochs between weight estimates");
  tr->add_option("--gb-holdout", mo.gb_holdout, "G-Blending: held-out fraction of the training split");

  EvalOptions eo;
  auto* ev = app.add_subcommand("eval", "evaluate a checkpoint on the test split");
  add_data_options(ev, eo.data);
  ev->add_option("--checkpoint", eo.checkpoint)->required()->check(CLI::ExistingFile);
  ev->add_option("--fusion", eo.fusion, "for model-only files (checkpoint.npz records it)");
  ev->add_option("--method", eo.method, "for model-only files (checkpoint.npz records it; it changes test-time fusion for mla, mmcosine)");
  ev->add_option("--arch", eo.arch, "for model-only files (checkpoint.npz records it)");
  ev->add_option("--width", eo.width, "for model-only files (checkpoint.npz records it)");
  ev->add_option("--dtype", eo.dtype);
  ev->add_option("--device", eo.device, "cpu | cuda");
  ev->add_option("--threads", eo.threads);
  ev->add_option("--predictions", eo.predictions, "write per-sample test predictions (fused, head a, head g) to this CSV");

  tools::CompareOptions co;
  std::string co_methods = "erlmr,joint", co_data = "synthetic";
  std::vector<std::string> co_pass;
  auto* cmp = app.add_subcommand("compare", "run methods x seeds (each a separate `erlmr train`), print and write a mean ± sd table");
  cmp->add_option("--methods", co_methods, "comma-separated; unimodal-a and unimodal-g are always added as references");
  cmp->add_option("--seeds", co.seeds, "number of seeds (seed-base, seed-base+1, ...)")->check(CLI::Range(1, 1000));
  cmp->add_option("--seed-base", co.seed_base);
  cmp->add_option("--jobs", co.jobs, "runs at once")->check(CLI::Range(1, 256));
  cmp->add_option("--threads", co.threads, "total threads, shared by the parallel runs (0 = all cores)");
  cmp->add_option("--out", co.out);
  cmp->add_option("--data", co_data, "'synthetic' or a directory");
  cmp->allow_extras();  // everything else goes to each `erlmr train` (e.g. --epochs 12 --lr 0.01)

  auto* dat = app.add_subcommand("data", "build datasets from sources on this machine");
  dat->require_subcommand(1);
  auto* build = dat->add_subcommand("build", "build a dataset into a directory of .npy files (cached: rebuilt only when options change)");
  std::string dataset_name;
  build->add_option("dataset", dataset_name, "av-fashion: Fashion-MNIST images + spoken class names (espeak-ng)")->required();
#if defined(ERLMR_HAVE_ESPEAK)
  tools::AvFashionOptions ao;
  ao.out = "data/av-fashion";
  build->add_option("--out", ao.out, "output directory");
  build->add_option("--train", ao.train, "training samples (the first N of Fashion-MNIST's training set)")->check(CLI::Range(1, 60000));
  build->add_option("--test", ao.test, "test samples (the first N of its test set)")->check(CLI::Range(1, 10000));
  build->add_option("--seed", ao.seed, "seed of every random choice (voice, offset, noise)");
  build->add_option("--source", ao.source, "directory with Fashion-MNIST's IDX files");
  build->add_option("--snr-min", ao.snr_min_db, "lowest speech-to-noise ratio, dB");
  build->add_option("--snr-max", ao.snr_max_db, "highest speech-to-noise ratio, dB");
  build->add_option("--image-noise-max", ao.image_noise_max, "largest per-sample image noise sigma (pixels in [0, 1])");
  build->add_flag("--force", ao.force, "rebuild even if the cache matches");
#endif

  CLI11_PARSE(app, argc, argv);
  if (*build) {
    try {
      if (dataset_name != "av-fashion") throw std::invalid_argument("unknown dataset '" + dataset_name + "' (expected av-fashion)");
#if defined(ERLMR_HAVE_ESPEAK)
      tools::build_av_fashion(ao, std::cout);
      return 0;
#else
      throw std::runtime_error("this erlmr was built without espeak-ng (install libespeak-ng-dev and reconfigure: bash tools/setup.sh)");
#endif
    } catch (const std::exception& e) {
      std::fprintf(stderr, "erlmr: error: %s\n", e.what());
      return 1;
    }
  }
  if (*cmp) {
    try {
      co.methods = split_list(co_methods);
      co.train_args = cmp->remaining();
      co.train_args.insert(co.train_args.begin(), {"--data", co_data});
      std::string header = "Comparison on `" + co_data + "`: " + std::to_string(co.seeds) + " seeds from " +
                           std::to_string(co.seed_base) + ", extra train options:";
      for (const auto& a : co.train_args) header += " " + a;
      const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
      return tools::run_compare(self, co, header);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "erlmr: error: %s\n", e.what());
      return 1;
    }
  }
  try {
    auto by_dtype = [](const std::string& dt, auto f32, auto f64) {
      if (dt == "f32") return f32();
      if (dt == "f64") return f64();
      throw std::invalid_argument("unknown dtype '" + dt + "' (expected f32 or f64)");
    };
    if (*step) return by_dtype(so.dtype, [&] { return run_step<float>(so); }, [&] { return run_step<double>(so); });
    if (*tr)
      return by_device(to.device, [&]<class D>(D) {
        return by_dtype(to.dtype, [&] { return run_train<float, D>(to); }, [&] { return run_train<double, D>(to); });
      });
    if (*ev)
      return by_device(eo.device, [&]<class D>(D) {
        return by_dtype(eo.dtype, [&] { return run_eval<float, D>(eo); }, [&] { return run_eval<double, D>(eo); });
      });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "erlmr: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
