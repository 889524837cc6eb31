// Shared helpers for the file-reader tests (tests/data/): a scratch directory, raw byte
// buffers, the "must throw FormatError naming the file and the problem" check, and a sine tone.
#pragma once
#include <doctest/doctest.h>

#include <erlmr/data/npy.hpp>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <numbers>
#include <random>
#include <string>
#include <vector>

namespace erlmr::test {

/// A fresh directory under the system temp dir (named erlmr_test_<tag>_...), removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = std::filesystem::temp_directory_path() /
           ("erlmr_test_" + tag + "_" + std::to_string(stamp) + "_" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

using Bytes = std::vector<std::byte>;

/// `parse(bytes, name)` must throw FormatError whose message starts "<name>: byte " and whose
/// problem contains `problem`.
template <class Parse> void expect_format_error(Parse&& parse, const Bytes& b, const std::string& name, const std::string& problem) {
  INFO(name);
  bool threw = false;
  try {
    parse(b, name);
  } catch (const data::FormatError& e) {
    threw = true;
    const std::string what = e.what();
    INFO(what);
    CHECK(what.rfind(name + ": byte ", 0) == 0);
    CHECK(e.problem().find(problem) != std::string::npos);
  }
  CHECK(threw);
}

/// n samples of amp·sin(2π f i / rate + phase).
inline std::vector<float> sine_tone(double f, int rate, int n, double amp = 1.0, double phase = 0.0) {
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    x[static_cast<std::size_t>(i)] = static_cast<float>(amp * std::sin(2 * std::numbers::pi * f * i / rate + phase));
  return x;
}

}  // namespace erlmr::test
