// tools/compare.hpp — `erlmr compare`: every method × every seed, one table.
//
// Each run is a separate `erlmr train` process (this executable, re-executed), so a run
// that crashes or throws is reported as failed with its error while the others go on,
// and --jobs runs several at once without changing any result: runs share nothing, and
// each is bitwise determined by its seed whatever its thread count.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <algorithm>

namespace erlmr::tools {

struct CompareOptions {
  std::vector<std::string> methods{"erlmr", "joint"};
  int seeds = 3;
  std::uint64_t seed_base = 42;
  int jobs = 1;
  int threads = 0;                      // total threads; each of the --jobs runs gets threads/jobs
  std::string out = "runs/compare";
  std::vector<std::string> train_args;  // passed through to every `erlmr train`
};

struct RunResult {
  std::string method;
  std::uint64_t seed = 0;
  bool ok = false;
  std::string error, dir;
  double acc = 0, f1 = 0, acc_a = 0, acc_g = 0, probe_a = 0, probe_g = 0, sec_epoch = 0;
};

inline std::string last_lines(const std::filesystem::path& log, int n = 1) {
  std::ifstream f(log);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(f, l))
    if (!l.empty()) lines.push_back(l);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)  // the error message, wherever buffering put it
    if (it->find("error:") != std::string::npos) return *it;
  std::string out;
  for (int i = std::max(0, static_cast<int>(lines.size()) - n); i < static_cast<int>(lines.size()); ++i)
    out += (out.empty() ? "" : " / ") + lines[static_cast<std::size_t>(i)];
  return out.empty() ? "no output" : out;
}

inline RunResult read_result(RunResult r, int status) {
  namespace fs = std::filesystem;
  const fs::path summary = fs::path(r.dir) / "summary.json";
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || !fs::exists(summary)) {
    r.ok = false;
    const std::string why = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                                : "exit status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    r.error = why + ": " + last_lines(fs::path(r.dir) / "run.log");
    return r;
  }
  try {
    std::ifstream f(summary);
    const auto j = nlohmann::json::parse(f);
    r.acc = j.at("final").at("test_acc");
    r.f1 = j.at("final").at("test_macro_f1");
    r.acc_a = j.at("final").at("test_acc_a");
    r.acc_g = j.at("final").at("test_acc_g");
    r.probe_a = j.at("probe").at("acc_a");
    r.probe_g = j.at("probe").at("acc_g");
    r.sec_epoch = j.at("seconds_per_epoch");
    r.ok = true;
  } catch (const std::exception& e) {
    r.ok = false;
    r.error = summary.string() + ": " + e.what();
  }
  return r;
}

// Runs all jobs with at most `jobs` processes at once; returns results in job order.
inline std::vector<RunResult> run_all(const std::string& self, std::vector<RunResult> todo, const CompareOptions& o) {
  namespace fs = std::filesystem;
  const int per_run_threads = std::max(1, (o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency())) /
                                              std::max(1, o.jobs));
  std::map<pid_t, std::size_t> running;
  std::size_t next = 0, done = 0;
  auto launch = [&](std::size_t i) {
    auto& r = todo[i];
    fs::create_directories(r.dir);
    std::vector<std::string> args{self, "train", "--method", r.method, "--seed", std::to_string(r.seed), "--out", r.dir,
                                  "--threads", std::to_string(per_run_threads), "--no-progress"};
    args.insert(args.end(), o.train_args.begin(), o.train_args.end());
    const std::string log = (fs::path(r.dir) / "run.log").string();
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("compare: fork failed");
    if (pid == 0) {
      FILE* lf = std::freopen(log.c_str(), "w", stdout);
      if (!lf) _exit(127);
      dup2(fileno(stdout), fileno(stderr));
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(self.c_str(), argv.data());
      std::perror("execv");
      _exit(127);
    }
    running[pid] = i;
  };
  while (done < todo.size()) {
    while (next < todo.size() && static_cast<int>(running.size()) < std::max(1, o.jobs)) launch(next++);
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) throw std::runtime_error("compare: waitpid failed");
    auto it = running.find(pid);
    if (it == running.end()) continue;
    auto& r = todo[it->second];
    r = read_result(r, status);
    running.erase(it);
    ++done;
    std::printf("[%zu/%zu] %-10s seed %llu  %s\n", done, todo.size(), r.method.c_str(), (unsigned long long)r.seed,
                r.ok ? ("acc " + std::to_string(r.acc).substr(0, 6) + "  probe g " + std::to_string(r.probe_g).substr(0, 6)).c_str()
                     : ("FAILED: " + r.error).c_str());
    std::fflush(stdout);
  }
  return todo;
}

struct Stat {
  double mean = 0, sd = 0;
  int n = 0;
};
inline Stat stat_of(const std::vector<double>& v) {
  Stat s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  if (v.size() > 1) {
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(s.sd / double(v.size() - 1));  // sample standard deviation
  }
  return s;
}
inline std::string pm(const Stat& s, int digits = 4, double scale = 1) {
  if (s.n == 0) return "—";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f ± %.*f", digits, s.mean * scale, digits, s.sd * scale);
  return b;
}

// Aggregated Markdown table + per-run CSV.
inline int report(const std::vector<RunResult>& rs, const CompareOptions& o, const std::string& header) {
  namespace fs = std::filesystem;
  std::vector<std::string> order;
  for (const auto& r : rs)
    if (std::find(order.begin(), order.end(), r.method) == order.end()) order.push_back(r.method);
  auto col = [&](const std::string& m, double RunResult::*f) {
    std::vector<double> v;
    for (const auto& r : rs)
      if (r.method == m && r.ok) v.push_back(r.*f);
    return stat_of(v);
  };
  std::ostringstream md;
  md << header << "\n\n";
  md << "| method | runs ok | fused acc | macro-F1 | head a | head g | probe a | probe g | s/epoch |\n";
  md << "|---|---|---|---|---|---|---|---|---|\n";
  int failed = 0;
  for (const auto& m : order) {
    int ok = 0, n = 0;
    for (const auto& r : rs)
      if (r.method == m) {
        ++n;
        ok += r.ok;
      }
    failed += n - ok;
    md << "| " << m << " | " << ok << "/" << n << " | " << pm(col(m, &RunResult::acc)) << " | " << pm(col(m, &RunResult::f1)) << " | "
       << pm(col(m, &RunResult::acc_a)) << " | " << pm(col(m, &RunResult::acc_g)) << " | " << pm(col(m, &RunResult::probe_a)) << " | "
       << pm(col(m, &RunResult::probe_g)) << " | " << pm(col(m, &RunResult::sec_epoch), 1) << " |\n";
  }
  // Stand-alone references: the unimodal runs' own heads and probes.
  md << "\nStand-alone reference (each encoder trained alone): ";
  md << "a: head " << pm(col("unimodal-a", &RunResult::acc_a)) << ", probe " << pm(col("unimodal-a", &RunResult::probe_a)) << "; ";
  md << "g: head " << pm(col("unimodal-g", &RunResult::acc_g)) << ", probe " << pm(col("unimodal-g", &RunResult::probe_g)) << ".\n";
  md << "\nMean ± sample standard deviation over seeds. *head a/g*: unimodal heads; *probe a/g*: linear probe on each frozen "
        "encoder; *s/epoch*: wall time per training epoch (runs in parallel share the machine).\n";
  if (failed) {
    md << "\nFailed runs:\n\n";
    for (const auto& r : rs)
      if (!r.ok) md << "- " << r.method << " seed " << r.seed << ": " << r.error << "\n";
  }
  std::ostringstream csv;
  csv << "method,seed,status,test_acc,macro_f1,head_a,head_g,probe_a,probe_g,seconds_per_epoch,error\n";
  for (const auto& r : rs) {
    std::string err = r.error;
    std::replace(err.begin(), err.end(), '"', '\'');
    csv << r.method << ',' << r.seed << ',' << (r.ok ? "ok" : "failed") << ',' << r.acc << ',' << r.f1 << ',' << r.acc_a << ','
        << r.acc_g << ',' << r.probe_a << ',' << r.probe_g << ',' << r.sec_epoch << ",\"" << err << "\"\n";
  }
  fs::create_directories(o.out);
  std::ofstream(fs::path(o.out) / "compare.md") << md.str();
  std::ofstream(fs::path(o.out) / "compare.csv") << csv.str();
  std::printf("\n%s\nWritten: %s/compare.md, %s/compare.csv\n", md.str().c_str(), o.out.c_str(), o.out.c_str());
  return 0;
}

inline int run_compare(const std::string& self, CompareOptions o, const std::string& header) {
  // The stand-alone references are always part of a comparison.
  for (const char* ref : {"unimodal-a", "unimodal-g"})
    if (std::find(o.methods.begin(), o.methods.end(), ref) == o.methods.end()) o.methods.push_back(ref);
  std::vector<RunResult> todo;
  for (const auto& m : o.methods)
    for (int s = 0; s < o.seeds; ++s) {
      RunResult r;
      r.method = m;
      r.seed = o.seed_base + static_cast<std::uint64_t>(s);
      r.dir = (std::filesystem::path(o.out) / m / ("seed" + std::to_string(r.seed))).string();
      todo.push_back(r);
    }
  return report(run_all(self, todo, o), o, header);
}

}  // namespace erlmr::tools
