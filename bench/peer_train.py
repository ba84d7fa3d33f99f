#!/usr/bin/env python3
# The Python PyTorch eager peer of moetb's training step (bench/bench_train.cpp): the same
# decoder-only MoE LM (RMSNorm, causal attention with rotary embeddings (arXiv 2104.09864),
# top-k softmax router with the Switch balance loss (arXiv 2101.03961) and the router z-loss
# (arXiv 2202.08906), sort-based SwiGLU expert dispatch), cross-entropy, gradient clipping,
# AdamW with warmup + cosine lr, a fresh batch each step: written as a plain eager script.
# Prints one JSON line: tokens/s over the timed steps. Run with Debian's /usr/bin/python3.
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):  # x: [B, H, S, hd]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class MoELM(torch.nn.Module):
    def __init__(self, V, D, L, H, E, k, F_, S, theta=10000.0):
        super().__init__()
        self.D, self.H, self.E, self.k = D, H, E, k
        u = lambda *shape, fan: torch.nn.Parameter(torch.empty(*shape).uniform_(-fan ** -0.5, fan ** -0.5))
        self.embedding = torch.nn.Parameter(torch.empty(V, D).normal_(0.0, 0.02))
        self.final_norm = torch.nn.Parameter(torch.ones(D))
        self.blocks = torch.nn.ModuleList()
        for _ in range(L):
            b = torch.nn.Module()
            b.norm1, b.norm2 = torch.nn.Parameter(torch.ones(D)), torch.nn.Parameter(torch.ones(D))
            b.w_qkv, b.w_out = u(D, 3 * D, fan=D), u(D, D, fan=D)
            b.router = u(E, D, fan=D)
            b.w_gate, b.w_up, b.w_down = u(E, D, F_, fan=D), u(E, D, F_, fan=D), u(E, F_, D, fan=F_)
            self.blocks.append(b)
        half = D // H // 2
        inv = theta ** (torch.arange(half, dtype=torch.float64) * (-2.0 / (2 * half)))
        ang = torch.outer(torch.arange(S, dtype=torch.float64), inv).float()
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def attention(self, b, x):
        B, S, D = x.shape
        H, hd = self.H, D // self.H
        qkv = (x @ b.w_qkv).view(B, S, 3, H, hd).permute(2, 0, 3, 1, 4)
        cos, sin = self.cos[:S], self.sin[:S]
        q, k, v = rope(qkv[0], cos, sin), rope(qkv[1], cos, sin), qkv[2]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        scores = scores.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("-inf"))
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, S, D) @ b.w_out

    def moe(self, b, h):  # h: [n, D]
        n = h.shape[0]
        logits = h @ b.router.t()
        probs = logits.softmax(1)
        top_ids = probs.detach().topk(self.k, 1).indices
        top = probs.gather(1, top_ids)
        weights = top / top.sum(1, keepdim=True)
        f = torch.bincount(top_ids.reshape(-1), minlength=self.E).float() / top_ids.numel()
        balance = (f * probs.mean(0)).sum() * self.E
        z = torch.logsumexp(logits, 1).pow(2).mean()
        flat = top_ids.reshape(-1)
        sorted_e, order = torch.sort(flat, stable=True)
        tok = order // self.k
        w = weights.reshape(-1)[order]
        counts = torch.bincount(sorted_e, minlength=self.E).tolist()
        xs = h[tok]
        parts, off = [], 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            xe = xs[off:off + c]
            parts.append((F.silu(xe @ b.w_gate[e]) * (xe @ b.w_up[e])) @ b.w_down[e])
            off += c
        y = torch.zeros_like(h).index_add(0, tok, torch.cat(parts) * w.unsqueeze(1))
        return y, 0.01 * balance + 0.001 * z

    def forward(self, tokens):
        B, S = tokens.shape
        x = self.embedding[tokens]
        aux = torch.zeros(())
        for b in self.blocks:
            x = x + self.attention(b, rms_norm(x, b.norm1))
            y, a = self.moe(b, rms_norm(x, b.norm2).reshape(B * S, self.D))
            x = x + y.view(B, S, self.D)
            aux = aux + a
        return rms_norm(x, self.final_norm) @ self.embedding.t(), aux


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=241)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=128)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:  # OpenBLAS keeps its own pool, as in moetb (models/trainer.cpp)
        import ctypes
        ctypes.CDLL("libblas.so.3").openblas_set_num_threads(a.threads)
    except (OSError, AttributeError):
        pass
    torch.manual_seed(a.seed)
    model = MoELM(a.vocab, a.d_model, a.layers, a.heads, a.experts, a.top_k, a.d_ff, a.seq)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(a.seed)  # the same batches as bench_train.cpp
    total = a.warmup + a.steps
    batches = [torch.randint(a.vocab, (a.batch, a.seq), generator=gen) for _ in range(total)]
    t0 = None
    for step in range(1, total + 1):
        if step == a.warmup + 1:
            t0, c0 = time.perf_counter(), time.process_time()
        lr = 3e-3 * min(1.0, step / 20) if step <= 20 else 3e-4 + 0.5 * (3e-3 - 3e-4) * (1 + math.cos(math.pi * min(1.0, (step - 20) / 180)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        tokens = batches[step - 1]
        logits, aux = model(tokens)
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab), tokens[:, 1:].reshape(-1))
        loss = ce + aux
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise SystemExit(f"step {step}: loss is {loss_value}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = a.steps * a.batch * a.seq
    print(json.dumps({"impl": "python", "tokens_per_s": tokens / dt, "tokens_per_cpu_s": tokens / cpu, "steps": a.steps,
                      "seconds": dt, "final_loss": loss_value}))


if __name__ == "__main__":
    main()
