// tools/av_fashion.hpp — `erlmr data build av-fashion`: a two-modality (image + spoken word)
// dataset built locally from Fashion-MNIST and espeak-ng. See docs/av-fashion.md.
//
// Each sample i of a split is
//   modality 1  the Fashion-MNIST image (first `train` training / first `test` t10k images) as
//               float32 (1, 28, 28) in [0, 1], plus Gaussian noise of a per-sample σ drawn
//               uniformly in [0, image_noise_max], clipped back to [0, 1];
//   modality 2  the log-mel spectrogram (1, 64, 101) (erlmr::data::log_mel, default MelConfig)
//               of a 1.0 s, 16 kHz clip of the class name spoken by espeak-ng (one of 64 voice
//               configurations, picked at random), at a random position and level, mixed with
//               pink noise at a per-sample SNR drawn uniformly in [snr_min_db, snr_max_db];
//   label       the Fashion-MNIST label (int64).
//
// Determinism. Every random draw of sample i of split s (0 = train, 1 = test) comes from
// erlmr::Generator(seed) at counters starting at ((s << 32) + i) << 16, so a sample does not
// depend on the others, on the order they are computed in or on the thread count. espeak-ng is
// deterministic for a given sequence of calls from a fresh library state, but keeps state between
// utterances (pitch-flutter phase, rand(), …) and cannot be re-initialised in one process
// (espeak_Terminate deadlocks in 1.51), so the speech bank is synthesised in a forked child
// process that starts from a fresh state every time, always in the same order.
//
// Files (written atomically, manifest.json last): x1_{split}.npy, x2_{split}.npy, y_{split}.npy,
// snr_db_{split}.npy, image_sigma_{split}.npy, voice_{split}.npy, speech_span_{split}.npy,
// modalities.txt, classes.txt, manifest.json.
#pragma once

#include <erlmr/core/rng.hpp>
#include <erlmr/core/thread_pool.hpp>
#include <erlmr/data/audio.hpp>
#include <erlmr/data/idx.hpp>
#include <erlmr/data/npy.hpp>
#include <erlmr/data/resample.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(ERLMR_HAVE_ESPEAK) && ERLMR_HAVE_ESPEAK
#include <espeak-ng/speak_lib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#endif

#ifndef ERLMR_VERSION
#define ERLMR_VERSION "unknown"
#endif

namespace erlmr::tools {

struct AvFashionOptions {
  std::string out;                 // output directory (created)
  std::int64_t train = 6000;       // first `train` images of train-images-idx3-ubyte.gz
  std::int64_t test = 2000;        // first `test` images of t10k-images-idx3-ubyte.gz
  std::uint64_t seed = 7;          // erlmr::Generator seed for every per-sample draw
  std::string source = "/usr/share/datasets/fashion-mnist";
  double snr_min_db = -15, snr_max_db = 15;  // speech-to-noise ratio range (uniform), dB
  double image_noise_max = 1.0;    // image noise σ ~ U[0, image_noise_max] (pixels in [0, 1])
  bool force = false;              // rebuild even if manifest.json matches
};

/// Fashion-MNIST class names in label order; the words spoken.
inline const std::array<const char*, 10> kAvFashionClasses = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                               "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};

/// One espeak-ng voice configuration of the speech bank.
struct AvVoice {
  std::string name;  // "<language voice>+<variant>", as given to espeak_SetVoiceByName
  int rate = 175;    // words per minute (espeakRATE)
  int pitch = 50;    // base pitch 0..100 (espeakPITCH)
  int range = 50;    // pitch range 0..100 (espeakRANGE)
};

namespace avf {

inline constexpr const char* kBuilder = "av-fashion/1";  // bump when the output for given options changes
inline constexpr int kClipSamples = 16000;                // 1.0 s at 16 kHz
inline constexpr int kSampleRate = 16000;
inline constexpr double kSpeechRms = 0.1;                 // reference RMS of the word (before level)
inline constexpr double kLevelDb = 6.0;                   // level ~ U[-6, +6] dB around kSpeechRms
inline constexpr double kTrimDb = -40.0;                  // silence: 10 ms frames below peak frame -40 dB
inline constexpr int kPinkWarmup = 4096;                  // pink filter settling samples, discarded
inline constexpr std::uint64_t kBankSeed = 0xF45410A5;    // fixed: the bank does not depend on --seed
inline constexpr std::uint64_t kSampleStride = std::uint64_t{1} << 16;  // counters per sample
// Counter layout inside a sample's block (uniform() and normal() use separate Philox lanes):
//   uniform(base + 0..4): voice, snr, position, level, image σ
//   normal(base + k), k < 784: image noise; normal(base + 1024 + k), k < 4096 + 16000: white noise
inline constexpr std::uint64_t kAudioNoiseOffset = 1024;

/// The 64 voice configurations: 8 English accents × 16 variants (each accent paired with 8
/// variants, each variant used 4 times), rate 110..260 wpm in steps of 10, pitch 20..80 in steps
/// of 5, range 30..80 in steps of 10, the last three drawn from Generator(kBankSeed).
inline std::vector<AvVoice> voices() {
  static const char* accents[8] = {"en",     "en-us",          "en-gb-scotland", "en-gb-x-rp",
                                   "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc"};
  static const char* variants[16] = {"m1", "m2", "m3", "m4", "m5", "m6",    "m7",    "f1",
                                     "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2", "klatt3"};
  const Generator g(kBankSeed);
  std::vector<AvVoice> v;
  for (int j = 0; j < 64; ++j) {
    const int a = j % 8, q = j / 8;
    AvVoice x;
    x.name = std::string(accents[a]) + "+" + variants[(q + 2 * a) % 16];
    x.rate = 110 + 10 * static_cast<int>(g.uniform(4 * static_cast<std::uint64_t>(j)) * 16);
    x.pitch = 20 + 5 * static_cast<int>(g.uniform(4 * static_cast<std::uint64_t>(j) + 1) * 13);
    x.range = 30 + 10 * static_cast<int>(g.uniform(4 * static_cast<std::uint64_t>(j) + 2) * 6);
    v.push_back(x);
  }
  return v;
}

inline nlohmann::json options_json(const AvFashionOptions& o) {
  return {{"train", o.train},          {"test", o.test},           {"seed", o.seed},
          {"source", o.source},        {"snr_min_db", o.snr_min_db}, {"snr_max_db", o.snr_max_db},
          {"image_noise_max", o.image_noise_max}};
}

inline void validate(const AvFashionOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("av-fashion: " + what); };
  if (o.out.empty()) bad("out (the output directory) must be given");
  if (o.train < 1) bad("train must be at least 1, got " + std::to_string(o.train));
  if (o.test < 1) bad("test must be at least 1, got " + std::to_string(o.test));
  if (!std::isfinite(o.snr_min_db) || !std::isfinite(o.snr_max_db) || o.snr_min_db > o.snr_max_db)
    bad("snr_min_db and snr_max_db must be finite with snr_min_db <= snr_max_db, got [" +
        std::to_string(o.snr_min_db) + ", " + std::to_string(o.snr_max_db) + "]");
  if (!std::isfinite(o.image_noise_max) || o.image_noise_max < 0)
    bad("image_noise_max must be finite and >= 0, got " + std::to_string(o.image_noise_max));
}

/// The files of a build, manifest.json last.
inline std::vector<std::string> output_files() {
  std::vector<std::string> f;
  for (const char* s : {"train", "test"})
    for (const char* a : {"x1_", "x2_", "y_", "snr_db_", "image_sigma_", "voice_", "speech_span_"})
      f.push_back(std::string(a) + s + ".npy");
  f.push_back("modalities.txt");
  f.push_back("classes.txt");
  f.push_back("manifest.json");
  return f;
}

inline void write_text(const std::filesystem::path& p, const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  data::detail::write_file_atomic(p.string(), b);
}

/// A processed bank word: unit RMS, 16 kHz, silence trimmed.
struct Word {
  std::vector<float> wave;
  double raw_ms = 0;  // length before trimming (at 22050 Hz), ms
};

/// 22050 Hz int16 → 16 kHz float, leading/trailing silence trimmed (10 ms frames more than 40 dB
/// below the loudest frame, keeping one frame of margin each side), scaled to unit RMS.
inline Word process_word(const std::vector<std::int16_t>& pcm, int src_rate, const std::string& what) {
  std::vector<float> x(pcm.size());
  for (std::size_t i = 0; i < pcm.size(); ++i) x[i] = static_cast<float>(pcm[i]) / 32768.0f;
  Word w;
  w.raw_ms = 1000.0 * static_cast<double>(pcm.size()) / src_rate;
  std::vector<float> y = data::resample(x, src_rate, kSampleRate);
  const std::size_t hop = kSampleRate / 100, frames = (y.size() + hop - 1) / hop;
  std::vector<double> e(frames, 0.0);
  double peak = 0;
  for (std::size_t f = 0; f < frames; ++f) {
    const std::size_t b = f * hop, end = std::min(y.size(), b + hop);
    for (std::size_t i = b; i < end; ++i) e[f] += static_cast<double>(y[i]) * y[i];
    e[f] /= static_cast<double>(end - b);
    peak = std::max(peak, e[f]);
  }
  if (!(peak > 1e-12)) throw std::runtime_error("av-fashion: espeak-ng produced silence for " + what);
  const double thr = peak * std::pow(10.0, kTrimDb / 10.0);  // energies: dB/10
  std::size_t first = 0, last = frames - 1;
  while (e[first] < thr) ++first;
  while (e[last] < thr) --last;
  const std::size_t b = (first > 0 ? first - 1 : 0) * hop, end = std::min(y.size(), (last + 2) * hop);
  w.wave.assign(y.begin() + static_cast<std::ptrdiff_t>(b), y.begin() + static_cast<std::ptrdiff_t>(end));
  double ss = 0;
  for (float v : w.wave) ss += static_cast<double>(v) * v;
  const double g = 1.0 / std::sqrt(ss / static_cast<double>(w.wave.size()));
  for (float& v : w.wave) v = static_cast<float>(v * g);
  return w;
}

#if defined(ERLMR_HAVE_ESPEAK) && ERLMR_HAVE_ESPEAK

// ---- speech synthesis in a child process -------------------------------------------------
// Protocol child → parent over a pipe: records [u32 tag][u32 bytes][payload]:
//   'H' header: i32 sample rate, then the espeak-ng version string;
//   'S' one utterance: int16 samples (voices × words records, voice-major);
//   'E' an error message (the child then exits with status 1).

inline bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::write(fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

inline bool send_record(int fd, std::uint32_t tag, const void* p, std::size_t n) {
  const std::uint32_t h[2] = {tag, static_cast<std::uint32_t>(n)};
  return write_all(fd, h, sizeof h) && (n == 0 || write_all(fd, p, n));
}

inline std::vector<std::int16_t>* g_synth_buffer = nullptr;

inline int synth_callback(short* wav, int n, espeak_EVENT*) {
  if (wav && n > 0 && g_synth_buffer) g_synth_buffer->insert(g_synth_buffer->end(), wav, wav + n);
  return 0;  // continue
}

[[noreturn]] inline void child_synthesize(int fd, const std::vector<AvVoice>& voices,
                                          const std::vector<std::string>& words) {
  auto fail = [&](const std::string& msg) {
    send_record(fd, 'E', msg.data(), msg.size());
    ::_exit(1);
  };
  std::srand(1);  // klatt / noise sources of espeak-ng use rand(): same sequence every build
  const int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0)
    fail("espeak_Initialize failed (returned " + std::to_string(rate) +
         "): is espeak-ng-data installed (package espeak-ng-data)?");
  const char* data_path = nullptr;
  const char* version = espeak_Info(&data_path);
  std::string header(sizeof(std::int32_t), '\0');
  const std::int32_t r32 = rate;
  std::memcpy(header.data(), &r32, sizeof r32);
  header += version ? version : "unknown";
  if (!send_record(fd, 'H', header.data(), header.size())) ::_exit(2);
  std::vector<std::int16_t> buf;
  g_synth_buffer = &buf;
  espeak_SetSynthCallback(synth_callback);
  for (const AvVoice& v : voices) {
    if (espeak_SetVoiceByName(v.name.c_str()) != EE_OK)
      fail("voice '" + v.name + "': espeak_SetVoiceByName failed (is the voice or variant installed? see " +
           "espeak-ng --voices=en and " + (data_path ? data_path : "espeak-ng-data") + "/voices/!v)");
    if (espeak_SetParameter(espeakRATE, v.rate, 0) != EE_OK || espeak_SetParameter(espeakPITCH, v.pitch, 0) != EE_OK ||
        espeak_SetParameter(espeakRANGE, v.range, 0) != EE_OK)
      fail("voice '" + v.name + "': espeak_SetParameter (rate/pitch/range) failed");
    for (const std::string& w : words) {
      buf.clear();
      const espeak_ERROR e = espeak_Synth(w.c_str(), w.size() + 1, 0, POS_CHARACTER, 0, espeakCHARS_AUTO, nullptr, nullptr);
      if (e != EE_OK) fail("voice '" + v.name + "', word '" + w + "': espeak_Synth failed (code " + std::to_string(e) + ")");
      if (espeak_Synchronize() != EE_OK) fail("voice '" + v.name + "', word '" + w + "': espeak_Synchronize failed");
      if (buf.empty()) fail("voice '" + v.name + "', word '" + w + "': espeak-ng produced no samples");
      if (!send_record(fd, 'S', buf.data(), buf.size() * sizeof(std::int16_t))) ::_exit(2);
    }
  }
  ::_exit(0);
}

struct RawBank {
  int sample_rate = 0;
  std::string version;
  std::vector<std::vector<std::int16_t>> pcm;  // [voice * words + word]
};

/// Synthesises every (voice, word) pair, voice-major, in a fresh child process.
inline RawBank synthesize(const std::vector<AvVoice>& voices, const std::vector<std::string>& words) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error(std::string("av-fashion: pipe() failed: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("av-fashion: fork() failed: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::close(fds[0]);
    child_synthesize(fds[1], voices, words);
  }
  ::close(fds[1]);
  std::vector<char> bytes;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t k = ::read(fds[0], chunk, sizeof chunk);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    bytes.insert(bytes.end(), chunk, chunk + k);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  RawBank bank;
  std::string error;
  std::size_t p = 0;
  while (p + 8 <= bytes.size()) {
    std::uint32_t h[2];
    std::memcpy(h, bytes.data() + p, sizeof h);
    p += 8;
    if (h[1] > bytes.size() - p) break;  // truncated record: the child died while writing
    const char* d = bytes.data() + p;
    p += h[1];
    if (h[0] == 'E') {
      error.assign(d, h[1]);
    } else if (h[0] == 'H' && h[1] >= 4) {
      std::int32_t r;
      std::memcpy(&r, d, 4);
      bank.sample_rate = r;
      bank.version.assign(d + 4, h[1] - 4);
    } else if (h[0] == 'S') {
      std::vector<std::int16_t> s(h[1] / sizeof(std::int16_t));
      std::memcpy(s.data(), d, s.size() * sizeof(std::int16_t));
      bank.pcm.push_back(std::move(s));
    }
  }
  if (!error.empty()) throw std::runtime_error("av-fashion: espeak-ng: " + error);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                                : "exited with status " + std::to_string(WEXITSTATUS(status));
    throw std::runtime_error("av-fashion: the espeak-ng synthesis process " + how + " after " +
                             std::to_string(bank.pcm.size()) + " of " + std::to_string(voices.size() * words.size()) +
                             " utterances");
  }
  if (bank.sample_rate <= 0 || bank.pcm.size() != voices.size() * words.size())
    throw std::runtime_error("av-fashion: the espeak-ng synthesis process returned " + std::to_string(bank.pcm.size()) +
                             " of " + std::to_string(voices.size() * words.size()) + " utterances");
  return bank;
}

#endif  // ERLMR_HAVE_ESPEAK

/// Pink (1/f) noise of unit RMS over n samples from white Gaussian draws: Paul Kellet's refined
/// 7-term filter (±0.05 dB of 1/f above ~0.0004·fs), run kPinkWarmup samples before the kept part
/// so its slowest pole has settled, then scaled to RMS 1 exactly.
inline std::vector<double> pink_noise(const Generator& g, std::uint64_t base, int n) {
  double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
  std::vector<double> out(static_cast<std::size_t>(n));
  for (int k = 0; k < kPinkWarmup + n; ++k) {
    const double w = g.normal(base + static_cast<std::uint64_t>(k));
    b0 = 0.99886 * b0 + w * 0.0555179;
    b1 = 0.99332 * b1 + w * 0.0750759;
    b2 = 0.96900 * b2 + w * 0.1538520;
    b3 = 0.86650 * b3 + w * 0.3104856;
    b4 = 0.55000 * b4 + w * 0.5329522;
    b5 = -0.7616 * b5 - w * 0.0168980;
    const double pink = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
    b6 = w * 0.115926;
    if (k >= kPinkWarmup) out[static_cast<std::size_t>(k - kPinkWarmup)] = pink;
  }
  double ss = 0;
  for (double v : out) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / n);
  for (double& v : out) v *= s;
  return out;
}

/// One split's arrays.
struct Split {
  std::int64_t n = 0;
  std::vector<float> x1, x2, snr, sigma;
  std::vector<std::int64_t> y, voice, span;
};

/// Builds n samples of split s (0 train, 1 test) from images (n × 784 bytes) and labels.
inline Split make_split(int s, std::int64_t n, const std::vector<std::uint8_t>& images,
                        const std::vector<std::int64_t>& labels, const std::vector<std::vector<Word>>& bank,
                        const AvFashionOptions& o, std::ostream& log) {
  constexpr int kPix = 28 * 28;
  const data::MelConfig mel;  // 16 kHz, 25/10 ms, 64 mels, centred
  const int frames = static_cast<int>(data::num_frames(kClipSamples, mel));
  const int mel_size = mel.n_mels * frames;
  Split r;
  r.n = n;
  r.x1.resize(static_cast<std::size_t>(n * kPix));
  r.x2.resize(static_cast<std::size_t>(n * mel_size));
  r.snr.resize(static_cast<std::size_t>(n));
  r.sigma.resize(static_cast<std::size_t>(n));
  r.y.assign(labels.begin(), labels.begin() + n);
  r.voice.resize(static_cast<std::size_t>(n));
  r.span.resize(static_cast<std::size_t>(2 * n));
  const Generator g(o.seed);
  const auto n_voices = static_cast<std::int64_t>(bank.size());

  auto one = [&](std::int64_t i) {
    const std::uint64_t base = ((static_cast<std::uint64_t>(s) << 32) + static_cast<std::uint64_t>(i)) * kSampleStride;
    const auto iu = static_cast<std::size_t>(i);
    // -- image
    const double sigma = g.uniform(base + 4) * o.image_noise_max;
    r.sigma[iu] = static_cast<float>(sigma);
    for (int k = 0; k < kPix; ++k) {
      const double v = images[iu * kPix + static_cast<std::size_t>(k)] / 255.0 +
                       (sigma > 0 ? sigma * g.normal(base + static_cast<std::uint64_t>(k)) : 0.0);
      r.x1[iu * kPix + static_cast<std::size_t>(k)] = static_cast<float>(std::clamp(v, 0.0, 1.0));
    }
    // -- audio
    const auto label = static_cast<std::size_t>(labels[iu]);
    const auto v = std::min<std::int64_t>(n_voices - 1, static_cast<std::int64_t>(g.uniform(base + 0) * n_voices));
    const Word& word = bank[static_cast<std::size_t>(v)][label];
    const double snr_db = o.snr_min_db + g.uniform(base + 1) * (o.snr_max_db - o.snr_min_db);
    const auto len = static_cast<std::int64_t>(word.wave.size());
    std::int64_t start, src0, take;  // clip position, first word sample, samples placed
    if (len >= kClipSamples) {       // longer than the clip: keep the middle second
      start = 0;
      src0 = (len - kClipSamples) / 2;
      take = kClipSamples;
    } else {                         // uniform position in [0, kClipSamples - len]
      start = std::min<std::int64_t>(kClipSamples - len,
                                     static_cast<std::int64_t>(g.uniform(base + 2) * static_cast<double>(kClipSamples - len + 1)));
      src0 = 0;
      take = len;
    }
    const double level = kSpeechRms * std::pow(10.0, (2.0 * g.uniform(base + 3) - 1.0) * kLevelDb / 20.0);
    std::vector<double> speech(kClipSamples, 0.0);
    double ss = 0;
    for (std::int64_t k = 0; k < take; ++k) {
      const double x = level * word.wave[static_cast<std::size_t>(src0 + k)];
      speech[static_cast<std::size_t>(start + k)] = x;
      ss += x * x;
    }
    const double speech_rms = std::sqrt(ss / static_cast<double>(take));  // over the active part
    const double noise_rms = speech_rms * std::pow(10.0, -snr_db / 20.0);
    const std::vector<double> noise = pink_noise(g, base + kAudioNoiseOffset, kClipSamples);
    std::vector<float> mix(kClipSamples);
    for (int k = 0; k < kClipSamples; ++k)
      mix[static_cast<std::size_t>(k)] = static_cast<float>(speech[static_cast<std::size_t>(k)] + noise_rms * noise[static_cast<std::size_t>(k)]);
    const Eigen::MatrixXd L = data::log_mel(mix, mel);  // n_mels × frames
    float* dst = r.x2.data() + iu * static_cast<std::size_t>(mel_size);
    for (int m = 0; m < mel.n_mels; ++m)
      for (int t = 0; t < frames; ++t) dst[m * frames + t] = static_cast<float>(L(m, t));
    r.snr[iu] = static_cast<float>(snr_db);
    r.voice[iu] = v;
    r.span[2 * iu] = start;
    r.span[2 * iu + 1] = start + take;
  };

  // Blocks of 500 samples for progress lines; inside a block, chunks of 8 samples on the pool.
  // Every sample writes only its own slots, so the result does not depend on the threads.
  const auto t0 = std::chrono::steady_clock::now();
  constexpr std::int64_t kBlock = 500, kGrain = 8;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t e = std::min(n, b + kBlock);
    ThreadPool::instance().run((e - b + kGrain - 1) / kGrain, [&](std::int64_t c) {
      for (std::int64_t i = b + c * kGrain; i < std::min(e, b + (c + 1) * kGrain); ++i) one(i);
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log << "av-fashion: " << (s == 0 ? "train" : "test") << " " << e << "/" << n << " samples (" << std::fixed
        << std::setprecision(1) << sec << " s)" << std::defaultfloat << std::endl;
  }
  return r;
}

inline void write_split(const std::filesystem::path& dir, const std::string& name, const Split& r, int frames) {
  using data::NpyArray;
  using data::write_npy;
  write_npy((dir / ("x1_" + name + ".npy")).string(), NpyArray::make<float>({r.n, 1, 28, 28}, r.x1));
  write_npy((dir / ("x2_" + name + ".npy")).string(), NpyArray::make<float>({r.n, 1, 64, frames}, r.x2));
  write_npy((dir / ("y_" + name + ".npy")).string(), NpyArray::make<std::int64_t>({r.n}, r.y));
  write_npy((dir / ("snr_db_" + name + ".npy")).string(), NpyArray::make<float>({r.n}, r.snr));
  write_npy((dir / ("image_sigma_" + name + ".npy")).string(), NpyArray::make<float>({r.n}, r.sigma));
  write_npy((dir / ("voice_" + name + ".npy")).string(), NpyArray::make<std::int64_t>({r.n}, r.voice));
  write_npy((dir / ("speech_span_" + name + ".npy")).string(), NpyArray::make<std::int64_t>({r.n, 2}, r.span));
}

/// Reads the first n images and labels of a Fashion-MNIST split.
inline void read_fashion(const std::string& images_path, const std::string& labels_path, std::int64_t n,
                         std::vector<std::uint8_t>& images, std::vector<std::int64_t>& labels) {
  const data::IdxArray im = data::read_idx(images_path);
  if (im.type != data::IdxType::u8 || im.shape.size() != 3 || im.shape[1] != 28 || im.shape[2] != 28)
    throw std::runtime_error("av-fashion: " + images_path + ": expected uint8 images (N, 28, 28), got " +
                             data::idx_type_name(im.type) + " " + data::detail::shape_str(im.shape));
  if (im.shape[0] < n)
    throw std::runtime_error("av-fashion: " + images_path + " holds " + std::to_string(im.shape[0]) + " images, " +
                             std::to_string(n) + " requested");
  const data::IdxArray lb = data::read_idx(labels_path);
  if (lb.type != data::IdxType::u8 || lb.shape.size() != 1)
    throw std::runtime_error("av-fashion: " + labels_path + ": expected uint8 labels (N,), got " +
                             data::idx_type_name(lb.type) + " " + data::detail::shape_str(lb.shape));
  if (lb.shape[0] < n)
    throw std::runtime_error("av-fashion: " + labels_path + " holds " + std::to_string(lb.shape[0]) + " labels, " +
                             std::to_string(n) + " requested");
  images.resize(static_cast<std::size_t>(n) * 784);
  std::memcpy(images.data(), im.data.data(), images.size());
  labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto l = std::to_integer<std::int64_t>(lb.data[static_cast<std::size_t>(i)]);
    if (l > 9)
      throw std::runtime_error("av-fashion: " + labels_path + ": label " + std::to_string(l) + " at index " +
                               std::to_string(i) + " is outside 0..9");
    labels[static_cast<std::size_t>(i)] = l;
  }
}

}  // namespace avf

/// Builds (or finds cached) av-fashion in o.out; progress lines go to log. Throws
/// std::invalid_argument for bad options, std::runtime_error naming the file / voice for missing
/// or malformed sources and espeak-ng failures (and when erlmr was built without libespeak-ng).
inline void build_av_fashion(const AvFashionOptions& o, std::ostream& log) {
  namespace fs = std::filesystem;
  avf::validate(o);
  const fs::path dir(o.out);
  const fs::path manifest_path = dir / "manifest.json";

  // Cache: manifest.json is written last, so its presence means a complete build; reuse it when
  // it records the same options and builder version and every file is there.
  if (!o.force && fs::exists(manifest_path)) {
    std::string why;
    try {
      std::ifstream f(manifest_path);
      const nlohmann::json m = nlohmann::json::parse(f);
      if (m.value("builder", "") != avf::kBuilder)
        why = "built by " + m.value("builder", std::string("?")) + ", this is " + avf::kBuilder;
      else if (m.at("options") != avf::options_json(o))
        why = "options differ (" + m.at("options").dump() + " there)";
      for (const std::string& file : avf::output_files())
        if (why.empty() && !fs::exists(dir / file)) why = file + " is missing";
    } catch (const std::exception& e) {
      why = std::string("unreadable manifest: ") + e.what();
    }
    if (why.empty()) {
      log << "av-fashion: cached in " << dir.string() << " (manifest.json matches; force to rebuild)" << std::endl;
      return;
    }
    log << "av-fashion: rebuilding " << dir.string() << ": " << why << std::endl;
  }

#if !(defined(ERLMR_HAVE_ESPEAK) && ERLMR_HAVE_ESPEAK)
  throw std::runtime_error(
      "av-fashion: this erlmr was built without libespeak-ng (install espeak-ng and libespeak-ng-dev, "
      "e.g. with tools/setup.sh, and reconfigure with cmake)");
#else
  const std::string src_files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  for (const auto& f : src_files)
    if (!fs::is_regular_file(fs::path(o.source) / f))
      throw std::runtime_error("av-fashion: " + (fs::path(o.source) / f).string() +
                               " not found (install the dataset-fashion-mnist package or pass the directory "
                               "holding the four Fashion-MNIST .gz files as source)");
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  // 1. Fashion-MNIST: the first train / test images and labels (first, so that a short file fails fast).
  const struct {
    const char* name;
    const char* prefix;
    std::int64_t n;
  } splits[2] = {{"train", "train", o.train}, {"test", "t10k", o.test}};
  std::vector<std::uint8_t> images[2];
  std::vector<std::int64_t> labels[2];
  for (int s = 0; s < 2; ++s) {
    const std::string pre = (fs::path(o.source) / splits[s].prefix).string();
    avf::read_fashion(pre + "-images-idx3-ubyte.gz", pre + "-labels-idx1-ubyte.gz", splits[s].n, images[s], labels[s]);
  }
  log << "av-fashion: read " << o.train << " + " << o.test << " Fashion-MNIST images from " << o.source << " ("
      << std::fixed << std::setprecision(1) << seconds() << " s)" << std::defaultfloat << std::endl;
  fs::create_directories(dir);
  std::error_code ec;
  fs::remove(manifest_path, ec);  // from here on a build that stops half way must not look complete

  // 2. Speech bank: every voice says every class name (synthesised once, sequentially).
  const std::vector<AvVoice> voices = avf::voices();
  const std::vector<std::string> words(kAvFashionClasses.begin(), kAvFashionClasses.end());
  log << "av-fashion: synthesising " << voices.size() << " voices x " << words.size() << " words with espeak-ng"
      << std::endl;
  const avf::RawBank raw = avf::synthesize(voices, words);
  std::vector<std::vector<avf::Word>> bank(voices.size(), std::vector<avf::Word>(words.size()));
  ThreadPool::instance().run(static_cast<std::int64_t>(voices.size()), [&](std::int64_t v) {
    const auto vu = static_cast<std::size_t>(v);
    for (std::size_t w = 0; w < words.size(); ++w)
      bank[vu][w] = avf::process_word(raw.pcm[vu * words.size() + w], raw.sample_rate,
                                      "voice '" + voices[vu].name + "', word '" + words[w] + "'");
  });
  double min_ms = 1e30, max_ms = 0, sum_ms = 0;
  int cropped = 0;
  for (const auto& vb : bank)
    for (const auto& w : vb) {
      const double ms = 1000.0 * static_cast<double>(w.wave.size()) / avf::kSampleRate;
      min_ms = std::min(min_ms, ms);
      max_ms = std::max(max_ms, ms);
      sum_ms += ms;
      cropped += w.wave.size() > static_cast<std::size_t>(avf::kClipSamples);
    }
  const double mean_ms = sum_ms / static_cast<double>(voices.size() * words.size());
  log << "av-fashion: bank of " << voices.size() * words.size() << " words (espeak-ng " << raw.version << ", "
      << raw.sample_rate << " Hz -> 16 kHz), trimmed length " << std::lround(min_ms) << ".." << std::lround(max_ms)
      << " ms (mean " << std::lround(mean_ms) << "), " << cropped << " longer than 1 s; " << std::fixed
      << std::setprecision(1) << seconds() << " s" << std::defaultfloat << std::endl;

  // 3. Samples.
  const data::MelConfig mel;
  const int frames = static_cast<int>(data::num_frames(avf::kClipSamples, mel));
  for (int s = 0; s < 2; ++s) {
    const avf::Split r = avf::make_split(s, splits[s].n, images[s], labels[s], bank, o, log);
    avf::write_split(dir, splits[s].name, r, frames);
  }

  // 4. Text files, then the manifest (last: its presence marks a complete build).
  avf::write_text(dir / "modalities.txt", "image\naudio\n");
  std::string cls;
  for (const char* c : kAvFashionClasses) cls += std::string(c) + "\n";
  avf::write_text(dir / "classes.txt", cls);

  nlohmann::json vj = nlohmann::json::array();
  for (const auto& v : voices) vj.push_back({{"name", v.name}, {"rate", v.rate}, {"pitch", v.pitch}, {"range", v.range}});
  nlohmann::json m;
  m["dataset"] = "av-fashion";
  m["builder"] = avf::kBuilder;
  m["erlmr_version"] = ERLMR_VERSION;
  m["espeak_ng_version"] = raw.version;
  m["options"] = avf::options_json(o);
  m["counts"] = {{"train", o.train}, {"test", o.test}};
  m["classes"] = words;
  m["modalities"] = {
      {{"name", "image"}, {"files", "x1_{split}.npy"}, {"dtype", "float32"}, {"shape", {1, 28, 28}}},
      {{"name", "audio"}, {"files", "x2_{split}.npy"}, {"dtype", "float32"}, {"shape", {1, mel.n_mels, frames}}}};
  m["files"] = avf::output_files();
  m["image"] = {{"source", "first N images of train-images-idx3-ubyte.gz / t10k-images-idx3-ubyte.gz"},
                {"scale", "pixel / 255"},
                {"noise", "x + sigma * N(0, 1) per pixel, clipped to [0, 1]; sigma ~ U[0, image_noise_max] "
                          "per sample (image_sigma_{split}.npy)"}};
  m["audio"] = {
      {"sample_rate", avf::kSampleRate},
      {"clip_seconds", 1.0},
      {"espeak_sample_rate", raw.sample_rate},
      {"resampler", "Kaiser-windowed sinc, half_width 16, rolloff 0.9, beta 6 (erlmr/data/resample.hpp)"},
      {"trim", "10 ms frames more than 40 dB below the loudest frame removed at both ends (one frame kept)"},
      {"word_level", "unit RMS over the trimmed word, times 0.1 * 10^(U[-6, 6] / 20)"},
      {"position", "uniform start in [0, 16000 - length]; words longer than 1 s keep their middle second"},
      {"noise", "pink (1/f) Gaussian noise, Paul Kellet's 7-term filter on white N(0, 1) after 4096 "
                "settling samples, unit RMS over the clip, scaled to RMS(speech over its active part) * "
                "10^(-snr_db / 20)"},
      {"snr_db", "U[snr_min_db, snr_max_db] per sample (snr_db_{split}.npy)"},
      {"speech_span", "speech_span_{split}.npy: first and one-past-last clip sample holding the word"},
      {"voice", "voice_{split}.npy: index into voices (uniform per sample)"},
      {"bank", {{"entries", voices.size() * words.size()},
                {"word_ms", {{"min", std::lround(min_ms)}, {"mean", std::lround(mean_ms)}, {"max", std::lround(max_ms)}}},
                {"longer_than_clip", cropped}}}};
  m["mel"] = {{"function", "erlmr::data::log_mel (natural log)"},
              {"sample_rate", mel.sample_rate},
              {"win_length", mel.win_length},
              {"hop_length", mel.hop_length},
              {"n_fft", mel.n_fft},
              {"n_mels", mel.n_mels},
              {"f_min", mel.f_min},
              {"f_max", mel.f_max},
              {"log_floor", mel.log_floor},
              {"center", mel.center},
              {"frames", frames}};
  m["voices"] = vj;
  m["rng"] = {{"generator", "erlmr::Generator (Philox4x32-10)"},
              {"seed", o.seed},
              {"sample_offset", "((split << 32) + index) << 16, split 0 = train, 1 = test"},
              {"bank_seed", avf::kBankSeed}};
  avf::write_text(manifest_path, m.dump(2) + "\n");
  log << "av-fashion: wrote " << o.train << " train + " << o.test << " test samples to " << dir.string() << " in "
      << std::fixed << std::setprecision(1) << seconds() << " s" << std::defaultfloat << std::endl;
#endif
}

}  // namespace erlmr::tools
