"""scripts/export_hf_routing.py computing the metrics in-process with the moetb module
(docs/python.md): per shard (trace-NNNNN.metrics.json, from the arrays in memory) and
in total (metrics.json), equal to `moetb metrics --json` on the written shards and on the
whole export; --metrics off writes none. Needs the module on PYTHONPATH (ctest puts it
there and sets MOETB_REQUIRE_MODULE when it was built for this python3)."""
import json
import os
import subprocess
import sys
import unittest

import helpers

try:
    import moetb  # noqa: F401
    HAVE_MODULE = True
except ImportError:
    HAVE_MODULE = False


def cli_metrics(path):
    p = subprocess.run([os.environ["MOETB_BINARY"], "metrics", path, "--json"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def load(path):
    with open(path) as f:
        return json.load(f)


@unittest.skipUnless(os.environ.get("MOETB_BINARY"), "MOETB_BINARY is not set (ctest sets it)")
class InProcessMetrics(unittest.TestCase):
    def setUp(self):
        if not HAVE_MODULE:
            if os.environ.get("MOETB_REQUIRE_MODULE"):
                self.fail("the moetb module is built for this python3 but does not import")
            self.skipTest("the moetb module is not importable")

    def test_per_shard_and_total_equal_the_cli(self):
        tmp = helpers.temp_dir(self)
        data = helpers.write_jsonl(os.path.join(tmp, "data.jsonl"), helpers.RECORDS)
        for name, extra in (("qwen3_moe", []), ("deepseek_v3", ["--weights", "bf16"]), ("gpt_oss", ["--batch-size", "1"])):
            with self.subTest(family=name):
                out = os.path.join(tmp, name)
                rc, err = helpers.run_inprocess(helpers.factory_args(name, data, out, "--seq-len", "16",
                                                                     "--shard-tokens", "40", *extra))
                self.assertEqual(rc, 0, err)
                self.assertIn("metrics (moetb ", err)
                shards = helpers.shard_files(out)
                self.assertGreater(len(shards), 2)
                for shard in shards:
                    doc = load(shard[:-len(".safetensors")] + ".metrics.json")
                    self.assertEqual(doc, cli_metrics(shard), shard)
                total = load(os.path.join(out, "metrics.json"))
                self.assertEqual(total, cli_metrics(out))
                self.assertEqual(total["trace"]["domains"], ["code", "math", "prose"])
                self.assertIsNotNone(total["summary"]["rs"])
        os.remove(os.path.join(out, "metrics.json"))  # lost after the export finished: a rerun writes it again
        rc, err = helpers.run_inprocess(helpers.factory_args(name, data, out, "--seq-len", "16", "--shard-tokens",
                                                             "40", *extra))
        self.assertEqual(rc, 0, err)
        self.assertIn("already complete", err)
        self.assertEqual(load(os.path.join(out, "metrics.json")), total)

    def test_metrics_on_without_the_module_is_an_error(self):
        tmp = helpers.temp_dir(self)
        data = helpers.write_jsonl(os.path.join(tmp, "data.jsonl"), helpers.RECORDS)
        env = dict(os.environ, PYTHONPATH=helpers.HERE, PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
        p = subprocess.run([sys.executable, helpers.SCRIPT, *helpers.factory_args("mixtral", data, os.path.join(
            tmp, "out"), "--metrics", "on")], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--metrics on: cannot import the moetb module", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_metrics_off(self):
        tmp = helpers.temp_dir(self)
        data = helpers.write_jsonl(os.path.join(tmp, "data.jsonl"), helpers.RECORDS)
        out = os.path.join(tmp, "trace")
        rc, err = helpers.run_inprocess(helpers.factory_args("mixtral", data, out, "--metrics", "off"))
        self.assertEqual(rc, 0, err)
        self.assertEqual([f for f in os.listdir(out) if f.endswith(".json")], ["export-state.json"])


if __name__ == "__main__":
    unittest.main()
