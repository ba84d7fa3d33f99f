"""Tiny randomly initialised Hugging Face transformers models of every supported family,
built from a config (no download) and exported end to end by
scripts/export_hf_routing.py. Runs only where `transformers` is importable (not in CI,
where the stand-ins of test_families.py cover the router conventions); families the
installed transformers does not know are skipped. Trace format: docs/trace-format.md.
"""
import json
import os
import subprocess
import unittest

import numpy as np
import torch

import helpers
import standins

try:
    import transformers
except ImportError:
    transformers = None

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, head_dim=8, max_position_embeddings=64, pad_token_id=0)
ATTENTION_MLA = dict(kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8)
# model_type -> (config overrides, number of MoE layers, experts, k)
CASES = {
    "mixtral": (dict(num_local_experts=4, num_experts_per_tok=2), 3, 4, 2),
    "qwen2_moe": (dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                       shared_expert_intermediate_size=16, decoder_sparse_step=1), 3, 4, 2),
    "qwen3_moe": (dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, decoder_sparse_step=1,
                       mlp_only_layers=[0], norm_topk_prob=True), 2, 4, 2),
    "olmoe": (dict(num_experts=4, num_experts_per_tok=2), 3, 4, 2),
    "deepseek_v2": (dict(n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=16,
                         first_k_dense_replace=1, n_group=2, topk_group=1, topk_method="group_limited_greedy",
                         **ATTENTION_MLA), 2, 4, 2),
    "deepseek_v3": (dict(n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=16,
                         first_k_dense_replace=1, n_group=2, topk_group=1, **ATTENTION_MLA), 2, 8, 2),
    "glm4_moe": (dict(n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=16,
                      first_k_dense_replace=1, n_group=1, topk_group=1), 2, 8, 2),
    "gpt_oss": (dict(num_local_experts=4, num_experts_per_tok=2, sliding_window=8), 3, 4, 2),
}


def build_tiny(name, dtype="auto"):
    """--factory entry point: a tiny random model of model_type `name` and a byte tokenizer."""
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(name, **COMMON, **CASES[name][0])
    model = transformers.AutoModelForCausalLM.from_config(config)
    return model.float(), standins.ByteTokenizer()


@unittest.skipIf(transformers is None, "transformers is not installed (the stand-in tests cover the families)")
class TinyTransformersModels(unittest.TestCase):
    def test_export_every_family(self):
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        tmp = helpers.temp_dir(self)
        data = helpers.write_jsonl(os.path.join(tmp, "data.jsonl"), helpers.RECORDS)
        for name, (_, n_layers, n_experts, k) in CASES.items():
            with self.subTest(family=name):
                if name not in CONFIG_MAPPING:
                    self.skipTest("this transformers does not know %s" % name)
                out = os.path.join(tmp, name)
                rc, err = helpers.run_inprocess([name, data, "--out", out, "--factory",
                                                 "test_transformers_models:build_tiny", "--device", "cpu",
                                                 "--seq-len", "16", "--shard-tokens", "40", "--batch-size", "3",
                                                 "--weights", "f32", "--probs", "f32"])
                self.assertEqual(rc, 0, err)
                shards = helpers.read_trace(out)
                meta = shards[0][1]
                self.assertEqual(int(meta["num_experts"]), n_experts)
                self.assertEqual(int(meta["top_k"]), k)
                self.assertEqual(len(json.loads(meta["hf_layers"])), n_layers)
                config = transformers.AutoConfig.for_model(name, **COMMON, **CASES[name][0])
                for layer in range(n_layers):
                    idx = helpers.concat_layer(shards, layer, "experts").astype(np.int64)
                    w = helpers.concat_layer(shards, layer, "weights")
                    probs = helpers.concat_layer(shards, layer, "probs")
                    self.assertEqual(idx.shape[1], k)
                    self.assertTrue(((idx >= 0) & (idx < n_experts)).all())
                    self.assertTrue(all(len(set(row)) == k for row in idx.tolist()))
                    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-4)
                    if name in ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss"):
                        # Plain top-k of the router distribution (seen at the router, not the experts).
                        top = np.sort(np.argsort(-probs, 1, kind="stable")[:, :k], 1)
                        np.testing.assert_array_equal(np.sort(idx, 1), top)
                    if name in ("mixtral", "qwen3_moe", "gpt_oss"):
                        np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-4)
                    if name in ("deepseek_v3", "glm4_moe") and getattr(config, "norm_topk_prob", False):
                        np.testing.assert_allclose(w.sum(1), config.routed_scaling_factor, rtol=1e-4)
                if os.environ.get("MOETB_BINARY"):
                    p = subprocess.run([os.environ["MOETB_BINARY"], "metrics", out, "--json"],
                                       capture_output=True, text=True, timeout=120)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertEqual(json.loads(p.stdout)["trace"]["layers"], n_layers)


if __name__ == "__main__":
    unittest.main()
