#!/usr/bin/env python3
# Summary of the DBES expert-path experiment (scripts/dbes-paths.sh, docs/finetune.md):
# reads OUT/finetune/**/finetune.json ("moetb-finetune/1") and OUT/knockout/*.json
# ("moetb-knockout/1"); per target domain and arm, the mean over pretraining seeds with a
# 95% Student-t interval (the random arm is first averaged over its draws within a seed),
# paths minus random and each arm's share of the full arm's gain, paired by seed; and the
# knockout rank correlations. DBES: arXiv 2605.18498. Standard library only.
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# Two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30; 1.96 beyond.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def interval(values):
    """mean, half-width of the 95% t interval (None with fewer than 2 values), n"""
    values = [v for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n}
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return {"mean": mean, "ci95": t * statistics.stdev(values) / math.sqrt(n), "n": n}


def fmt(s, scale=1.0, digits=4, unit=""):
    if s["mean"] is None:
        return "-"
    text = f"{s['mean'] * scale:.{digits}f}{unit}"
    return text + (f" ± {s['ci95'] * scale:.{digits}f}{unit}" if s["ci95"] is not None else "") + f" (n={s['n']})"


def ranks(xs):
    """average ranks (1-based), ties share their mean rank"""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(xs, ys):
    """Spearman rank correlation; None with fewer than 3 points or a constant side"""
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    if len(pairs) < 3:
        return None
    rx, ry = ranks([p[0] for p in pairs]), ranks([p[1] for p in pairs])
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def knockout_correlations(k):
    """correlations of one moetb-knockout/1 file: the file's own two, plus per domain
    (does p_d(e) rank the experts by their importance for d, within each layer?) and
    load share against the all-domain loss increase"""
    domains = k["domains"] if isinstance(k["domains"][0], str) else [d["name"] for d in k["domains"]]
    within = []
    for d in domains:
        for layer in k["layers"]:
            within.append(spearman([e["p_d"].get(d) for e in layer["experts"]],
                                   [e["loss_increase_bits"].get(d) for e in layer["experts"]]))
    loads = [e["load_share"] for layer in k["layers"] for e in layer["experts"]]
    incs = [e["loss_increase_all_bits"] for layer in k["layers"] for e in layer["experts"]]
    return {"cell": k["correlation"]["cell"]["spearman"], "expert": k["correlation"]["expert"]["spearman"],
            "within_domain": statistics.fmean([w for w in within if w is not None]) if any(w is not None for w in within) else None,
            "load": spearman(loads, incs)}


def knockout_section(out, summary):
    """knockout/*.json (the fine-tuned topk runs) and knockout-routers/NAME/*.json"""
    groups = {"topk (Switch loss; the fine-tuned runs)": sorted(out.glob("knockout/*.json"))}
    for d in sorted(p for p in out.glob("knockout-routers/*") if p.is_dir()):
        groups[d.name] = sorted(d.glob("*.json"))
    lines = ["## knockout vs routing", "",
             "Spearman rank correlations between routing statistics of the unablated trace and the loss increase",
             "when one expert is removed; mean over pretraining seeds ± 95% t half-width. cell: p_d(e) against",
             "domain d's increase over every (layer, expert, domain); within d: the same within each layer and",
             "domain, averaged (does the routing share rank the experts for one domain?); expert: specialization",
             "against knockout concentration; load: load share against the all-domain increase.", "",
             "| router | cell | within d | expert | load | seeds |", "| --- | --- | --- | --- | --- | --- |"]
    summary["knockout"] = {}
    for name, files in groups.items():
        cors = [knockout_correlations(k) for k in (json.loads(f.read_text()) for f in files)
                if k.get("format") == "moetb-knockout/1"]
        if not cors:
            continue
        g = {key: interval([c[key] for c in cors]) for key in ["cell", "within_domain", "expert", "load"]}
        summary["knockout"][name] = g
        lines.append(f"| {name} | " + " | ".join(fmt(g[key], 1, 3).replace(f" (n={g[key]['n']})", "")
                                                   for key in ["cell", "within_domain", "expert", "load"]) + f" | {len(cors)} |")
    return lines + [""]


def pooled_paths_vs_random(runs, summary):
    """paths - random and paths / full per seed, averaged over the target domains first"""
    def pooled_by_seed(value):  # arm -> seed -> mean over domains of the arm's (draw-averaged) value
        per_seed = defaultdict(lambda: defaultdict(list))
        for domain, arms in runs.items():
            for arm, seeds in arms.items():
                for seed, rs in seeds.items():
                    per_seed[arm][seed].append(statistics.fmean(value(x) for x in rs))
        return {arm: {s: statistics.fmean(v) for s, v in seeds.items()} for arm, seeds in per_seed.items()}
    mean_of = pooled_by_seed(lambda x: x["target"]["gain_bits"])
    forget = pooled_by_seed(lambda x: x["forgetting_bits"])
    if "paths" not in mean_of or "random" not in mean_of:
        return []
    both = [s for s in mean_of["paths"] if s in mean_of["random"]]
    pooled = {"paths_minus_random_bits": interval([mean_of["paths"][s] - mean_of["random"][s] for s in both]),
              "paths_minus_random_forgetting_bits": interval([forget["paths"][s] - forget["random"][s] for s in both]),
              "forgetting_bits": {arm: interval(list(v.values())) for arm, v in forget.items()}}
    lines = ["## pooled over target domains", "",
             f"- paths - random (per seed, mean over domains): gain {fmt(pooled['paths_minus_random_bits'])} bits, "
             f"forgetting {fmt(pooled['paths_minus_random_forgetting_bits'])} bits",
             "- forgetting (mean over domains): " + ", ".join(f"{arm} {fmt(pooled['forgetting_bits'][arm], 1, 3)}"
                                                            for arm in ["paths", "random", "least", "experts", "full"]
                                                            if arm in pooled["forgetting_bits"])]
    for arm in ["paths", "random", "least", "experts"]:
        if arm in mean_of and "full" in mean_of:
            key = f"{arm}_share_of_full_gain"
            pooled[key] = interval([mean_of[arm][s] / mean_of["full"][s] for s in mean_of[arm]
                                    if s in mean_of["full"] and mean_of["full"][s] > 0])
            lines.append(f"- {arm}: {fmt(pooled[key], 100, 1, '%')} of the full arm's gain")
    summary["pooled"] = pooled
    return lines + [""]


def main(out_dir):
    out = Path(out_dir)
    runs = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # domain -> arm -> seed -> [results]
    for path in sorted(out.glob("finetune/**/finetune.json")):
        r = json.loads(path.read_text())
        if r.get("format") != "moetb-finetune/1":
            continue
        runs[r["domain"]][r["arm"]][r["seed"]].append(r)
    summary = {"format": "moetb-dbes-summary/1", "domains": {}, "knockout": {}}
    lines = ["# DBES expert paths: summary", "",
             "Mean over pretraining seeds ± 95% t half-width; random averaged over its draws within each seed.", ""]
    for domain, arms in sorted(runs.items()):
        per_seed = {arm: {seed: statistics.fmean(x["target"]["gain_bits"] for x in rs) for seed, rs in seeds.items()}
                    for arm, seeds in arms.items()}
        d = {}
        for arm, seeds in arms.items():
            flat = [x for rs in seeds.values() for x in rs]
            d[arm] = {
                "gain_bits": interval(list(per_seed[arm].values())),
                "forgetting_bits": interval([statistics.fmean(x["forgetting_bits"] for x in rs) for rs in seeds.values()]),
                "trainable_fraction": interval([x["trainable_fraction"] for x in flat]),
                "flops_fraction": interval([x["flops_fraction"] for x in flat]),
                "runs": len(flat),
            }
            if "full" in per_seed:
                d[arm]["share_of_full_gain"] = interval(
                    [v / per_seed["full"][s] for s, v in per_seed[arm].items() if s in per_seed["full"] and per_seed["full"][s] > 0])
        if "paths" in arms and "random" in arms:
            diffs = [per_seed["paths"][s] - per_seed["random"][s] for s in per_seed["paths"] if s in per_seed["random"]]
            beaten = [x["target"]["gain_bits"] for s, rs in arms["random"].items() for x in rs if s in per_seed["paths"]
                      and per_seed["paths"][s] > x["target"]["gain_bits"]]
            total = sum(len(rs) for s, rs in arms["random"].items() if s in per_seed["paths"])
            d["paths_minus_random"] = {"gain_bits": interval(diffs),
                                       "share_of_random_draws_beaten": len(beaten) / total if total else None}
        summary["domains"][domain] = d
        lines += [f"## target domain {domain}", "",
                  "| arm | gain (bits) | share of full gain | forgetting (bits) | trainable | FLOPs | runs |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for arm in ["paths", "random", "least", "experts", "full"]:
            if arm not in d:
                continue
            a = d[arm]
            lines.append(f"| {arm} | {fmt(a['gain_bits'])} | {fmt(a.get('share_of_full_gain', interval([])), 100, 1, '%')} | "
                         f"{fmt(a['forgetting_bits'])} | {fmt(a['trainable_fraction'], 100, 1, '%')} | "
                         f"{fmt(a['flops_fraction'], 100, 1, '%')} | {a['runs']} |")
        if "paths_minus_random" in d:
            p = d["paths_minus_random"]
            lines += ["", f"paths - random (paired by seed): {fmt(p['gain_bits'])} bits; paths beats "
                      f"{100 * (p['share_of_random_draws_beaten'] or 0):.0f}% of the random draws.", ""]
    lines += pooled_paths_vs_random(runs, summary)
    lines += knockout_section(out, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: dbes_summary.py OUT (the folder scripts/dbes-paths.sh wrote)")
    main(sys.argv[1])
