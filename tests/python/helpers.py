"""Shared helpers of the exporter tests: run scripts/export_hf_routing.py in-process or
as a subprocess, read a trace back (format v1, docs/trace-format.md), and rebuild what
the stand-in blocks selected for the tokens the export kept."""
import contextlib
import glob
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("MOETB_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(SOURCE_DIR, "scripts", "export_hf_routing.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "scripts"))

import numpy as np  # noqa: E402

from moetb_export import safetensors_io  # noqa: E402


def _load_exporter():
    spec = importlib.util.spec_from_file_location("export_hf_routing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


exporter = _load_exporter()

RECORDS = [
    {"domain": "code", "text": "def f(x): return x + 1  # a tiny function with a long tail of text"},
    {"domain": "math", "text": "the integral of x squared is x cubed over three"},
    {"domain": "code", "text": "for i in range(10): print(i)"},
    {"domain": None, "text": "unlabelled words"},
    {"domain": "math", "ids": [1, 5, 6, 7, 8, 9]},
    {"domain": "prose", "text": "It was a bright cold day in April, and the clocks were striking."},
]


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def run_inprocess(argv):
    """(exit code, stderr text) of exporter.main(argv)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = exporter.main(argv)
        except SystemExit as e:  # argparse errors
            rc = e.code
    return rc, err.getvalue()


def run_subprocess(argv):
    path = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)  # keeps the moetb module's
    env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, SCRIPT] + argv, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stderr


def factory_args(name, data, out, *extra):
    return [name, data, "--out", out, "--factory", "standins:build", "--device", "cpu", *extra]


def shard_files(out):
    return sorted(glob.glob(os.path.join(out, "*.safetensors")))


def read_trace(out):
    """[(tensors, metadata)] per shard, in name order."""
    return [safetensors_io.read_file(f) for f in shard_files(out)]


def concat_layer(shards, layer, what):
    return np.concatenate([t["layers.%d.%s" % (layer, what)] for t, _ in shards])


def sequence_lengths(positions):
    starts = list(np.flatnonzero(positions == 0)) + [len(positions)]
    return [int(b - a) for a, b in zip(starts[:-1], starts[1:])]


def expected_routing(blocks, shards, batch_size):
    """Per MoE block, (indices, weights, probs) of the tokens the export kept, taken from
    what each stand-in block logged, call by call, with the padding rows dropped.
    Rebuilds the exporter's batching from the shards (whole sequences, right padding)."""
    calls = [iter(b.truth) for b in blocks]
    out = [([], [], []) for _ in blocks]
    padded = 0
    for tensors, _ in shards:
        lengths = sequence_lengths(tensors["positions"])
        for b in range(0, len(lengths), batch_size):
            batch = lengths[b:b + batch_size]
            width = max(batch)
            keep = np.concatenate([np.arange(width) < n for n in batch])
            padded += int((~keep).sum())
            for layer, it in zip(out, calls):
                idx, w, probs = (t.numpy() for t in next(it))
                for acc, value in zip(layer, (idx, w, probs)):
                    acc.append(value.reshape(len(keep), -1)[keep])
    for it in calls:
        assert next(it, None) is None, "the stand-in ran more batches than the export holds"
    return [tuple(np.concatenate(v) for v in layer) for layer in out], padded


def by_expert(idx, w):
    """Rows sorted by expert id, so selections compare as sets with their weights."""
    order = np.argsort(idx, axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1), np.take_along_axis(w, order, 1)


def temp_dir(test):
    d = tempfile.TemporaryDirectory(prefix="moetb-export-test-")
    test.addCleanup(d.cleanup)
    return d.name
