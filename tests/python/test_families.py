"""The exporter records, for every supported MoE family, exactly the routing the model made.

Each stand-in (standins.py) reproduces one family's router conventions as transformers
implements them and logs its own selection; the export of each is compared with that
log, token by token, after dropping padding. Family-specific tests then show that each
known trap is handled: the row-sum check for router "logits" that are probabilities,
the bias-corrected selection of DeepSeek-V3 / GLM-4.5, group-limited routing, shared
experts, dense layers and padding. Trace format: docs/trace-format.md (spec v1).
"""
import json
import os
import unittest

import numpy as np
import torch

import helpers
import standins

BATCH = 3


def export_family(test, name, *extra):
    """Exports RECORDS with the stand-in `name`; returns (shards, stand-in model, out dir)."""
    tmp = helpers.temp_dir(test)
    data = helpers.write_jsonl(os.path.join(tmp, "data.jsonl"), helpers.RECORDS)
    out = os.path.join(tmp, "trace")
    rc, err = helpers.run_inprocess(helpers.factory_args(
        name, data, out, "--batch-size", str(BATCH), "--seq-len", "24", "--shard-tokens", "60",
        "--weights", "f32", "--probs", "f32", *extra))
    test.assertEqual(rc, 0, err)
    return helpers.read_trace(out), standins.LAST_MODEL[name], out


class EveryFamily(unittest.TestCase):
    def test_export_equals_what_each_stand_in_selected(self):
        tokenizer = standins.ByteTokenizer()
        real = []
        for r in helpers.RECORDS:  # what the export must hold, in order, without padding
            ids = r["ids"] if "ids" in r else tokenizer.encode(r["text"])
            real += [ids[i:i + 24] for i in range(0, len(ids), 24)]
        for name in standins.FAMILIES:
            with self.subTest(family=name):
                shards, model, _ = export_family(self, name)
                blocks = model.moe_blocks()
                expected, padded = helpers.expected_routing(blocks, shards, BATCH)
                self.assertGreater(padded, 0, "the batches should hold padding")
                meta = shards[0][1]
                self.assertEqual(meta["format"], "moe-routing-trace/1")
                self.assertEqual(meta["source"], "hf-export")
                self.assertEqual(meta["model"], name)
                self.assertEqual(json.loads(meta["domain_names"]), ["code", "math", "prose"])
                self.assertTrue(all(m == meta for _, m in shards), "shards must agree on metadata")
                token_ids = np.concatenate([t["token_ids"] for t, _ in shards])
                self.assertEqual(token_ids.tolist(), [i for seq in real for i in seq])  # padding absent
                self.assertNotIn(standins.ByteTokenizer.pad_token_id, token_ids.tolist())
                domains = np.concatenate([t["domain_ids"] for t, _ in shards])
                self.assertEqual(sorted(set(domains.tolist())), [-1, 0, 1, 2])
                self.assertEqual(sum(1 for k in shards[0][0] if k.endswith(".experts")), len(blocks))
                for layer, (idx, w, probs) in enumerate(expected):
                    got_idx = helpers.concat_layer(shards, layer, "experts")
                    got_w = helpers.concat_layer(shards, layer, "weights")
                    self.assertEqual(got_idx.dtype, np.int16)
                    self.assertEqual(got_idx.shape, idx.shape)
                    self.assertTrue(np.all(np.diff(got_w, axis=1) <= 0), "slots must be in weight order")
                    a_idx, a_w = helpers.by_expert(got_idx, got_w)
                    b_idx, b_w = helpers.by_expert(idx, w)
                    np.testing.assert_array_equal(a_idx, b_idx)
                    np.testing.assert_allclose(a_w, b_w, rtol=1e-6, atol=1e-7)
                    np.testing.assert_allclose(helpers.concat_layer(shards, layer, "probs"), probs,
                                               rtol=1e-5, atol=1e-7)


class Traps(unittest.TestCase):
    def test_router_logits_that_are_probabilities_are_detected_by_row_sums(self):
        # OLMoE-style block whose gate hands out softmax probabilities under the name
        # router_logits and selects on them directly, without renormalising the k weights.
        shards, model, _ = export_family(self, "olmoe-probs")
        expected, _ = helpers.expected_routing(model.moe_blocks(), shards, BATCH)
        idx, w, probs = expected[0]
        got_w = helpers.concat_layer(shards, 0, "weights")
        np.testing.assert_allclose(np.sort(got_w, 1), np.sort(w, 1), rtol=1e-6)
        np.testing.assert_allclose(helpers.concat_layer(shards, 0, "probs"), probs, rtol=1e-5, atol=1e-7)
        # Softmax over the probabilities again (the trap) would give other weights and distribution.
        twice = torch.softmax(torch.from_numpy(probs), dim=-1)
        wrong_w = torch.topk(twice, 2, dim=-1).values.numpy()
        self.assertGreater(np.abs(np.sort(wrong_w, 1) - np.sort(w, 1)).max(), 1e-2)
        # The Mixtral router of transformers 5 (before the fix) has the same trap; its probs too.
        shards, model, _ = export_family(self, "mixtral-v5")
        expected, _ = helpers.expected_routing(model.moe_blocks(), shards, BATCH)
        probs = expected[0][2]
        np.testing.assert_allclose(helpers.concat_layer(shards, 0, "probs"), probs, rtol=1e-5, atol=1e-7)
        self.assertTrue(np.allclose(probs.sum(1), 1.0, atol=1e-5))

    def test_bias_corrected_selection_is_recorded_as_made(self):
        for name in ("deepseek_v3", "glm4_moe"):
            with self.subTest(family=name):
                shards, model, _ = export_family(self, name)
                cfg = model.config
                expected, _ = helpers.expected_routing(model.moe_blocks(), shards, BATCH)
                differs = 0
                for layer, (idx, w, probs) in enumerate(expected):
                    got = np.sort(helpers.concat_layer(shards, layer, "experts"), 1)
                    np.testing.assert_array_equal(got, np.sort(idx, 1))
                    # What the gate weights give without e_score_correction_bias (probs are the
                    # normalised sigmoid scores: same ranking and group ranking per token).
                    unbiased = standins.sigmoid_bias_group_select(
                        cfg, torch.from_numpy(probs), torch.zeros(cfg.n_routed_experts)).numpy()
                    differs += int((np.sort(unbiased, 1) != got).any(1).sum())
                    # Weights: unbiased scores, normalised, times routed_scaling_factor.
                    w_got = helpers.concat_layer(shards, layer, "weights")
                    np.testing.assert_allclose(w_got.sum(1), cfg.routed_scaling_factor, rtol=1e-5)
                self.assertGreater(differs, 0, "the bias should change some selections in this test")

    def test_group_limited_greedy_deepseek_v2(self):
        shards, model, _ = export_family(self, "deepseek_v2")
        expected, _ = helpers.expected_routing(model.moe_blocks(), shards, BATCH)
        idx, w, probs = expected[0]
        got = np.sort(helpers.concat_layer(shards, 0, "experts"), 1)
        np.testing.assert_array_equal(got, np.sort(idx, 1))
        greedy = np.sort(np.argsort(-probs, 1, kind="stable")[:, :3], 1)
        self.assertTrue((greedy != got).any(), "group limits should change some selections in this test")
        groups = got // 2  # 8 experts in 4 groups of 2; top-3 from topk_group = 2 groups
        self.assertTrue(all(len(set(g)) <= 2 for g in groups.tolist()))
        w_got = helpers.concat_layer(shards, 0, "weights")
        probs_top = np.take_along_axis(probs, helpers.concat_layer(shards, 0, "experts").astype(np.int64), 1)
        np.testing.assert_allclose(w_got, 2.0 * probs_top, rtol=1e-5)  # routed_scaling_factor, no renorm

    def test_shared_experts_are_not_routed_experts(self):
        for name, n_routed, k in (("qwen2_moe", 8, 2), ("deepseek_v2", 8, 3), ("deepseek_v3", 16, 4),
                                  ("glm4_moe", 16, 4)):
            with self.subTest(family=name):
                shards, _, _ = export_family(self, name)
                tensors, meta = shards[0]
                self.assertEqual(int(meta["num_experts"]), n_routed)
                self.assertEqual(int(meta["top_k"]), k)
                for key, value in tensors.items():
                    if key.endswith(".experts"):
                        self.assertEqual(value.shape[1], k)  # no extra slot for a shared expert
                        self.assertTrue(((value >= 0) & (value < n_routed)).all())
        # Qwen2-MoE keeps norm_topk_prob = False: the k softmax weights sum below 1.
        shards, _, _ = export_family(self, "qwen2_moe")
        self.assertTrue((helpers.concat_layer(shards, 0, "weights").sum(1) < 0.999).all())

    def test_dense_layers_are_skipped(self):
        for name, layers in (("qwen3_moe", [0, 2]), ("deepseek_v3", [1, 2]), ("glm4_moe", [1, 2]),
                             ("mixtral", [0, 1, 2])):
            with self.subTest(family=name):
                shards, _, _ = export_family(self, name)
                tensors, meta = shards[0]
                self.assertEqual(json.loads(meta["hf_layers"]), layers)
                self.assertEqual(sorted(k for k in tensors if k.endswith(".experts")),
                                 ["layers.%d.experts" % i for i in range(len(layers))])

    def test_weight_conventions(self):
        cases = {"mixtral": 1.0, "qwen3_moe": 1.0, "gpt_oss": 1.0}  # renormalised / softmax over the k
        for name, total in cases.items():
            with self.subTest(family=name):
                shards, _, _ = export_family(self, name)
                np.testing.assert_allclose(helpers.concat_layer(shards, 0, "weights").sum(1), total, rtol=1e-5)

    def test_half_precision_weights_and_probs(self):
        shards, model, _ = export_family(self, "gpt_oss", "--weights", "bf16", "--probs", "f16")
        tensors, _ = shards[0]
        expected, _ = helpers.expected_routing(model.moe_blocks(), shards, BATCH)
        idx, w, probs = expected[0]
        np.testing.assert_allclose(np.sort(helpers.concat_layer(shards, 0, "weights"), 1), np.sort(w, 1),
                                   rtol=1e-2, atol=1e-3)
        self.assertEqual(tensors["layers.0.probs"].dtype, np.float16)
        np.testing.assert_allclose(helpers.concat_layer(shards, 0, "probs"), probs, rtol=1e-3, atol=1e-3)


if __name__ == "__main__":
    unittest.main()
