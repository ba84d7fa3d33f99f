#!/usr/bin/env python3
# moetb's training step (bench_train, Google Benchmark) against the Python PyTorch eager
# peer (bench/peer_train.py) in one run, with the same BLAS kernel on both sides (the one
# `moetb env` reports: OPENBLAS_CORETYPE is set to it for both), at the default and the
# larger shape; single-core sgemm measured in the same run. The machine is shared, so the
# sides alternate round by round and the medians of tokens/s and of the per-round ratios
# are printed, by wall clock and by CPU time (docs/performance.md). Torch-free itself.
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {  # name: (bench_train arg, peer flags)
    "default": (0, []),
    "large": (1, ["--d-model", "256", "--layers", "4", "--experts", "16", "--d-ff", "256", "--seq", "256"]),
}
TOKENS_PER_STEP = {"default": 16 * 128, "large": 16 * 256}


def gbench(binary, filt, min_time, env):
    out = subprocess.run([binary, f"--benchmark_filter={filt}", f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    try:
        return json.loads(out)["benchmarks"][0]
    except (ValueError, KeyError, IndexError):
        sys.exit(f"{binary} {filt}: no benchmark result in its output: {out[:200]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "release"))
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python with Debian's python3-torch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default="default,large")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per moetb measurement")
    ap.add_argument("--kernel", default=None, help="OPENBLAS_CORETYPE for both sides (default: what moetb env reports)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "bench_train")
    moetb = os.path.join(a.build, "cli", "moetb")
    env_info = json.loads(subprocess.run([moetb, "env", "--json"], check=True, capture_output=True, text=True).stdout)
    kernel = a.kernel if a.kernel is not None else env_info["blas"].get("kernel", "")
    env = dict(os.environ, MOETB_BENCH_THREADS=str(a.threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as moetb's launcher sets them (common/machine_info.h), for both sides
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    if kernel:
        env["OPENBLAS_CORETYPE"] = kernel
    print(f"cpu: {env_info['cpu']['model']}; BLAS kernel on both sides: {kernel or '(none)'} "
          f"(moetb env: source {env_info['blas'].get('kernel_source')}); threads: {a.threads}; rounds: {a.rounds}", flush=True)
    results = {"kernel": kernel, "threads": a.threads, "cpu": env_info["cpu"], "shapes": {}, "sgemm_gflops": [], "sgemm_cpu_gflops": []}
    shapes = a.shapes.split(",")
    for r in range(a.rounds):
        sg = gbench(bench, "BM_Sgemm/1024/", 1.0, env)
        results["sgemm_gflops"].append(sg["GFLOP/s"])
        results["sgemm_cpu_gflops"].append(2 * 1024 ** 3 / (sg["cpu_time"] * 1e-3) * 1e-9)  # cpu_time: ms
        for name in shapes:
            arg, flags = SHAPES[name]
            m = gbench(bench, f"BM_TrainStep/{arg}/", a.min_time, env)
            steps = 20 if name == "default" else 6
            p = json.loads(subprocess.run([a.python, os.path.join(HERE, "peer_train.py"), "--threads", str(a.threads),
                                           "--steps", str(steps)] + flags, env=env, check=True, capture_output=True,
                                          text=True).stdout)
            d = results["shapes"].setdefault(name, {"moetb": [], "python": [], "moetb_cpu": [], "python_cpu": [],
                                                    "mflop_per_token": m["MFLOP_per_token"]})
            d["moetb"].append(m["tokens_per_s"])
            d["moetb_cpu"].append(TOKENS_PER_STEP[name] / (m["cpu_time"] * 1e-3))  # cpu_time: ms per step
            d["python"].append(p["tokens_per_s"])
            d["python_cpu"].append(p["tokens_per_cpu_s"])
            print(f"round {r + 1} {name}: moetb {m['tokens_per_s']:,.0f} tokens/s, python {p['tokens_per_s']:,.0f}, "
                  f"sgemm {sg['GFLOP/s']:.1f} GFLOP/s", flush=True)
    sgemm = {"wall": statistics.median(results["sgemm_gflops"]), "cpu": statistics.median(results["sgemm_cpu_gflops"])}
    print(f"\nsingle-core sgemm (n=1024, median of {a.rounds}): {sgemm['wall']:.1f} GFLOP/s by wall clock, "
          f"{sgemm['cpu']:.1f} per CPU second")
    print("| shape | clock | moetb tokens/s | python tokens/s | ratio (median per round) | moetb model GFLOP/s | share of sgemm |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in shapes:
        d = results["shapes"][name]
        for clock, mk, pk in (("wall", "moetb", "python"), ("cpu", "moetb_cpu", "python_cpu")):
            mt, pt = statistics.median(d[mk]), statistics.median(d[pk])
            ratio = statistics.median([x / y for x, y in zip(d[mk], d[pk])])
            gf = mt * d["mflop_per_token"] * 1e-3
            share = gf / sgemm[clock]
            d[f"{clock}_summary"] = {"moetb": mt, "python": pt, "ratio": ratio, "model_gflops": gf, "sgemm_share": share}
            print(f"| {name} | {clock} | {mt:,.0f} | {pt:,.0f} | {ratio:.2f}x | {gf:.1f} | {100 * share:.0f}% |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
