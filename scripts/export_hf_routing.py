#!/usr/bin/env python3
"""Export the routing of a Hugging Face MoE checkpoint as a moetb routing trace.

Runs the model over a JSONL corpus of {"domain": ..., "text": ...} records (or
{"domain": ..., "ids": [...]} with token ids) and writes, for every MoE layer, the
experts each real token was routed to and their combine weights (optionally the full
router distribution) as safetensors shards in the routing trace format v1
(../shared/spec/trace-format.md, guide: docs/trace-format.md), ready for
`moetb metrics DIR`. Shards are written atomically as the export goes, so memory stays
bounded and a killed export resumes from its last complete shard. How the routing is
captured for each family and which traps that avoids: moetb_export/capture.py and
moetb_export/families.py; how to use the result: docs/large-checkpoints.md.

Imports only the standard library, torch and numpy; `transformers` is imported when a
real checkpoint is loaded. Where the moetb Python module is importable (docs/python.md),
the metrics are also computed in-process: trace-NNNNN.metrics.json per shard and
metrics.json for the whole trace, the same documents `moetb metrics --json` prints.
"""
import argparse
import glob
import hashlib
import importlib
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from moetb_export import capture, families, safetensors_io  # noqa: E402

STATE_FILE = "export-state.json"
STATE_FORMAT = "moetb-hf-export-state/1"
SHARD_NAME = "trace-%05d.safetensors"
DTYPE_NAMES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


class ExportError(Exception):
    """A problem with the inputs or the output directory; printed as one line."""


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="export_hf_routing.py",
        description="Export the expert routing of a Hugging Face MoE model as a moetb trace (format v1).")
    p.add_argument("model", help="Hugging Face model id or local path (with --factory: a name passed to it)")
    p.add_argument("data", help="JSONL file, one record per line: {\"domain\": name or null, \"text\": str} "
                                "or {\"domain\": ..., \"ids\": [token ids]}")
    p.add_argument("--out", required=True, help="output directory of trace shards (created; resumed if it holds a "
                                                "partial export with the same inputs and options)")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default 8)")
    p.add_argument("--seq-len", type=int, default=1024, help="longer texts are cut into sequences of this many "
                                                             "tokens (default 1024)")
    p.add_argument("--max-tokens-per-domain", type=int, default=0, help="stop taking text from a domain after this "
                                                                        "many tokens (0 = no limit)")
    p.add_argument("--domains", default="", help="comma-separated domain names in id order (default: order of first "
                                                 "appearance); a record of another domain is an error")
    p.add_argument("--domain-key", default="domain", help="JSON key of the domain (default 'domain')")
    p.add_argument("--text-key", default="text", help="JSON key of the text (default 'text')")
    p.add_argument("--ids-key", default="ids", help="JSON key of pre-tokenised ids (default 'ids')")
    p.add_argument("--shard-tokens", type=int, default=262144, help="at most this many tokens per shard, whole "
                                                                    "sequences only (default 262144)")
    p.add_argument("--weights", choices=["f32", "f16", "bf16", "none"], default="f16",
                   help="dtype of the combine weights, or none (default f16)")
    p.add_argument("--probs", choices=["f32", "f16", "bf16", "none"], default="none",
                   help="also store the full router distribution [T, E] per layer (large; default none)")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], default="auto",
                   help="model dtype (default: the checkpoint's)")
    p.add_argument("--device", default=None, help="device for the whole model, e.g. cuda, cuda:1, cpu (default: "
                                                  "cuda if available)")
    p.add_argument("--device-map", default=None, help="transformers device_map, e.g. auto, to spread a large model "
                                                      "over several GPUs (replaces --device)")
    p.add_argument("--trust-remote-code", action="store_true", help="pass trust_remote_code=True to transformers")
    p.add_argument("--factory", default=None, help="MODULE:FUNCTION returning (model, tokenizer) for the name given "
                                                   "as MODEL, instead of transformers (tests, custom code)")
    p.add_argument("--stop-after-shards", type=int, default=0, help="stop after writing this many shards in this "
                                                                    "run; run again to resume (0 = run to the end)")
    p.add_argument("--metrics", choices=["auto", "on", "off"], default="auto",
                   help="compute the metrics in-process with the moetb module (trace-NNNNN.metrics.json per shard, "
                        "metrics.json in total): auto = when `import moetb` works (default), on = required")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args(argv)
    for name in ("batch_size", "seq_len", "shard_tokens"):
        if getattr(args, name) <= 0:
            p.error("--%s must be positive" % name.replace("_", "-"))
    if args.max_tokens_per_domain < 0 or args.stop_after_shards < 0:
        p.error("--max-tokens-per-domain and --stop-after-shards must not be negative")
    if args.seq_len > args.shard_tokens:
        p.error("--seq-len must not exceed --shard-tokens (a shard holds whole sequences)")
    return args


# ------------------------------------------------------------------ input

def parse_record(raw, path, line_no, args):
    """(domain or None, text or None, ids or None) of one JSONL line; None for a blank line."""
    where = "%s:%d" % (path, line_no)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ExportError(where + ": not valid UTF-8")
    if not text:
        return None
    try:
        rec = json.loads(text)
    except ValueError as e:
        raise ExportError("%s: not valid JSON (%s)" % (where, getattr(e, "msg", e)))
    if not isinstance(rec, dict):
        raise ExportError(where + ": a record must be a JSON object")
    if args.domain_key not in rec:
        raise ExportError("%s: no '%s' key (keys: %s; see --domain-key)"
                          % (where, args.domain_key, ", ".join(sorted(rec)) or "none"))
    domain = rec[args.domain_key]
    if domain is not None and not isinstance(domain, str):
        raise ExportError("%s: '%s' must be a string or null" % (where, args.domain_key))
    has_text, has_ids = args.text_key in rec, args.ids_key in rec
    if has_text == has_ids:
        raise ExportError("%s: a record needs exactly one of '%s' and '%s'" % (where, args.text_key, args.ids_key))
    if has_text:
        if not isinstance(rec[args.text_key], str):
            raise ExportError("%s: '%s' must be a string" % (where, args.text_key))
        return domain, rec[args.text_key], None
    ids = rec[args.ids_key]
    if not isinstance(ids, list) or not all(type(i) is int and 0 <= i < 2 ** 31 for i in ids):
        raise ExportError("%s: '%s' must be a list of token ids in [0, 2^31)" % (where, args.ids_key))
    return domain, None, ids


def scan_data(args):
    """Checks every line before any model is loaded. Returns (domain names, sha256, records)."""
    if not os.path.isfile(args.data):
        raise ExportError("%s: no such file" % args.data)
    fixed = [d.strip() for d in args.domains.split(",") if d.strip()]
    if len(set(fixed)) != len(fixed):
        raise ExportError("--domains lists a name twice")
    names, sha, n = list(fixed), hashlib.sha256(), 0
    with open(args.data, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            sha.update(raw)
            rec = parse_record(raw, args.data, line_no, args)
            if rec is None:
                continue
            n += 1
            if rec[0] is not None and rec[0] not in names:
                if fixed:
                    raise ExportError("%s:%d: domain '%s' is not one of --domains" % (args.data, line_no, rec[0]))
                names.append(rec[0])
    if n == 0:
        raise ExportError("%s: holds no records" % args.data)
    if len(names) > 1024:
        raise ExportError("%s: %d domains, more than the 1024 moetb accepts" % (args.data, len(names)))
    return names, sha.hexdigest(), n


def sequences(args, names, tokenize, progress):
    """Yields (domain id, token ids) in file order: texts cut into --seq-len pieces,
    each domain cut off at --max-tokens-per-domain."""
    index = {name: i for i, name in enumerate(names)}
    used, budget = {}, args.max_tokens_per_domain
    with open(args.data, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            rec = parse_record(raw, args.data, line_no, args)
            if rec is None:
                continue
            progress.record_done()
            domain = -1 if rec[0] is None else index[rec[0]]
            if budget and used.get(domain, 0) >= budget:
                continue
            ids = rec[2] if rec[2] is not None else tokenize(rec[1])
            for start in range(0, len(ids), args.seq_len):
                piece = ids[start:start + args.seq_len]
                if budget:
                    piece = piece[:budget - used.get(domain, 0)]
                if not piece:
                    break
                used[domain] = used.get(domain, 0) + len(piece)
                yield domain, piece


def pack_shards(seqs, shard_tokens):
    """Groups sequences into shards of at most shard_tokens tokens (whole sequences)."""
    shard, n = [], 0
    for seq in seqs:
        if shard and n + len(seq[1]) > shard_tokens:
            yield shard
            shard, n = [], 0
        shard.append(seq)
        n += len(seq[1])
    if shard:
        yield shard


# ------------------------------------------------------------------ model

def load_model(args):
    """(model, tokenize function, pad id) from --factory or transformers."""
    if args.factory:
        module_name, _, func = args.factory.partition(":")
        try:
            model, tokenizer = getattr(importlib.import_module(module_name), func)(args.model, args.dtype)
        except (ImportError, AttributeError) as e:
            raise ExportError("--factory %s: %s" % (args.factory, e))
    else:
        try:
            import transformers
        except ImportError:
            raise ExportError("transformers is not installed (pip install transformers); it is needed to load %s"
                              % args.model)
        dtype = {"auto": "auto", "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
        version = tuple(int(x) for x in transformers.__version__.split(".")[:2] if x.isdigit())
        kwargs = {"trust_remote_code": args.trust_remote_code,
                  ("dtype" if version >= (4, 56) else "torch_dtype"): dtype[args.dtype]}
        if args.device_map:
            kwargs["device_map"] = args.device_map
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(args.model, **kwargs)
            tokenizer = transformers.AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
        except (OSError, ValueError, ImportError) as e:
            raise ExportError("cannot load %s: %s" % (args.model, (str(e).splitlines() or [type(e).__name__])[0]))
    if not args.device_map:
        model.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval()
    encode = getattr(tokenizer, "encode", tokenizer)

    def tokenize(text):
        ids = encode(text)
        return list(ids["input_ids"] if isinstance(ids, dict) else ids)

    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return model, tokenize, int(pad or 0)


def model_body(model):
    """The decoder stack without the LM head (skips a [B, S, vocab] logits tensor)."""
    body = getattr(model, "model", None)
    return body if isinstance(body, torch.nn.Module) else model


def input_device(body):
    embed = body.get_input_embeddings() if hasattr(body, "get_input_embeddings") else None
    param = getattr(embed, "weight", None) if embed is not None else None
    return param.device if param is not None else next(body.parameters()).device


# ------------------------------------------------------------------ output

class Progress:
    """One refreshed line on a terminal, one line per shard otherwise."""

    def __init__(self, n_records, quiet):
        self.n_records, self.records, self.tokens, self.quiet = n_records, 0, 0, quiet
        self.tty, self.start = sys.stderr.isatty(), time.time()

    def record_done(self):
        self.records += 1

    def show(self, shard, tokens):
        self.tokens += tokens
        if self.quiet:
            return
        width, frac = 30, self.records / max(self.n_records, 1)
        bar = "#" * int(width * frac) + "." * (width - int(width * frac))
        rate = self.tokens / max(time.time() - self.start, 1e-9)
        line = "[%s] records %d/%d  shard %d  %d tokens  %.0f tok/s" % (
            bar, self.records, self.n_records, shard, self.tokens, rate)
        sys.stderr.write("\r" + line if self.tty else line + "\n")
        sys.stderr.flush()

    def note(self, text):
        if not self.quiet:
            sys.stderr.write(("\n" if self.tty else "") + "export_hf_routing: " + text + "\n")


def load_state(out, fingerprint):
    """(complete shards as listed in the state file, finished); ([], False) for a new export."""
    path = os.path.join(out, STATE_FILE)
    if not os.path.exists(path):
        if glob.glob(os.path.join(out, "*.safetensors")):
            raise ExportError("%s holds trace shards but no %s; use an empty --out" % (out, STATE_FILE))
        return [], False
    try:
        with open(path) as f:
            state = json.load(f)
        assert state["format"] == STATE_FORMAT
    except (ValueError, KeyError, AssertionError):
        raise ExportError("%s: not a state file of this exporter" % path)
    if state["options"] != fingerprint:
        keys = sorted(set(state["options"]) | set(fingerprint))
        diff = [k for k in keys if state["options"].get(k) != fingerprint.get(k)]
        raise ExportError("%s was started with other inputs or options (%s differ); resume with the same ones or "
                          "use another --out" % (out, ", ".join(diff)))
    for i, shard in enumerate(state["shards"]):
        file = os.path.join(out, SHARD_NAME % i)
        if not os.path.isfile(file) or os.path.getsize(file) != shard["bytes"]:
            raise ExportError("%s is missing or changed since it was written; remove %s to start again" % (file, out))
    return state["shards"], state["finished"]


def save_state(out, fingerprint, shards, finished):
    path = os.path.join(out, STATE_FILE)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump({"format": STATE_FORMAT, "options": fingerprint, "shards": shards, "finished": finished},
                  f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_shard(body, taps, seqs, batch_size, pad_id, device):
    """Routing of one shard's sequences: (token ids, positions, domains, [(experts, weights, probs)])."""
    layers = [([], [], []) for _ in taps]
    for b in range(0, len(seqs), batch_size):
        batch = [s[1] for s in seqs[b:b + batch_size]]
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):  # right padding; padded tokens are dropped below
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1
        for tap in taps:
            tap.reset()
        with torch.no_grad():
            body(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
        keep = mask.reshape(-1).bool()
        for tap, (ex, w, pr) in zip(taps, layers):
            e, wt, p = tap.take(keep)
            ex.append(e)
            w.append(wt)
            pr.append(p)
    token_ids = np.concatenate([np.asarray(s[1], dtype=np.int64) for s in seqs])
    positions = np.concatenate([np.arange(len(s[1])) for s in seqs])
    domains = np.concatenate([np.full(len(s[1]), s[0]) for s in seqs])
    out = []
    for ex, w, pr in layers:
        if len({e.shape[1] for e in ex}) != 1:
            raise ExportError("the number of routed experts per token changed between batches")
        out.append((torch.cat(ex).numpy(), torch.cat(w).numpy(), None if pr[0] is None else torch.cat(pr).numpy()))
    return token_ids, positions, domains, out


def shard_tensors(token_ids, positions, domains, layers, experts_dtype, weights_dtype, probs_dtype):
    tensors = [("token_ids", "I32", token_ids), ("positions", "I32", positions), ("domain_ids", "I32", domains)]
    for l, (experts, weights, probs) in enumerate(layers):
        tensors.append(("layers.%d.experts" % l, experts_dtype, experts))
        if weights_dtype:
            tensors.append(("layers.%d.weights" % l, weights_dtype, weights))
        if probs_dtype:
            tensors.append(("layers.%d.probs" % l, probs_dtype, probs))
    return tensors


def import_moetb(mode):
    """The moetb module for --metrics, or None."""
    if mode == "off":
        return None
    try:
        import moetb
        return moetb
    except ImportError as e:
        if mode == "on":
            raise ExportError("--metrics on: cannot import the moetb module (%s); put its build folder on "
                              "PYTHONPATH, see docs/python.md" % e)
        return None


def write_json(path, doc):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def shard_metrics(moetb, token_ids, positions, domains, layers, n_experts, top_k, names):
    """moetb metrics of one shard's arrays, as `moetb metrics SHARD --json` gives them."""
    return moetb.metrics([experts for experts, _, _ in layers], domain_ids=domains, token_ids=token_ids,
                         positions=positions, n_experts=n_experts, top_k=top_k, domain_names=names)


def summary_line(doc):
    s = doc["summary"]
    fmt = lambda v: "-" if v is None else "%.3f" % v  # noqa: E731
    return "rs %s, rs_mm %s, di %s, ner %s, rss %s, ne.2 %s, load.cv %s" % (
        fmt(s.get("rs")), fmt(s.get("rs_mm")), fmt(s.get("di")), fmt(s.get("ner")), fmt(s.get("rss")),
        fmt(s.get("ne", {}).get("2")), fmt(s.get("load", {}).get("cv")))


def write_total_metrics(moetb, out, progress):
    """metrics.json of the whole trace, streamed from the shards as `moetb metrics DIR` reads them."""
    doc = moetb.metrics(out)
    write_json(os.path.join(out, "metrics.json"), doc)
    progress.note("metrics (moetb %s): %s; per shard and in total in %s/*.metrics.json, metrics.json"
                  % (moetb.git_revision, summary_line(doc), out))


def export(args):
    moetb = import_moetb(args.metrics)
    names, data_sha, n_records = scan_data(args)
    fingerprint = {"model": args.model, "factory": args.factory, "data_sha256": data_sha, "domains": names,
                   "domain_key": args.domain_key, "text_key": args.text_key, "ids_key": args.ids_key,
                   "batch_size": args.batch_size, "seq_len": args.seq_len, "dtype": args.dtype,
                   "max_tokens_per_domain": args.max_tokens_per_domain, "shard_tokens": args.shard_tokens,
                   "weights": args.weights, "probs": args.probs}
    os.makedirs(args.out, exist_ok=True)
    shards, finished = load_state(args.out, fingerprint)
    done = len(shards)
    progress = Progress(n_records, args.quiet)
    if finished:
        progress.note("%s is already complete" % args.out)
        if moetb is not None and not os.path.exists(os.path.join(args.out, "metrics.json")):
            write_total_metrics(moetb, args.out, progress)
        return 0
    for stale in glob.glob(os.path.join(args.out, "*.tmp-*")):  # left by a killed run
        os.remove(stale)

    model, tokenize, pad_id = load_model(args)
    config = model.config
    family, known = families.family_of(config)
    if not known:
        progress.note("model_type '%s' is not a known family; using the generic router hooks (softmax top-k "
                      "where only logits are seen)" % getattr(config, "model_type", "?"))
    blocks = capture.find_moe_blocks(model)
    if not blocks:
        raise ExportError("%s: found no MoE block (a module with 'experts' and a 'gate' or 'router')" % args.model)
    taps = [capture.LayerTap(name, index, block, config, family, args.probs != "none")
            for name, index, block in blocks]
    n_experts = taps[0].num_experts
    metadata = {"format": "moe-routing-trace/1", "num_experts": str(n_experts),
                "domain_names": json.dumps(names), "model": args.model, "source": "hf-export",
                "hf_model_type": str(getattr(config, "model_type", "")),
                "hf_layers": json.dumps([t.layer_index for t in taps])}
    experts_dtype = "I16" if n_experts <= 32767 else "I32"
    body = model_body(model)
    device = input_device(body)
    written = 0
    try:
        for i, seqs in enumerate(pack_shards(sequences(args, names, tokenize, progress), args.shard_tokens)):
            if i < done:
                continue
            if args.stop_after_shards and written == args.stop_after_shards:
                progress.note("stopped after %d shards; run the same command again to resume" % written)
                return 0
            token_ids, positions, domains, layers = run_shard(body, taps, seqs, args.batch_size, pad_id, device)
            if i == done:  # nominal k from the config, else the k the first layer routed with
                metadata["top_k"] = str(taps[0].top_k or layers[0][0].shape[1])
                progress.note("%d MoE layers (decoder layers %s), %d experts, top-%s; routing from the %s%s" % (
                    len(taps), metadata["hf_layers"], n_experts, metadata["top_k"], taps[0].method,
                    "; the router's 'logits' are probabilities (row sums 1), used as such"
                    if taps[0].router_gave_probs else ""))
            path = os.path.join(args.out, SHARD_NAME % i)
            safetensors_io.write_file(path, shard_tensors(
                token_ids, positions, domains, layers, experts_dtype, DTYPE_NAMES.get(args.weights),
                DTYPE_NAMES.get(args.probs)), metadata)
            if moetb is not None:  # from the arrays in memory, before the shard counts as done
                write_json(path[:-len(".safetensors")] + ".metrics.json", shard_metrics(
                    moetb, token_ids, positions, domains, layers, n_experts, int(metadata["top_k"]), names))
            shards.append({"bytes": os.path.getsize(path), "tokens": int(len(token_ids))})
            save_state(args.out, fingerprint, shards, finished=False)
            written += 1
            progress.show(i, len(token_ids))
    finally:
        for tap in taps:
            tap.remove()
    if not shards:
        raise ExportError("%s: no tokens to export" % args.data)
    save_state(args.out, fingerprint, shards, finished=True)
    progress.note("wrote %d shards to %s" % (len(shards), args.out))
    if moetb is not None:
        write_total_metrics(moetb, args.out, progress)
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return export(args)
    except (ExportError, capture.CaptureError, OSError, ValueError) as e:
        sys.stderr.write("export_hf_routing: error: %s\n" % str(e).replace("\n", " "))
        return 2


if __name__ == "__main__":
    sys.exit(main())
