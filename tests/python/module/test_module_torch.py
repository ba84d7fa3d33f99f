"""PyTorch tensors wherever the `import moetb` module takes arrays (through DLPack or
__array__; moetb itself never imports torch): the int64 indices torch.topk returns,
non-contiguous views, weights that require grad or are bfloat16, and a list per layer,
give the same numbers as the NumPy arrays they hold. Skipped where torch is missing."""
import unittest

import numpy as np

import moetb

try:
    import torch
except ImportError:
    torch = None


@unittest.skipIf(torch is None, "torch is not installed")
class TorchTensors(unittest.TestCase):
    def setUp(self):
        g = torch.Generator().manual_seed(0)
        self.logits = torch.randn(3, 4000, 32, generator=g)  # [L, T, E]
        self.weights, self.experts = torch.topk(torch.softmax(self.logits, -1), 4, dim=-1)  # int64 [L, T, k]
        self.domains = torch.randint(-1, 3, (4000,), generator=g)
        self.ids = torch.randint(0, 300, (4000,), generator=g)
        self.expected = moetb.metrics(self.experts.numpy(), domain_ids=self.domains.numpy(),
                                      token_ids=self.ids.numpy(), n_experts=32)

    def test_topk_output(self):
        self.assertEqual(self.experts.dtype, torch.int64)
        got = moetb.metrics(self.experts, domain_ids=self.domains, token_ids=self.ids, n_experts=32,
                            weights=self.weights.requires_grad_(True))
        self.assertEqual(got, self.expected)

    def test_layouts_and_dtypes(self):
        per_layer = [self.experts[l].to(torch.int16) for l in range(3)]
        self.assertEqual(moetb.metrics(per_layer, domain_ids=self.domains.to(torch.int32), token_ids=self.ids,
                                       n_experts=32, weights=self.weights.to(torch.bfloat16)), self.expected)
        transposed = self.experts.permute(1, 0, 2).contiguous().permute(1, 0, 2)  # strided [L, T, k]
        self.assertFalse(transposed.is_contiguous())
        self.assertEqual(moetb.metrics(transposed, domain_ids=self.domains, token_ids=self.ids, n_experts=32),
                         self.expected)

    def test_bad_tensors_raise(self):
        with self.assertRaises(moetb.TraceError):
            moetb.metrics(self.logits, n_experts=32)  # float routing
        bad = self.experts.clone()
        bad[0, 0, 0] = 40
        with self.assertRaises(moetb.TraceError) as ctx:
            moetb.metrics(bad, n_experts=32)
        self.assertIn("expert id 40 at token 0 slot 0 is outside [-1, 32)", str(ctx.exception))

    def test_write_trace_from_tensors(self):
        import os
        import tempfile
        with tempfile.TemporaryDirectory(prefix="moetb-module-test-") as tmp:
            path = os.path.join(tmp, "t.safetensors")
            moetb.write_trace(path, self.experts, token_ids=self.ids, domain_ids=self.domains,
                              weights=self.weights.detach(), n_experts=32, weights_dtype="BF16")
            self.assertEqual(moetb.metrics(path), self.expected)
            w = moetb.read_trace(path)["weights"][1]
            np.testing.assert_allclose(w, self.weights[1].detach().numpy(), rtol=1e-2)


if __name__ == "__main__":
    unittest.main()
