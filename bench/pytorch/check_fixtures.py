#!/usr/bin/python3
"""Check bench/pytorch/erlmr_torch.py against the reference fixtures.

For every ../shared/fixtures/erlmr-step-<fusion>-t<T>-b<B>.npz: load param/* into the model
(float64, training mode, dropout p = 0, batch-norm in training mode), run one fused step
without the optimiser, and compare every expect/*, grad/* and after/* array with relative
error max|got - expected| / max(max|expected|, 1e-6) <= tolerance (default 1e-8).
Prints one line per fixture; exits 1 on any mismatch, 2 if no fixture is found.

    /usr/bin/python3 bench/pytorch/check_fixtures.py [--fixtures DIR] [--tol 1e-8] [-v]
"""

import argparse
import glob
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erlmr_torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "fixtures"))


def rel_err(got, exp):
    got = np.asarray(got, dtype=np.float64)
    exp = np.asarray(exp, dtype=np.float64)
    if got.shape != exp.shape:
        return float("inf")
    if exp.size == 0:
        return 0.0
    return float(np.max(np.abs(got - exp)) / max(float(np.max(np.abs(exp))), 1e-6))


def check(path, tol, verbose):
    m = re.search(r"erlmr-step-(\w+)-t(\d+)-b(\d+)\.npz$", os.path.basename(path))
    if not m:
        raise SystemExit(f"{path}: unexpected fixture name")
    fusion, T = m.group(1), int(m.group(2))
    data = np.load(path)
    keys = data.files

    model = erlmr_torch.ERLMRNet(T=T, num_classes=data["expect/out"].shape[1], fusion=fusion)
    model = model.double()
    state = {k[len("param/"):]: torch.from_numpy(data[k]) for k in keys if k.startswith("param/")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{path}: state_dict mismatch: missing {missing}, unexpected {unexpected}")
    model.train()
    model.set_dropout(0.0)

    x1 = torch.from_numpy(data["input/x1"])
    x2 = torch.from_numpy(data["input/x2"])
    y = torch.from_numpy(data["input/y"]).long()
    res = erlmr_torch.train_step(model, x1, x2, y, mode="fused", optimizer=None)

    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    worst, worst_key, failures, n = 0.0, None, [], 0
    for k in keys:
        group, name = k.split("/", 1)
        if group == "expect":
            got = res[name]
            got = got.numpy() if torch.is_tensor(got) else np.float64(got)
        elif group == "grad":
            g = params[name].grad
            got = np.zeros(params[name].shape) if g is None else g.numpy()
        elif group == "after":
            got = buffers[name].numpy()
        else:
            continue
        e = rel_err(got, data[k])
        n += 1
        if verbose:
            print(f"    {k:60s} {e:.3e}")
        if not e <= tol:
            failures.append((k, e))
        if e > worst or worst_key is None:
            worst, worst_key = e, k
    status = "OK  " if not failures else "FAIL"
    print(f"{status} {os.path.basename(path)}: {n} arrays, max rel err {worst:.3e} ({worst_key}), "
          f"gamma {res['gamma']:.6f}, loss {float(res['loss']):.12f}")
    for k, e in failures:
        print(f"     mismatch {k}: rel err {e:.3e} > {tol:g}")
    return not failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    paths = sorted(glob.glob(os.path.join(args.fixtures, "erlmr-step-*.npz")))
    if not paths:
        print(f"no fixtures under {args.fixtures}")
        return 2
    ok = all([check(p, args.tol, args.verbose) for p in paths])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
