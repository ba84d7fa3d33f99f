#!/usr/bin/env python3
"""The `import moetb` benchmark of docs/performance.md: moetb.metrics on a 1 M-token,
48-layer, 128-expert, top-8 routing array (the Qwen3-30B-A3B-shaped planted trace of
scripts/bench-metrics.sh) beside `moetb metrics` on the same trace file, alternating,
N times (median and range). Checks that all of them give the same document.

Usage: PYTHONPATH=build/release/python python3 python/bench_metrics.py [--tokens N]
       [--work DIR] [--repeats N] [--threads N] [--moetb build/release/cli/moetb]
       [--baseline OTHER_MOETB]   (also time another build of the CLI, e.g. one without -fPIC)
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]  # not the source folder python/moetb
import moetb  # noqa: E402

SHAPE = ["-E", "128", "-k", "8", "-D", "8", "-L", "48", "--load-profile", "zipf", "--zipf-s", "1.0", "--beta", "0.2",
         "--gamma", "0.2", "--vocab-per-domain", "16384", "--seq-len", "2048", "--seed", "1", "--alpha", "0.5"]


def timed(fn):
    """(result, wall s, CPU s of this process and its children, all threads)."""
    r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in ((r0, r1), (c0, c1)))
    return out, wall, cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1048576)
    p.add_argument("--work", default="/tmp/moetb-bench")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--moetb", default=os.path.join(HERE, "..", "build", "release", "cli", "moetb"))
    p.add_argument("--baseline", default=None, help="another moetb binary to time beside it")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    trace = os.path.join(a.work, "qwen-shaped-%d.safetensors" % a.tokens)
    if not os.path.exists(trace):
        subprocess.run([a.moetb, "simulate", "-o", trace, *SHAPE, "-T", str(a.tokens)], check=True)
    with open(trace, "rb") as f:  # warm the page cache: the metrics are measured, not the disk
        while f.read(1 << 24):
            pass
    out_json = os.path.join(a.work, "cli-metrics.json")

    def cli(binary):
        def run():
            subprocess.run([binary, "metrics", trace, "--json", "-o", out_json, "--threads", str(a.threads)],
                           check=True)
            with open(out_json) as f:
                return json.load(f)
        return run

    arrays, read_wall, _ = timed(lambda: moetb.read_trace(trace, probs=False))
    stacked = np.stack(arrays["experts"])  # [48, T, 8] int16: read in place
    kwargs = {k: arrays[k] for k in ("token_ids", "positions", "domain_ids", "n_experts", "top_k", "domain_names",
                                     "reference_groups")}
    int64_layers = 8
    wide = stacked[:int64_layers].astype(np.int64)  # what torch.topk returns: converted on the way in
    cases = [
        ("moetb metrics TRACE --json (CLI, subprocess)", cli(a.moetb)),
        ("moetb.metrics(int16 array [48, T, 8])", lambda: moetb.metrics(stacked, threads=a.threads, **kwargs)),
        ("moetb.metrics(TRACE) (files, in-process)", lambda: moetb.metrics(trace, threads=a.threads)),
    ]
    if a.baseline:
        cases.append(("the same, baseline binary", cli(a.baseline)))
    times, results = {name: [] for name, _ in cases}, {}
    for _ in range(a.repeats):
        for name, fn in cases:
            out, wall, cpu = timed(fn)
            results[name] = out
            times[name].append((wall, cpu))
    reference = results[cases[0][0]]
    for name, out in results.items():
        assert out == reference, "%s differs from the CLI" % name
    _, wall64, cpu64 = timed(lambda: moetb.metrics(wide, threads=a.threads, **kwargs))
    _, wall16, cpu16 = timed(lambda: moetb.metrics(stacked[:int64_layers], threads=a.threads, **kwargs))

    cpu_name = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_name = line.split(":", 1)[1].strip()
                break
    print("%s, %d cores, load average %.1f; %d tokens, 48 layers, 128 experts, top-8; threads %s; %d repeats, "
          "median [min, max]" % (cpu_name, os.cpu_count(), os.getloadavg()[0], a.tokens, a.threads or "all", a.repeats))
    print("read_trace (copy into NumPy): %.2f s" % read_wall)
    for name, _ in cases:
        walls, cpus = (sorted(x[i] for x in times[name]) for i in (0, 1))
        print("%-46s wall %5.2f s [%5.2f, %5.2f]  CPU %5.2f s [%5.2f, %5.2f]" % (
            name, walls[len(walls) // 2], walls[0], walls[-1], cpus[len(cpus) // 2], cpus[0], cpus[-1]))
    print("int64 [%d, T, 8] (converted) vs int16 in place: %.2f s vs %.2f s wall, %.2f s vs %.2f s CPU"
          % (int64_layers, wall64, wall16, cpu64, cpu16))
    print("all documents equal: yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
