"""moetb: the MoE routing testbed's metric suite (docs/metrics.md; DBES, arXiv 2605.18498;
MoE Routing Testbed, arXiv 2604.07030; OLMoE, arXiv 2409.02060) from Python, in memory:
the C++ code of `moetb metrics` on NumPy arrays, PyTorch tensors or trace files (format
v1), returning the CLI's JSON documents as dicts. Bad input raises moetb.TraceError (a
ValueError) or ValueError with the CLI's one-line message. Needs only NumPy; torch is
never imported. Guide: docs/python.md.
    m = moetb.metrics(experts, domain_ids=domains, token_ids=ids, n_experts=128)
"""
import os

import numpy as np

try:
    from . import _moetb
except ImportError as e:  # e.g. the source folder python/moetb came first on sys.path
    raise ImportError("moetb: the compiled part _moetb does not import from %s (%s); put the build's python "
                      "folder on PYTHONPATH (e.g. build/release/python) or install it, see docs/python.md"
                      % (os.path.dirname(os.path.abspath(__file__)), e)) from None

__all__ = ["metrics", "paths", "compare", "read_trace", "write_trace", "simulate", "validate", "scenarios",
           "TraceError", "git_revision"]
__version__ = "0.1.0"
TraceError = _moetb.TraceError
TraceError.__module__ = "moetb"
git_revision = _moetb.git_revision

_TRACE_KEYS = ("experts", "token_ids", "positions", "domain_ids", "n_experts", "top_k", "domain_names",
               "reference_groups")


def _as_array(x, name):
    """A NumPy view of x where possible: ndarray, torch tensor (any device; detached, moved
    to the CPU), anything with __dlpack__ or __array__, nested lists."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        if callable(getattr(x, "detach", None)):  # torch: drop autograd, then leave the GPU
            x = x.detach()
        device = getattr(x, "device", None)
        if getattr(device, "type", "cpu") != "cpu" and callable(getattr(x, "cpu", None)):
            x = x.cpu()
        arr = None
        if hasattr(x, "__dlpack__") and not hasattr(x, "__array_interface__"):
            try:
                arr = np.from_dlpack(x)
            except (TypeError, RuntimeError, BufferError, ValueError, AttributeError):
                arr = None
        if arr is None:
            try:
                arr = np.asarray(x)
            except (TypeError, RuntimeError, ValueError) as e:
                if callable(getattr(x, "float", None)) and getattr(x, "is_floating_point", lambda: False)():
                    arr = np.asarray(x.float())  # bfloat16 has no NumPy type
                else:
                    raise TypeError("%s: cannot read a %s as an array (%s)" % (name, type(x).__name__, e)) from None
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _optional_array(x, name):
    return None if x is None else _as_array(x, name)


def _per_layer(x, name):
    """[L, T, K] array or a list of L [T, K] arrays -> list of [T, K] arrays (views)."""
    if isinstance(x, (list, tuple)):
        return [_as_array(a, "%s[%d]" % (name, i)) for i, a in enumerate(x)]
    arr = _as_array(x, name)
    if arr.ndim != 3:
        raise TraceError("arrays: %s: shape %s is not [n_layers, n_tokens, top_k] (or pass a list of "
                         "[n_tokens, top_k] arrays, one per layer)" % (name, tuple(arr.shape)))
    return [arr[l] for l in range(arr.shape[0])]


def _is_path(x):
    return isinstance(x, (str, bytes, os.PathLike))


def _paths(x):
    if _is_path(x):
        return [os.fsdecode(x)]
    if isinstance(x, (list, tuple)) and x and all(_is_path(p) for p in x):
        return [os.fsdecode(p) for p in x]
    return None


def _layers(layers):
    """None, an int, a list of ints, or the CLI's text form "0-3,7"."""
    if layers is None:
        return None
    if isinstance(layers, str):
        out = []
        for part in layers.split(","):
            a, dash, b = part.partition("-")
            if not a.isdigit() or (dash and not b.isdigit()) or len(a) > 6 or len(b) > 6:
                raise ValueError("layers: '%s' is not a list of layers or ranges like 0-3,7" % layers)
            if dash and int(b) < int(a):
                raise ValueError("layers: range '%s' runs backwards" % part)
            out.extend(range(int(a), int(b if dash else a) + 1))
        return sorted(set(out))
    if isinstance(layers, (int, np.integer)):
        return [int(layers)]
    return sorted(set(int(l) for l in layers))


def _source(trace, **fields):
    """The spec _moetb reads: {"paths": [...]} or the arrays and metadata. `trace` is a path,
    a list of paths, a dict from read_trace()/simulate(), or the experts array(s); the
    non-None fields override the dict's entries."""
    paths = _paths(trace)
    if paths is not None:
        if any(v is not None for k, v in fields.items() if k in ("token_ids", "positions", "domain_ids", "n_experts",
                                                                  "top_k", "domain_names", "weights")):
            raise ValueError("a trace read from files takes its arrays and metadata from the files")
        return {"paths": paths}
    spec = {k: trace.get(k) for k in _TRACE_KEYS} if isinstance(trace, dict) else {"experts": trace}
    if spec.get("experts") is None:
        raise ValueError("experts: no expert ids given")
    spec.update({k: v for k, v in fields.items() if v is not None})
    spec["experts"] = _per_layer(spec["experts"], "experts")
    for key in ("token_ids", "positions", "domain_ids"):
        spec[key] = _optional_array(spec.get(key), key)
    weights = spec.pop("weights", None)
    if weights is not None:  # no metric reads them; their shapes must still agree
        for l, (w, e) in enumerate(zip(_per_layer(weights, "weights"), spec["experts"])):
            if w.shape != e.shape or w.dtype.kind != "f":
                raise TraceError("arrays: layers.%d.weights: shape %s, dtype %s is not a float array of the experts' "
                                 "shape %s" % (l, tuple(w.shape), w.dtype, tuple(e.shape)))
    if spec.get("domain_names") is not None:
        spec["domain_names"] = [str(n) for n in spec["domain_names"]]
    return spec


def _options(layers=None, threads=None, groups=None, reference_groups=None):
    if isinstance(reference_groups, str):  # JSON text, as --reference takes it
        import json
        try:
            reference_groups = json.loads(reference_groups)
        except ValueError:
            raise ValueError("reference_groups: not valid JSON") from None
    return {"layers": _layers(layers), "threads": threads, "groups": groups, "reference_groups": reference_groups}


def metrics(experts, domain_ids=None, token_ids=None, weights=None, n_experts=None, domain_names=None,
            reference_groups=None, layers=None, threads=None, *, positions=None, top_k=None, groups=8):
    """The metric suite of `moetb metrics --json` (moetb-metrics/1) as a dict.

    experts: the routing, one of
        - an integer array [n_layers, n_tokens, top_k] (int16, int32 or int64; NumPy, a
          PyTorch tensor on any device, or anything with __array__ / __dlpack__),
        - a list of [n_tokens, K] arrays, one per MoE layer (K may differ per layer),
        - a dict returned by read_trace() or simulate() (the other arguments override it),
        - a trace file, a directory of shards, or a list of them (read like the CLI does).
        -1 marks an empty slot; every other id must lie in [0, n_experts) and appear at
        most once per token. int16 / int32 arrays with C-contiguous rows are read in place;
        int64 and strided arrays are converted (once, with the ids checked).
    domain_ids: [n_tokens] integers, the domain of each token; -1 = unlabelled (left out of
        RS, NER, DI, purity, paths). Default: every token unlabelled.
    token_ids: [n_tokens] input token ids, used by RSS. Default: none, and then `rss` is
        None in every layer and in the summary.
    weights: combine weights, same layout as experts (float). No metric reads them; their
        shape is checked so that a mismatch is caught early.
    n_experts: E. Default: the largest expert id + 1 (pass it: experts never chosen count
        for the load metrics, and the scan for the maximum is skipped).
    domain_names: names of domain ids 0, 1, ...; unnamed ids are named by their decimal id.
    reference_groups: expert ids of each domain (list of lists, or the JSON text
        `moetb metrics --reference` takes), for purity, purity_ids, purity_majority.
    layers: only these layers: a list of ints, an int, or text like "0-3,7".
    threads: layers computed in parallel (default / 0: all cores). The result does not
        depend on it. The GIL is released while the metrics run.
    positions: [n_tokens] position in the sequence, 0 starting a new sequence (used by NE).
        Default: all tokens form one sequence.
    top_k: the nominal k reported under "trace" (default: the largest K of the layers).
    groups: G for ne_group (experts merged into G groups of E/G consecutive ids; 8).

    Returns {"format": "moetb-metrics/1", "trace": {...}, "summary": {...}, "layers":
    [...], "per_domain": {...}}, exactly what the CLI writes (undefined values are None).
    Raises TraceError (bad ids, shapes, dtypes, lengths) or ValueError (bad options).
    """
    spec = _source(experts, domain_ids=domain_ids, token_ids=token_ids, weights=weights, n_experts=n_experts,
                   domain_names=domain_names, positions=positions, top_k=top_k)
    return _moetb.metrics(spec, _options(layers, threads, groups, reference_groups))


def paths(trace, tau=0.5, layers=None, domain_ids=None, n_experts=None, domain_names=None, threads=None):
    """Expert paths (`moetb paths`): {domain name: [[layer-0 experts], [layer-1 experts], ...]}.

    trace: as `experts` of metrics() (arrays, a dict from read_trace()/simulate(), or files).
    tau: the share of each domain's routing the path must cover, in (0, 1] (default 0.5);
        experts are taken by decreasing share, ties by id.
    layers, domain_ids, n_experts, domain_names, threads: as for metrics().
    """
    spec = _source(trace, domain_ids=domain_ids, n_experts=n_experts, domain_names=domain_names)
    return _moetb.paths(spec, float(tau), _options(layers, threads))


def compare(a, b, tol=0.01, blocks=16, threads=None, groups=8):
    """`moetb compare A B --json` (moetb-compare/1): two traces of the same tokens.

    a, b: traces as `experts` of metrics() takes them (paths, dicts from read_trace() or
        simulate(), or arrays); they must hold the same tokens (token_ids, positions, and
        domain_ids where both label any), or TraceError names the first differing token.
    tol: smallest absolute difference called "differs" (default 0.01).
    blocks: delete-one-block jackknife blocks for the paired standard errors (default 16;
        0 = verdicts on tol alone).
    threads, groups: as for metrics().
    Returns router saturation per layer, per-metric A, B, delta, errors and verdicts.
    """
    return _moetb.compare(_source(a), _source(b), float(tol), int(blocks), _options(None, threads, groups))


def read_trace(path, probs=True):
    """Reads a trace into NumPy arrays (copies: the files are not kept open).

    path: a trace file, a directory of shards, or a list of them; shards are concatenated
        in file-name order, as `moetb metrics` reads them.
    probs: also read the router distributions [T, E] per layer when the trace has them.
    Returns {"experts": [int16/int32 [T, K] per layer], "token_ids", "positions",
    "domain_ids" ([T] int32), "weights" / "probs" (lists of float32 arrays, None where
    absent), "n_experts", "top_k", "domain_names", "reference_groups", "model", "source",
    "metadata" (every metadata key as written)}; metrics(read_trace(p)) equals metrics(p).
    """
    paths = _paths(path)
    if paths is None:
        raise ValueError("path: not a path or a list of paths")
    return _moetb.read_trace(paths, bool(probs))


def write_trace(path, experts, token_ids=None, positions=None, domain_ids=None, weights=None, probs=None,
                n_experts=None, top_k=None, domain_names=None, reference_groups=None, model=None, source="python",
                metadata=None, expert_dtype=None, weights_dtype="F16", probs_dtype="F16"):
    """Writes one trace shard (format v1) to `path`, atomically (a temporary file, then a rename
    that replaces an existing file). Every id is checked first; nothing is written on error.

    path: the output .safetensors file (read it with read_trace() or `moetb metrics`).
    experts: as for metrics() (arrays, a list per layer, or a dict from read_trace()/simulate();
        the other arguments override the dict's entries).
    token_ids, positions, domain_ids: [T] integers (defaults: 0, one sequence, unlabelled).
    weights: combine weights per layer, same layout as experts (float), or None.
    probs: router distributions per layer, [T, n_experts] floats, or None.
    n_experts, top_k, domain_names, reference_groups: the metadata (defaults as metrics()).
    model, source: provenance strings (metadata keys model and source).
    metadata: extra {str: str} metadata keys.
    expert_dtype: "I16" or "I32" (default I16 when n_experts <= 32767).
    weights_dtype, probs_dtype: "F16" (default), "BF16" or "F32".
    """
    if isinstance(experts, dict):
        base = dict(experts)
        weights = base.get("weights") if weights is None else weights
        probs = base.get("probs") if probs is None else probs
        model = base.get("model") if model is None else model
    spec = _source(experts, token_ids=token_ids, positions=positions, domain_ids=domain_ids, n_experts=n_experts,
                   top_k=top_k, domain_names=domain_names, reference_groups=reference_groups)
    if weights is not None:
        spec["weights"] = _per_layer(weights, "weights")
    if probs is not None:
        spec["probs"] = _per_layer(probs, "probs")
    spec["model"], spec["source"] = model, source
    extra = {str(k): str(v) for k, v in (metadata or {}).items()}
    _moetb.write_trace(os.fsdecode(path), spec, expert_dtype or "", weights_dtype, probs_dtype, extra)
    return os.fsdecode(path)


def simulate(out=None, *, n_experts=64, top_k=4, n_domains=4, domain_shares=None, domain_names=None, n_layers=4,
             alpha=0.8, load_profile="uniform", zipf_s=1.0, beta=0.0, gamma=0.0, overlap=0, vocab_per_domain=1024,
             unlabeled=0.0, seq_len=256, n_tokens=65536, seed=1, shard_tokens=0, expert_dtype="I16", weights=None,
             probs=None, force=False):
    """Planted routing with known specialization (`moetb simulate`; docs/validation.md).

    Per layer, each slot lands in the token's own domain group with probability alpha,
    else on the global load profile. Same arguments and seed give the same trace.
    out: None returns the trace in memory (a dict as read_trace() returns, int32 ids);
        a path writes it like `moetb simulate --out` (a directory of shards when
        shard_tokens > 0) and returns the path.
    n_experts, top_k, n_domains, n_layers, n_tokens, seq_len: E, k, D, L, T, sequence length.
    domain_shares: D relative shares (default equal).
    domain_names: D names (default domain0, domain1, ...).
    alpha: specialization, one value or one per layer.
    load_profile: the global profile, "uniform" or "zipf".
    zipf_s: the Zipf exponent.
    beta: stiffness, P(a token id keeps a fixed expert set).
    gamma: span coherence, P(a token reuses the previous token's set).
    overlap: experts each domain group shares with the next.
    vocab_per_domain: token ids per domain (disjoint vocabularies).
    unlabeled: fraction of tokens written with domain -1.
    seed: random seed.
    shard_tokens: tokens per shard of a written trace (0 = one file).
    expert_dtype: "I16" or "I32" ids in a written trace.
    weights, probs: "F32", "F16", "BF16" or None: also write combine weights / router
        distributions.
    force: replace an existing out.
    """
    cfg = _moetb.SimConfig()
    for key, value in (("n_experts", n_experts), ("top_k", top_k), ("n_domains", n_domains),
                       ("n_layers", n_layers), ("load_profile", load_profile), ("zipf_s", zipf_s), ("beta", beta),
                       ("gamma", gamma), ("overlap", overlap), ("vocab_per_domain", vocab_per_domain),
                       ("unlabeled", unlabeled), ("seq_len", seq_len), ("n_tokens", n_tokens), ("seed", seed)):
        setattr(cfg, key, value)
    cfg.alpha = [float(a) for a in (alpha if isinstance(alpha, (list, tuple, np.ndarray)) else [alpha])]
    cfg.domain_shares = [float(s) for s in (domain_shares or [])]
    cfg.domain_names = [str(n) for n in (domain_names or [])]
    return _moetb.simulate(cfg, "" if out is None else os.fsdecode(out), int(shard_tokens), expert_dtype,
                           weights or "", probs or "", bool(force))


def validate(scenarios=None):
    """Runs the planted validation suite (`moetb validate --json`, moetb-validate/1): every
    check of the named scenarios with expected and measured values.
    scenarios: a name or a list of names (see scenarios()); None runs them all.
    Returns {"checks": [...], "passed": n, "failed": n, "table": the CLI's text table, ...}.
    """
    only = [scenarios] if isinstance(scenarios, str) else list(scenarios or [])
    return _moetb.validate(only)


def scenarios():
    """The validation scenarios: [{"name": ..., "description": ...}] (`moetb validate --list`)."""
    return _moetb.scenarios()
