"""The `import moetb` module against the moetb binary on the same traces: metrics, paths,
compare and validate give exactly the documents the CLI prints (metrics.md), whether
the module reads the files, arrays read back from them, or arrays in other dtypes and
layouts; write_trace writes traces the CLI reads to the same numbers; simulate matches
`moetb simulate` byte for byte."""
import os
import unittest

import numpy as np

import module_helpers as h
import moetb

# (name, moetb simulate options): labelled and unlabelled tokens, Zipf load, stiffness,
# span coherence, I32 ids, shards, reference groups in the metadata (every simulated trace).
TRACES = [
    ("plain", ["-T", "3000", "-L", "3", "-E", "32", "-k", "2"]),
    ("zipf", ["-T", "2500", "-L", "2", "-E", "64", "-k", "4", "--load-profile", "zipf", "--beta", "0.5",
              "--gamma", "0.4", "--unlabeled", "0.2", "--seq-len", "50", "--domain-names", "code,math,prose,law"]),
    ("i32-shards", ["-T", "2000", "-L", "2", "-E", "16", "-k", "3", "--expert-dtype", "I32", "--shard-tokens",
                    "700", "-D", "3", "--alpha", "0.3,0.9", "--weights", "F16"]),
]


@unittest.skipUnless(h.BINARY, "MOETB_BINARY is not set (ctest sets it)")
class SameNumbersAsTheCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._tmp = tempfile.TemporaryDirectory(prefix="moetb-module-test-")
        cls.paths = {}
        for name, options in TRACES:
            path = os.path.join(cls._tmp.name, name + ("" if "--shard-tokens" in options else ".safetensors"))
            h.cli("simulate", "--out", path, *options)
            cls.paths[name] = path

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_metrics_on_files_and_arrays(self):
        for name, path in self.paths.items():
            with self.subTest(trace=name):
                expected = h.cli_json("metrics", path, "--json")
                self.assertEqual(moetb.metrics(path), expected)
                trace = moetb.read_trace(path)
                self.assertEqual(moetb.metrics(trace), expected)
                # int64 [L, T, K] (as torch.topk gives), converted; int16 views of a stacked array
                stacked = np.stack([e.astype(np.int64) for e in trace["experts"]])
                kwargs = dict(domain_ids=trace["domain_ids"], token_ids=trace["token_ids"],
                              positions=trace["positions"], n_experts=trace["n_experts"], top_k=trace["top_k"],
                              domain_names=trace["domain_names"], reference_groups=trace["reference_groups"])
                self.assertEqual(moetb.metrics(stacked, **kwargs), expected)
                self.assertEqual(moetb.metrics(stacked.astype(np.int16), **kwargs), expected)
                # a list per layer of non-contiguous views ([T, K] slices of a wider array)
                wide = [np.concatenate([e, e], axis=1)[:, :e.shape[1]] for e in trace["experts"]]
                self.assertFalse(wide[0].flags["C_CONTIGUOUS"])
                self.assertEqual(moetb.metrics(wide, **kwargs), expected)
                self.assertEqual(moetb.metrics(trace, threads=1), expected)

    def test_options_match_the_cli_flags(self):
        path = self.paths["zipf"]
        groups = "[[0,1,2,3],[4,5],[6],[7,8,9]]"
        expected = h.cli_json("metrics", path, "--json", "--layers", "1", "--reference", groups, "--groups", "4")
        trace = moetb.read_trace(path)
        self.assertEqual(moetb.metrics(trace, layers=[1], reference_groups=groups, groups=4), expected)
        self.assertEqual(moetb.metrics(path, layers="1", reference_groups=[[0, 1, 2, 3], [4, 5], [6], [7, 8, 9]],
                                       groups=4), expected)

    def test_paths_compare_validate(self):
        path = self.paths["plain"]
        self.assertEqual(moetb.paths(path, tau=0.7), h.cli_json("paths", path, "--tau", "0.7"))
        self.assertEqual(moetb.paths(moetb.read_trace(path), tau=0.7), h.cli_json("paths", path, "--tau", "0.7"))
        other = os.path.join(h.temp_dir(self), "b.safetensors")
        h.cli("simulate", "--out", other, "-T", "3000", "-L", "3", "-E", "32", "-k", "2", "--alpha", "0.5")
        expected = h.cli_json("compare", path, other, "--json", "--blocks", "8")
        self.assertEqual(moetb.compare(path, other, blocks=8), expected)
        self.assertEqual(moetb.compare(moetb.read_trace(path), moetb.read_trace(other), blocks=8), expected)
        got = moetb.validate(["oracle", "closed-form"])
        cli = h.cli_json("validate", "--json", "--scenario", "oracle", "--scenario", "closed-form")
        for key in ("checks", "passed", "failed", "format"):
            self.assertEqual(got[key], cli[key], key)
        self.assertEqual(got["failed"], 0)
        self.assertIn("oracle", [s["name"] for s in moetb.scenarios()])

    def test_write_trace_round_trip(self):
        trace = moetb.read_trace(self.paths["i32-shards"])
        self.assertEqual(trace["experts"][0].dtype, np.int32)
        self.assertEqual(len(trace["weights"]), 2)
        out = os.path.join(h.temp_dir(self), "written.safetensors")
        moetb.write_trace(out, trace, metadata={"note": "round trip"})
        expected = h.cli_json("metrics", self.paths["i32-shards"], "--json")
        self.assertEqual(h.cli_json("metrics", out, "--json"), expected)
        back = moetb.read_trace(out)
        self.assertEqual(back["metadata"]["note"], "round trip")
        self.assertEqual(back["experts"][0].dtype, np.int16)  # I16 by default for E <= 32767
        for a, b in zip(back["experts"], trace["experts"]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(back["weights"][1], trace["weights"][1])  # F16 both ways: exact
        # From plain arrays, with F32 probabilities; defaults: one sequence, unlabelled, token id 0.
        rng = np.random.default_rng(0)
        experts = np.argsort(rng.random((2, 500, 8)), axis=2)[:, :, :2]  # int64, distinct per token
        probs = [rng.random((500, 8)).astype(np.float32) for _ in range(2)]
        moetb.write_trace(out, experts, probs=probs, probs_dtype="F32", n_experts=8)
        self.assertEqual(h.cli_json("metrics", out, "--json"), moetb.metrics(experts, token_ids=np.zeros(500, np.int32),
                                                                           n_experts=8))
        np.testing.assert_array_equal(moetb.read_trace(out)["probs"][0], probs[0])

    def test_simulate_matches_the_cli(self):
        tmp = h.temp_dir(self)
        ours, theirs = os.path.join(tmp, "ours.safetensors"), os.path.join(tmp, "theirs.safetensors")
        moetb.simulate(ours, n_tokens=1500, n_layers=2, n_experts=16, top_k=2, gamma=0.3, weights="F16", seed=7)
        h.cli("simulate", "--out", theirs, "-T", "1500", "-L", "2", "-E", "16", "-k", "2", "--gamma", "0.3",
              "--weights", "F16", "--seed", "7")
        with open(ours, "rb") as a, open(theirs, "rb") as b:
            self.assertEqual(a.read(), b.read())
        memory = moetb.simulate(n_tokens=1500, n_layers=2, n_experts=16, top_k=2, gamma=0.3, seed=7)
        self.assertEqual(moetb.metrics(memory), h.cli_json("metrics", theirs, "--json"))


class WithoutTheCli(unittest.TestCase):
    def test_no_token_ids_means_no_rss(self):
        t = moetb.simulate(n_tokens=2000, n_layers=2, beta=0.8)
        full = moetb.metrics(t)
        self.assertIsNotNone(full["summary"]["rss"])
        bare = moetb.metrics(t["experts"], domain_ids=t["domain_ids"], positions=t["positions"], n_experts=64,
                             reference_groups=t["reference_groups"])
        self.assertIsNone(bare["summary"]["rss"])
        self.assertTrue(all(layer["rss"] is None for layer in bare["layers"]))
        self.assertEqual(bare["summary"]["rs"], full["summary"]["rs"])
        self.assertEqual(bare["trace"]["domains"], ["0", "1", "2", "3"])  # no names given: decimal ids

    def test_in_place_where_the_layout_allows(self):
        t = moetb.simulate(n_tokens=1000, n_layers=2)
        spec = {k: t[k] for k in ("experts", "token_ids", "positions", "domain_ids")}
        self.assertEqual(moetb._moetb.converted_bytes(spec, {}), 0)  # int32 rows, int32 token arrays
        spec["experts"] = [e.astype(np.int16) for e in t["experts"]]
        self.assertEqual(moetb._moetb.converted_bytes(spec, {}), 0)
        spec["experts"] = [e.astype(np.int64) for e in t["experts"]]
        self.assertEqual(moetb._moetb.converted_bytes(spec, {}), 2 * 1000 * 4 * 4)
        spec["experts"], spec["domain_ids"] = t["experts"], t["domain_ids"].astype(np.int64)
        self.assertEqual(moetb._moetb.converted_bytes(spec, {}), 1000 * 4)
        spec["domain_ids"] = t["domain_ids"]
        self.assertEqual(moetb._moetb.converted_bytes(spec, {"layers": [1]}), 0)

    def test_help_documents_every_argument(self):
        import inspect
        import re
        for fn in (moetb.metrics, moetb.paths, moetb.compare, moetb.read_trace, moetb.write_trace, moetb.simulate,
                   moetb.validate):
            for name in inspect.signature(fn).parameters:
                self.assertRegex(fn.__doc__, r"\n\s*(\w+, )*%s(, \w+)*:" % re.escape(name),
                                 "%s: %s is not documented" % (fn.__name__, name))

    def test_torch_is_not_imported(self):
        import subprocess
        import sys
        p = subprocess.run([sys.executable, "-c", "import moetb, sys; print('torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.stdout.strip(), "False", p.stderr)


if __name__ == "__main__":
    unittest.main()
