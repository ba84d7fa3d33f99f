"""scripts/export_hf_routing.py as a tool: bounded shards, resume by shard with
byte-identical output, one-line errors on bad input, and the real reader: when
MOETB_BINARY names the moetb binary, `moetb metrics DIR --json` must accept each export
(format v1, ../shared/spec/trace-format.md) and report its layers, experts and tokens.
"""
import json
import os
import subprocess
import unittest

import numpy as np

import helpers

try:
    import transformers  # noqa: F401
    HAVE_TRANSFORMERS = True
except ImportError:
    HAVE_TRANSFORMERS = False


def load_state(out):
    with open(os.path.join(out, "export-state.json")) as f:
        return json.load(f)


def make_data(test, records=helpers.RECORDS):
    tmp = helpers.temp_dir(test)
    return tmp, helpers.write_jsonl(os.path.join(tmp, "data.jsonl"), records)


class Shards(unittest.TestCase):
    def test_shards_are_bounded_whole_sequences_with_equal_metadata(self):
        tmp, data = make_data(self)
        out = os.path.join(tmp, "trace")
        rc, err = helpers.run_inprocess(helpers.factory_args("mixtral", data, out, "--seq-len", "16",
                                                             "--shard-tokens", "40", "--batch-size", "2"))
        self.assertEqual(rc, 0, err)
        shards = helpers.read_trace(out)
        self.assertEqual([os.path.basename(f) for f in helpers.shard_files(out)],
                         ["trace-%05d.safetensors" % i for i in range(len(shards))])
        self.assertGreater(len(shards), 3)
        for tensors, meta in shards:
            self.assertLessEqual(len(tensors["token_ids"]), 40)
            self.assertEqual(tensors["positions"][0], 0)  # a shard starts a sequence
            self.assertLessEqual(max(helpers.sequence_lengths(tensors["positions"])), 16)
            self.assertEqual(meta, shards[0][1])
        state = load_state(out)
        self.assertTrue(state["finished"])
        self.assertEqual(len(state["shards"]), len(shards))

    def test_max_tokens_per_domain(self):
        tmp, data = make_data(self)
        out = os.path.join(tmp, "trace")
        rc, err = helpers.run_inprocess(helpers.factory_args("olmoe", data, out, "--seq-len", "16",
                                                             "--max-tokens-per-domain", "20"))
        self.assertEqual(rc, 0, err)
        domains = np.concatenate([t["domain_ids"] for t, _ in helpers.read_trace(out)])
        counts = {d: int((domains == d).sum()) for d in set(domains.tolist())}
        self.assertEqual(counts, {-1: 17, 0: 20, 1: 20, 2: 20})


class Resume(unittest.TestCase):
    def args(self, data, out, *extra):
        return helpers.factory_args("deepseek_v3", data, out, "--seq-len", "16", "--shard-tokens", "40",
                                    "--batch-size", "2", "--probs", "bf16", *extra)

    def test_resume_after_a_stop_is_byte_identical(self):
        tmp, data = make_data(self)
        whole, parts = os.path.join(tmp, "whole"), os.path.join(tmp, "parts")
        self.assertEqual(helpers.run_inprocess(self.args(data, whole))[0], 0)
        rc, err = helpers.run_inprocess(self.args(data, parts, "--stop-after-shards", "2"))
        self.assertEqual(rc, 0, err)
        self.assertIn("stopped after 2 shards", err)
        self.assertEqual(len(helpers.shard_files(parts)), 2)
        self.assertFalse(load_state(parts)["finished"])
        # A run killed while writing shard 2 leaves its temporary file behind.
        with open(os.path.join(parts, "trace-00002.safetensors.tmp-99999"), "wb") as f:
            f.write(b"half a shard")
        first = {f: os.stat(f).st_mtime_ns for f in helpers.shard_files(parts)}
        rc, err = helpers.run_inprocess(self.args(data, parts))
        self.assertEqual(rc, 0, err)
        self.assertEqual({f: os.stat(f).st_mtime_ns for f in helpers.shard_files(parts)[:2]}, first)  # kept
        names = sorted(os.listdir(whole))
        self.assertEqual(sorted(os.listdir(parts)), names)
        for name in names:
            if name.endswith(".safetensors"):
                with open(os.path.join(whole, name), "rb") as a, open(os.path.join(parts, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), name)
        rc, err = helpers.run_inprocess(self.args(data, parts))
        self.assertEqual(rc, 0)
        self.assertIn("already complete", err)

    def test_resume_with_other_inputs_or_options_is_refused(self):
        tmp, data = make_data(self)
        out = os.path.join(tmp, "trace")
        self.assertEqual(helpers.run_inprocess(self.args(data, out, "--stop-after-shards", "1"))[0], 0)
        rc, err = helpers.run_inprocess(self.args(data, out, "--batch-size", "4"))
        self.assertEqual(rc, 2)
        self.assertIn("batch_size", err)
        self.assertEqual(len(err.strip().splitlines()), 1)
        helpers.write_jsonl(data, helpers.RECORDS[:-1])
        rc, err = helpers.run_inprocess(self.args(data, out))
        self.assertEqual(rc, 2)
        self.assertIn("data_sha256", err)
        other = os.path.join(tmp, "other")
        os.makedirs(other)
        open(os.path.join(other, "x.safetensors"), "w").close()
        rc, err = helpers.run_inprocess(self.args(data, other))
        self.assertEqual(rc, 2)
        self.assertIn("no export-state.json", err)


class BadInput(unittest.TestCase):
    def check_error(self, rc, err, *fragments):
        self.assertEqual(rc, 2, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("export_hf_routing: error: "), err)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def test_one_line_errors(self):
        tmp, data = make_data(self)
        out = os.path.join(tmp, "out")
        cases = [
            (["not json"], "data.jsonl:1: not valid JSON"),
            ([helpers.RECORDS[0], helpers.RECORDS[1], '{"domain": "code", "text": "x"'], "data.jsonl:3: not valid JSON"),
            ([helpers.RECORDS[0], {"domian": "code", "text": "x"}], "data.jsonl:2: no 'domain' key"),
            ([{"domain": "code", "text": "x", "ids": [1]}], "data.jsonl:1: a record needs exactly one of"),
            ([{"domain": 3, "text": "x"}], "data.jsonl:1: 'domain' must be a string or null"),
            ([{"domain": "code", "ids": [1, -2]}], "data.jsonl:1: 'ids' must be a list of token ids"),
            (["[1, 2]"], "data.jsonl:1: a record must be a JSON object"),
        ]
        for records, message in cases:
            with self.subTest(message=message):
                helpers.write_jsonl(data, records)
                rc, err = helpers.run_inprocess(helpers.factory_args("mixtral", data, out))
                self.check_error(rc, err, message)
                self.assertFalse(os.path.exists(out), "nothing is written for bad input")
        helpers.write_jsonl(data, helpers.RECORDS)
        rc, err = helpers.run_inprocess(helpers.factory_args("mixtral", data, out, "--domains", "code,math"))
        self.check_error(rc, err, "data.jsonl:6:", "domain 'prose' is not one of --domains")
        rc, err = helpers.run_inprocess(helpers.factory_args("mixtral", os.path.join(tmp, "missing.jsonl"), out))
        self.check_error(rc, err, "missing.jsonl: no such file")
        if not HAVE_TRANSFORMERS:
            rc, err = helpers.run_inprocess(["org/some-moe", data, "--out", out])
            self.check_error(rc, err, "transformers is not installed")

    def test_command_line_exit_status(self):
        tmp, data = make_data(self, [helpers.RECORDS[0], "{oops"])
        rc, err = helpers.run_subprocess(helpers.factory_args("mixtral", data, os.path.join(tmp, "out")))
        self.check_error(rc, err, "data.jsonl:2: not valid JSON")


@unittest.skipUnless(os.environ.get("MOETB_BINARY"), "MOETB_BINARY is not set (ctest sets it)")
class MoetbReadsTheExport(unittest.TestCase):
    def test_moetb_metrics_reads_every_family(self):
        tmp, data = make_data(self)
        for name, layers, experts, top_k, extra in (
                ("qwen3_moe", 2, 8, 2, ["--weights", "f16"]),
                ("deepseek_v3", 2, 16, 4, ["--weights", "bf16", "--probs", "f16"]),
                ("gpt_oss", 3, 8, 3, ["--weights", "none", "--probs", "f32"]),
                ("glm4_moe", 2, 16, 4, ["--weights", "f32", "--probs", "bf16"])):
            with self.subTest(family=name):
                out = os.path.join(tmp, name)
                rc, err = helpers.run_inprocess(helpers.factory_args(name, data, out, "--seq-len", "16",
                                                                     "--shard-tokens", "40", *extra))
                self.assertEqual(rc, 0, err)
                tokens = sum(len(t["token_ids"]) for t, _ in helpers.read_trace(out))
                p = subprocess.run([os.environ["MOETB_BINARY"], "metrics", out, "--json"],
                                   capture_output=True, text=True, timeout=120)
                self.assertEqual(p.returncode, 0, p.stderr)
                trace = json.loads(p.stdout)["trace"]
                self.assertEqual(trace["layers"], layers)
                self.assertEqual(trace["num_experts"], experts)
                self.assertEqual(trace["top_k"], top_k)
                self.assertEqual(trace["tokens"], tokens)
                self.assertEqual(trace["domains"], ["code", "math", "prose"])


if __name__ == "__main__":
    unittest.main()
