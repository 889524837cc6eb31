#!/usr/bin/env python3
"""Accuracy of the fused output and of each unimodal head against the per-sample noise of
av-fashion: the audio head by speech-to-noise ratio, the image head by image noise sigma.

    erlmr eval --data data/av-fashion --checkpoint RUN/checkpoint.npz --predictions RUN/pred.csv
    /usr/bin/python3 tools/av_fashion_breakdown.py data/av-fashion RUN/pred.csv [MORE.csv ...]

Needs numpy (Debian: python3-numpy). Prints one Markdown table per predictions file.
"""
import sys

import numpy as np


def load_predictions(path):
    a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    return {"label": a[:, 1], "fused": a[:, 2], "a": a[:, 3], "g": a[:, 4]}


def table(data_dir, path):
    p = load_predictions(path)
    snr = np.load(f"{data_dir}/snr_db_test.npy")
    sigma = np.load(f"{data_dir}/image_sigma_test.npy")
    if len(snr) != len(p["label"]):
        sys.exit(f"{path}: {len(p['label'])} predictions but {data_dir} has {len(snr)} test samples")
    y = p["label"]
    rows = [f"### {path}", "", "| audio SNR (dB) | n | fused | audio head | image head |", "|---|---|---|---|---|"]
    for lo, hi in [(-15, -10), (-10, -5), (-5, 0), (0, 5), (5, 10), (10, 15.001)]:
        m = (snr >= lo) & (snr < hi)
        rows.append(f"| [{lo}, {min(hi, 15):g}) | {m.sum()} | {np.mean(p['fused'][m] == y[m]):.3f} | "
                    f"{np.mean(p['g'][m] == y[m]):.3f} | {np.mean(p['a'][m] == y[m]):.3f} |")
    rows += ["", "| image noise σ | n | fused | image head | audio head |", "|---|---|---|---|---|"]
    for lo, hi in [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.001)]:
        m = (sigma >= lo) & (sigma < hi)
        rows.append(f"| [{lo}, {min(hi, 1):g}) | {m.sum()} | {np.mean(p['fused'][m] == y[m]):.3f} | "
                    f"{np.mean(p['a'][m] == y[m]):.3f} | {np.mean(p['g'][m] == y[m]):.3f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for f in sys.argv[2:]:
        print(table(sys.argv[1], f))
