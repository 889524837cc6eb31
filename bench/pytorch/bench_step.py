#!/usr/bin/python3
"""Time one configuration of the ERL-MR sensor model in PyTorch on the CPU (or, with
--device cuda, on the GPU: every timed step ends with torch.cuda.synchronize()).

Float32, window T = 200, 12 classes, concat fusion, dropout 0.5, random inputs (fixed per run).
Training configurations time the whole step (forward passes, the min-norm gradients, the final
backward and the SGD update: lr 1e-3, momentum 0.9, weight decay 1e-4); inference
configurations time model.eval() + torch.no_grad() forward passes.

    /usr/bin/python3 bench/pytorch/bench_step.py --config fused-b16 --threads 2 --seconds 3

Prints one JSON line: {"config", "ms_per_step", "samples_per_s", "peak_rss_mb"}, the same as
build/bench/erlmr_step_bench. peak_rss_mb is this process's peak resident set size
(getrusage ru_maxrss, so it includes the Python interpreter and libtorch): run each
configuration in its own process.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erlmr_torch  # noqa: E402

CONFIGS = {
    "fused-b16": ("fused", 16), "fused-b64": ("fused", 64),
    "faithful-b16": ("faithful", 16), "faithful-b64": ("faithful", 64),
    "joint-b16": ("joint", 16), "joint-b64": ("joint", 64),
    "infer-b1": ("infer", 1), "infer-b64": ("infer", 64),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="timing budget (after warm-up)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--min-steps", type=int, default=3, help="timed steps at least")
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mode, batch = CONFIGS[args.config]

    dev = torch.device(args.device)
    model = erlmr_torch.ERLMRNet(T=args.T, num_classes=args.classes, fusion="concat").to(dev)
    x1 = torch.randn(batch, 1, 3, args.T).to(dev)
    x2 = torch.randn(batch, 1, 3, args.T).to(dev)
    y = torch.randint(0, args.classes, (batch,)).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    if mode == "infer":
        model.eval()

        def step():
            with torch.no_grad():
                model(x1, x2)
    else:
        model.train()
        opt = erlmr_torch.make_optimizer(model)

        def step():
            erlmr_torch.train_step(model, x1, x2, y, mode=mode, optimizer=opt)

    for _ in range(args.warmup):
        step()
    sync()
    steps = 0
    t0 = time.perf_counter()
    while True:
        step()
        sync()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= args.seconds and steps >= args.min_steps:
            break
    ms = 1e3 * elapsed / steps
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "config": args.config,
        "device": args.device,
        "ms_per_step": round(ms, 4),
        "samples_per_s": round(batch * 1e3 / ms, 2),
        "peak_rss_mb": round(peak_kb / 1024.0, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
