"""Bad input to the `import moetb` module raises, with the CLI's one-line message where
the CLI has one (trace format v1, docs/trace-format.md): wrong dtypes and shapes, ids
below -1 or >= n_experts, an id twice for one token, lengths that disagree, bad options;
nothing is written for a bad write_trace. Repeated calls, failing or not, neither crash
nor leak, and the GIL is released while the metrics run."""
import os
import threading
import time
import unittest

import numpy as np

import module_helpers as h
import moetb


def routing(n_layers=2, n_tokens=64, k=2, n_experts=8, seed=0, dtype=np.int32):
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((n_layers, n_tokens, n_experts)), axis=2)[:, :, :k].astype(dtype)


class BadInputRaises(unittest.TestCase):
    def assertRaisesLine(self, exc, fragment, fn, *args, **kwargs):
        with self.assertRaises(exc) as ctx:
            fn(*args, **kwargs)
        message = str(ctx.exception)
        self.assertIn(fragment, message)
        self.assertNotIn("\n", message)
        return message

    def test_dtypes(self):
        e = routing()
        for bad in (e.astype(np.float32), e.astype(bool), e.astype(np.float64)):
            self.assertRaisesLine(moetb.TraceError, "is not an integer type", moetb.metrics, bad)
        self.assertRaisesLine(moetb.TraceError, "domain_ids: dtype float64 is not an integer type", moetb.metrics, e,
                              domain_ids=np.zeros(64))
        self.assertRaisesLine(moetb.TraceError, "token_ids: value 4294967296 at token 3 does not fit int32",
                              moetb.metrics, e, token_ids=np.array([0, 0, 0, 2 ** 32] + [0] * 60))
        self.assertRaisesLine(moetb.TraceError, "is not a float array", moetb.metrics, e, weights=e)
        self.assertRaisesLine(moetb.TraceError, "dtype object is not an integer type", moetb.metrics,
                              [np.array([[object()]])])
        self.assertRaisesLine(moetb.TraceError, "shape () is not [T, K]", moetb.metrics, [object()])

    def test_shapes_and_lengths(self):
        e = routing()
        self.assertRaisesLine(moetb.TraceError, "shape (64, 2) is not [n_layers, n_tokens, top_k]", moetb.metrics, e[0])
        self.assertRaisesLine(moetb.TraceError, "is not [n_layers, n_tokens, top_k]", moetb.metrics, e[None])
        self.assertRaisesLine(moetb.TraceError, "layers.0.experts: shape (64,) is not [T, K]", moetb.metrics,
                              [e[0, :, 0]])
        self.assertRaisesLine(moetb.TraceError, "layers.1.experts: shape (60, 2) disagrees with layers.0.experts on "
                              "T = 64", moetb.metrics, [e[0], e[1, :60]])
        for name in ("domain_ids", "token_ids", "positions"):
            self.assertRaisesLine(moetb.TraceError, "%s: shape (63,) is not [T] with T = 64" % name, moetb.metrics, e,
                                  **{name: np.zeros(63, np.int32)})
        self.assertRaisesLine(moetb.TraceError, "layers.0.weights: shape (64, 3)", moetb.metrics, e,
                              weights=np.zeros((2, 64, 3), np.float32))
        self.assertRaisesLine(ValueError, "no layer given", moetb.metrics, [])

    def test_expert_ids(self):
        for dtype in (np.int16, np.int32, np.int64):
            e = routing(dtype=dtype)
            e[1, 5, 1] = -2
            msg = self.assertRaisesLine(moetb.TraceError, "layers.1.experts: expert id -2 at token 5 slot 1 is outside "
                                        "[-1, 8)", moetb.metrics, e, n_experts=8)
            self.assertTrue(msg.startswith("arrays: "), msg)
            e[1, 5, 1] = 8
            self.assertRaisesLine(moetb.TraceError, "expert id 8 at token 5 slot 1 is outside [-1, 8)", moetb.metrics,
                                  e, n_experts=8)
            e[1, 5, 1] = e[1, 5, 0]
            self.assertRaisesLine(moetb.TraceError, "layers.1.experts: expert %d is listed twice for token 5"
                                  % e[1, 5, 0], moetb.metrics, e)
        e = routing(dtype=np.int64)
        e[0, 0, 0] = 2 ** 40
        self.assertRaisesLine(moetb.TraceError, "expert id 1099511627776 at token 0 slot 0", moetb.metrics, e,
                              n_experts=8)
        self.assertRaisesLine(moetb.TraceError, "beyond moetb's limit of 65536 experts", moetb.metrics, e)
        e = routing()
        e[0, 3, :] = -1  # empty slots are fine
        self.assertEqual(moetb.metrics(e)["trace"]["tokens"], 64)

    def test_options(self):
        e = routing()
        self.assertRaisesLine(ValueError, "layer 2 is outside the trace's layers [0, 2)", moetb.metrics, e, layers=[2])
        self.assertRaisesLine(ValueError, "layers: '1-x' is not a list of layers", moetb.metrics, e, layers="1-x")
        self.assertRaisesLine(ValueError, "n_experts = 0 must be positive", moetb.metrics, e, n_experts=0)
        self.assertRaisesLine(ValueError, "reference groups: expert id 9 is outside [0, 8)", moetb.metrics, e,
                              reference_groups=[[0, 9]])
        self.assertRaisesLine(ValueError, "tau 1.500000 is not in (0, 1]", moetb.paths, e, tau=1.5)
        self.assertRaisesLine(ValueError, "blocks must be 0 or lie in [2, 1024]", moetb.compare, e, e, blocks=1)
        self.assertRaisesLine(ValueError, "threads must be 0", moetb.metrics, e, threads=-1)
        self.assertRaisesLine(ValueError, "nope", moetb.validate, "nope")
        self.assertRaisesLine(moetb.TraceError, "1024", moetb.metrics, e, domain_ids=np.full(64, 1024))

    def test_compare_needs_the_same_tokens(self):
        e = routing()
        ids = np.arange(64, dtype=np.int32)
        other = ids.copy()
        other[7] = 99
        self.assertRaisesLine(moetb.TraceError, "token 7", moetb.compare, {"experts": e, "token_ids": ids},
                              {"experts": e, "token_ids": other})

    @unittest.skipUnless(h.BINARY, "MOETB_BINARY is not set (ctest sets it)")
    def test_file_errors_carry_the_cli_message(self):
        tmp = h.temp_dir(self)
        missing = os.path.join(tmp, "missing.safetensors")
        self.assertEqual(self.assertRaisesLine(moetb.TraceError, "no such file", moetb.metrics, missing),
                         h.cli_error("metrics", missing))
        bad = os.path.join(tmp, "bad.safetensors")
        with open(bad, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
        self.assertEqual(self.assertRaisesLine(moetb.TraceError, "bad.safetensors", moetb.read_trace, bad),
                         h.cli_error("metrics", bad))
        path = os.path.join(tmp, "t.safetensors")
        moetb.simulate(path, n_tokens=500, n_layers=2)
        self.assertEqual(self.assertRaisesLine(ValueError, "outside", moetb.metrics, path, layers=[5]),
                         h.cli_error("metrics", path, "--layers", "5"))
        self.assertEqual(self.assertRaisesLine(ValueError, "already exists", moetb.simulate, path, n_tokens=500),
                         h.cli_error("simulate", "--out", path, "-T", "500"))

    def test_write_trace_writes_nothing_on_error(self):
        tmp = h.temp_dir(self)
        out = os.path.join(tmp, "t.safetensors")
        e = routing()
        e[0, 9, 0] = 8
        self.assertRaisesLine(moetb.TraceError, "expert id 8 at token 9 slot 0", moetb.write_trace, out, e,
                              n_experts=8)
        self.assertRaisesLine(moetb.TraceError, "domain", moetb.write_trace, out, routing(),
                              domain_ids=np.full(64, -5))
        self.assertRaisesLine(ValueError, "weights_dtype: 'F8' is not one of F32, F16, BF16", moetb.write_trace, out,
                              routing(), weights=np.zeros((2, 64, 2), np.float32), weights_dtype="F8")
        self.assertEqual(os.listdir(tmp), [])


class RepeatedCalls(unittest.TestCase):
    def test_rss_stays_flat(self):
        e = routing(n_layers=4, n_tokens=20000, k=4, n_experts=64, dtype=np.int64)  # converted each call
        ids = np.random.default_rng(1).integers(0, 500, 20000)
        domains = np.random.default_rng(2).integers(-1, 4, 20000)
        bad = e.copy()
        bad[2, 100, 1] = 64

        def calls(n):
            for _ in range(n):
                moetb.metrics(e, domain_ids=domains, token_ids=ids, n_experts=64, threads=2)
                with self.assertRaises(moetb.TraceError):
                    moetb.metrics(bad, domain_ids=domains, n_experts=64)
                moetb.paths(list(e.astype(np.int16)), domain_ids=domains)
                t = moetb.simulate(n_tokens=20000, n_layers=2)  # ~1 MB of arrays handed to NumPy each time
                self.assertEqual(len(t["experts"]), 2)
        calls(10)  # warm up allocators
        before = h.rss_bytes()
        calls(60)
        grown = h.rss_bytes() - before
        self.assertLess(grown, 8 << 20, "RSS grew by %d bytes over 60 rounds" % grown)

    def test_gil_is_released_during_the_metric_pass(self):
        e = routing(n_layers=2, n_tokens=200000, k=4, n_experts=64, dtype=np.int16)
        ids = np.random.default_rng(1).integers(0, 100000, 200000).astype(np.int32)
        done, ticks = threading.Event(), [0]

        def run():
            moetb.metrics(e, token_ids=ids, n_experts=64, threads=1)
            done.set()

        start = time.perf_counter()
        moetb.metrics(e, token_ids=ids, n_experts=64, threads=1)
        alone = time.perf_counter() - start
        worker = threading.Thread(target=run)
        worker.start()
        while not done.is_set():  # this thread runs Python only if the worker let go of the GIL
            ticks[0] += 1
            time.sleep(0.001)
        worker.join()
        # Holding the GIL through the pass would allow a tick or two (before and after it), not more.
        self.assertGreater(ticks[0], 5, "%d ticks during a %.3f s pass" % (ticks[0], alone))


if __name__ == "__main__":
    unittest.main()
