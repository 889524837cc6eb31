#!/usr/bin/env python3
"""Independent numpy reference for include/erlmr/data/audio.hpp (log_mel).

Writes logmel_ref.npy (float64, shape n_mels x frames) next to this script for the test signal
below. Uses numpy only; nothing is shared with the C++ code except the conventions:
periodic Hann, window of win_length centred in n_fft, reflect padding by n_fft//2 (center=True),
np.fft.rfft power, HTK mel filterbank with peak-1 triangles (no area normalisation), natural log
with a floor.  Run:  /usr/bin/python3 tests/data/audio_reference/make_reference.py

Test signal (0.5 s at 16 kHz, 8000 samples), sample n, generated identically in
tests/data/test_audio.cpp (reference_signal):
    chirp  0.25   * sin(2*pi * r_c / D_c)    linear chirp 200 Hz -> 4000 Hz over 0.5 s:
                  cycles(n) = 200 t + 3800 t^2, t = n/16000, so
                  cycles = (200*16000*n + 3800*n^2) / 16000^2; r_c = numerator mod D_c, D_c = 16000^2
    tone   0.125  * sin(2*pi * ((440*n)  mod 16000) / 16000)
    tone   0.0625 * sin(2*pi * ((2500*n) mod 16000) / 16000)
    noise  (2*u - 1) / 32,  u = (s >> 8) / 2^24,  s <- (1664525*s + 1013904223) mod 2^32,
           s0 = 12345, advanced once before each sample
summed in double in that order, then rounded to float32.
Phases are reduced with exact integer arithmetic and the amplitudes are powers of two, so the
products are exact and the sum does not depend on FMA contraction; math.sin is the C library sin,
as std::sin in C++.
"""
import math
import os

import numpy as np

# ---- signal parameters ----
SAMPLE_RATE = 16000
NUM_SAMPLES = 8000            # 0.5 s
CHIRP_F0, CHIRP_F1, DURATION = 200, 4000, 0.5
CHIRP_AMP = 0.25
TONES = [(440, 0.125), (2500, 0.0625)]
NOISE_SCALE = 1.0 / 32.0
LCG_SEED, LCG_A, LCG_C = 12345, 1664525, 1013904223

# ---- log-mel parameters (erlmr::data::MelConfig defaults) ----
WIN_LENGTH, HOP_LENGTH, N_FFT, N_MELS = 400, 160, 512, 64
F_MIN, F_MAX, LOG_FLOOR = 0.0, 8000.0, 1e-10


def reference_signal():
    sr = SAMPLE_RATE
    d_c = sr * sr
    # cycles = f0 t + 0.5 k t^2, k = (f1 - f0)/T  ->  numerator over sr^2
    k_half = int(round(0.5 * (CHIRP_F1 - CHIRP_F0) / DURATION))  # 3800
    s = LCG_SEED
    out = np.empty(NUM_SAMPLES, dtype=np.float32)
    for n in range(NUM_SAMPLES):
        r_c = (CHIRP_F0 * sr * n + k_half * n * n) % d_c
        v = CHIRP_AMP * math.sin(2.0 * math.pi * r_c / d_c)
        for f, a in TONES:
            v = v + a * math.sin(2.0 * math.pi * ((f * n) % sr) / sr)
        s = (LCG_A * s + LCG_C) % (1 << 32)
        u = (s >> 8) / float(1 << 24)
        v = v + (2.0 * u - 1.0) * NOISE_SCALE
        out[n] = np.float32(v)
    return out


def hann_periodic(n):
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * i / n)


def power_spec(x):
    x = x.astype(np.float64)
    pad = N_FFT // 2
    xp = np.pad(x, (pad, pad), mode="reflect")
    win = np.zeros(N_FFT)
    left = (N_FFT - WIN_LENGTH) // 2
    win[left:left + WIN_LENGTH] = hann_periodic(WIN_LENGTH)
    frames = 1 + (len(xp) - N_FFT) // HOP_LENGTH
    idx = np.arange(frames)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None, :]
    spec = np.fft.rfft(xp[idx] * win[None, :], n=N_FFT, axis=1)
    return np.abs(spec) ** 2  # frames x (N_FFT//2 + 1)


def htk_mel_fbank():
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz2mel(F_MIN), hz2mel(F_MAX), N_MELS + 2)
    hz = mel2hz(mels)
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    fb = np.zeros((N_MELS, len(freqs)))
    for m in range(N_MELS):
        lo, ce, hi = hz[m], hz[m + 1], hz[m + 2]
        up = (freqs - lo) / (ce - lo)
        down = (hi - freqs) / (hi - ce)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


def main():
    x = reference_signal()
    mel = htk_mel_fbank() @ power_spec(x).T
    logmel = np.log(np.maximum(mel, LOG_FLOOR))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logmel_ref.npy")
    np.save(out, logmel)
    print(f"wrote {out}: shape {logmel.shape}, min {logmel.min():.6f}, max {logmel.max():.6f}")


if __name__ == "__main__":
    main()
