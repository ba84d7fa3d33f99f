"""Tiny stand-ins for the MoE families scripts/export_hf_routing.py supports.

Each block reproduces one family's router conventions and module layout as Hugging Face
transformers implements them (attribute names `gate` / `router` / `experts` /
`shared_expert(s)` / `route_tokens_to_experts`, the same softmax / sigmoid / bias /
group rules), with random weights from a fixed seed. Every block also appends what it
actually selected, computed by its own routing code, to `block.truth` as
(indices [T, k], weights [T, k], full distribution [T, E]) for each call: the tests
compare the export against that. The stand-in "model" has the transformers layout
(`model.config`, `model.model.layers[i].mlp`, a causal token mixer so that routing
depends on context) and a byte-level tokenizer. `build(name, dtype)` is the exporter's
--factory entry point.
"""
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN, VOCAB, FFN = 16, 64, 8


class Expert(nn.Module):
    """A small MLP; also the dense MLP and the shared experts."""

    def __init__(self, width=FFN):
        super().__init__()
        self.gate_proj = nn.Linear(HIDDEN, width, bias=False)
        self.down_proj = nn.Linear(width, HIDDEN, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)))


def dispatch(experts, x, idx, w):
    """Runs each token through its selected experts (a ModuleList), weighted."""
    out = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        tok, slot = torch.where(idx == e)
        if tok.numel():
            out.index_add_(0, tok, expert(x[tok]) * w[tok, slot, None].to(x.dtype))
    return out


class StackedExperts(nn.Module):
    """transformers >= 4.57 style experts module: forward(hidden, top_k_index, top_k_weights)."""

    def __init__(self, n):
        super().__init__()
        self.experts = nn.ModuleList([Expert() for _ in range(n)])

    def forward(self, hidden_states, top_k_index, top_k_weights):
        return dispatch(self.experts, hidden_states, top_k_index, top_k_weights)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.top_k, self.truth = cfg, cfg.num_experts_per_tok, []

    def log(self, idx, w, probs):
        self.truth.append((idx.detach().clone(), w.detach().float().clone(), probs.detach().float().clone()))


# ---------------------------------------------------------------- softmax families

class InlineSoftmaxBlock(Block):
    """Mixtral / Qwen2-MoE / Qwen3-MoE / OLMoE before transformers 4.57: `gate` is a plain
    Linear, the block takes softmax over all experts, top-k, and renormalises the k
    weights (Mixtral always; the others when norm_topk_prob). Qwen2-MoE adds one shared
    expert scaled by sigmoid(shared_expert_gate(x)); it is not a routed expert."""

    def __init__(self, cfg, renorm, shared=False, gate_gives_probs=False):
        super().__init__(cfg)
        n = cfg.num_experts
        self.renorm, self.gate_gives_probs = renorm, gate_gives_probs
        self.gate = nn.Linear(HIDDEN, n, bias=False)
        self.experts = nn.ModuleList([Expert() for _ in range(n)])
        if shared:
            self.shared_expert = Expert(2 * FFN)
            self.shared_expert_gate = nn.Linear(HIDDEN, 1, bias=False)
        if gate_gives_probs:  # the trap: a gate whose "router_logits" are already probabilities
            linear = self.gate
            self.gate = nn.Sequential(linear, nn.Softmax(dim=-1))

    def forward(self, hidden_states):
        b, s, h = hidden_states.shape
        x = hidden_states.view(-1, h)
        router_logits = self.gate(x)
        probs = router_logits.float() if self.gate_gives_probs else F.softmax(router_logits, dim=1, dtype=torch.float)
        w, idx = torch.topk(probs, self.top_k, dim=-1)
        if self.renorm:
            w = w / w.sum(dim=-1, keepdim=True)
        self.log(idx, w, probs)
        out = dispatch(self.experts, x, idx, w)
        if hasattr(self, "shared_expert"):
            out = out + torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)
        return out.view(b, s, h), router_logits


class ProbsTopKRouter(nn.Module):
    """Mixtral's router in transformers 5 before the fix of issue #45120: it returns the
    softmax probabilities under the name router_logits, with the top-k scores and indices."""

    def __init__(self, cfg):
        super().__init__()
        self.top_k = cfg.num_experts_per_tok
        self.weight = nn.Parameter(torch.randn(cfg.num_experts, HIDDEN) * 0.5)

    def forward(self, hidden_states):
        router_logits = F.softmax(F.linear(hidden_states.reshape(-1, HIDDEN), self.weight).float(), dim=-1)
        top_value, router_indices = torch.topk(router_logits, self.top_k, dim=-1)
        top_value = top_value / top_value.sum(dim=-1, keepdim=True)
        return router_logits, top_value, router_indices


class RouterModuleBlock(Block):
    """Mixtral in transformers 5: `gate` is a router module returning (probs, scores, indices),
    `experts` a module called with (hidden, top_k_index, top_k_weights)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.gate = ProbsTopKRouter(cfg)
        self.experts = StackedExperts(cfg.num_experts)

    def forward(self, hidden_states):
        b, s, h = hidden_states.shape
        x = hidden_states.view(-1, h)
        probs, w, idx = self.gate(x)
        self.log(idx, w, probs)
        return self.experts(x, idx, w).view(b, s, h), probs


# ---------------------------------------------------------------- DeepSeek-V2

class DeepseekV2Block(Block):
    """DeepSeek-V2 as in transformers >= 4.57: the block computes the logits with
    F.linear(x, gate.weight) (the `gate` module itself is never called), then
    route_tokens_to_experts: softmax, group-limited greedy (keep the topk_group groups
    with the largest member), top-k with sorted=False, weights x routed_scaling_factor."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.gate = nn.Linear(HIDDEN, cfg.n_routed_experts, bias=False)
        self.experts = StackedExperts(cfg.n_routed_experts)
        self.shared_experts = Expert(FFN * cfg.n_shared_experts)

    def route_tokens_to_experts(self, router_logits):
        cfg = self.cfg
        b, s, e = router_logits.shape
        p = router_logits.view(-1, e).softmax(dim=-1, dtype=torch.float32)
        group_scores = p.view(b * s, cfg.n_group, -1).max(dim=-1).values
        group_idx = torch.topk(group_scores, k=cfg.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(b * s, cfg.n_group, e // cfg.n_group).reshape(b * s, -1)
        w, idx = torch.topk(p.masked_fill(~score_mask.bool(), 0.0), k=self.top_k, dim=-1, sorted=False)
        return idx, w * cfg.routed_scaling_factor

    def forward(self, hidden_states):
        shape = hidden_states.shape
        router_logits = F.linear(hidden_states.float(), self.gate.weight.float())
        idx, w = self.route_tokens_to_experts(router_logits)
        self.log(idx, w, F.softmax(router_logits.view(-1, router_logits.shape[-1]), dim=-1))
        x = hidden_states.view(-1, shape[-1])
        return self.experts(x, idx, w).view(*shape) + self.shared_experts(hidden_states)


# ---------------------------------------------------------------- DeepSeek-V3 / GLM-4.5

def sigmoid_bias_group_select(cfg, scores, bias):
    """DeepSeek-V3's noaux_tc selection: biased scores choose, group top-2 sums rank groups."""
    e = cfg.n_routed_experts
    choice = scores.view(-1, e) + bias.unsqueeze(0)
    group_scores = choice.view(-1, cfg.n_group, e // cfg.n_group).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, k=cfg.topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, cfg.n_group, e // cfg.n_group).reshape(-1, e)
    return torch.topk(choice.masked_fill(~score_mask.bool(), 0.0), k=cfg.num_experts_per_tok, dim=-1, sorted=False)[1]


def combine_weights(cfg, scores, idx):
    w = scores.gather(1, idx)
    if cfg.norm_topk_prob:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    return w * cfg.routed_scaling_factor


class DeepseekV3TopkRouter(nn.Module):
    """DeepSeek-V3's router before transformers 4.57: sigmoid scores, selection with
    e_score_correction_bias, weights from the unbiased scores; returns (indices, weights)."""

    def __init__(self, cfg, bias_name="e_score_correction_bias"):
        super().__init__()
        self.cfg, self.bias_name = cfg, bias_name
        self.weight = nn.Parameter(torch.randn(cfg.n_routed_experts, HIDDEN) * 0.3)
        self.register_buffer(bias_name, torch.randn(cfg.n_routed_experts) * 0.3)

    def forward(self, hidden_states):
        logits = F.linear(hidden_states.view(-1, HIDDEN).float(), self.weight.float())
        scores = logits.sigmoid()
        idx = sigmoid_bias_group_select(self.cfg, scores, getattr(self, self.bias_name))
        self.last = (scores / scores.sum(-1, keepdim=True))
        return idx, combine_weights(self.cfg, scores, idx)


class DeepseekV3Block(Block):
    """DeepSeek-V3 before transformers 4.57: the router returns the selection. With
    bias_name changed, no family rule could redo it: only the recorded selection works."""

    def __init__(self, cfg, bias_name="e_score_correction_bias"):
        super().__init__(cfg)
        self.gate = DeepseekV3TopkRouter(cfg, bias_name)
        self.experts = nn.ModuleList([Expert() for _ in range(cfg.n_routed_experts)])
        self.shared_experts = Expert(FFN * cfg.n_shared_experts)

    def moe(self, x, idx, w):
        return dispatch(self.experts, x, idx, w)

    def forward(self, hidden_states):
        shape = hidden_states.shape
        idx, w = self.gate(hidden_states)
        self.log(idx, w, self.gate.last)
        out = self.moe(hidden_states.view(-1, shape[-1]), idx, w).view(*shape)
        return out + self.shared_experts(hidden_states)


class Glm4MoeTopkRouter(nn.Module):
    """GLM-4.5's router: returns the raw logits; the bias lives on it."""

    def __init__(self, cfg):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cfg.n_routed_experts, HIDDEN) * 0.3)
        self.register_buffer("e_score_correction_bias", torch.randn(cfg.n_routed_experts) * 0.3)

    def forward(self, hidden_states):
        return F.linear(hidden_states.view(-1, HIDDEN).float(), self.weight.float())


class Glm4MoeBlock(Block):
    """GLM-4.5: router logits, then route_tokens_to_experts with the bias (the experts are a
    ModuleList here, so the exporter must take the selection from route_tokens_to_experts)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.gate = Glm4MoeTopkRouter(cfg)
        self.experts = nn.ModuleList([Expert() for _ in range(cfg.n_routed_experts)])
        self.shared_experts = Expert(FFN * cfg.n_shared_experts)

    def route_tokens_to_experts(self, router_logits):
        scores = router_logits.sigmoid()
        idx = sigmoid_bias_group_select(self.cfg, scores, self.gate.e_score_correction_bias)
        return idx, combine_weights(self.cfg, scores, idx)

    def forward(self, hidden_states):
        shape = hidden_states.shape
        router_logits = self.gate(hidden_states)
        idx, w = self.route_tokens_to_experts(router_logits)
        s = router_logits.sigmoid()
        self.log(idx, w, s / s.sum(-1, keepdim=True))
        out = dispatch(self.experts, hidden_states.view(-1, shape[-1]), idx, w).view(*shape)
        return out + self.shared_experts(hidden_states)


# ---------------------------------------------------------------- gpt-oss

class GptOssTopKRouter(nn.Module):
    """gpt-oss (transformers 4.55): top-k of the logits (with a router bias), softmax over
    those k, returned scattered into a dense [T, E] score matrix with the indices."""

    def __init__(self, cfg):
        super().__init__()
        self.top_k = cfg.num_experts_per_tok
        self.weight = nn.Parameter(torch.randn(cfg.num_local_experts, HIDDEN) * 0.5)
        self.bias = nn.Parameter(torch.randn(cfg.num_local_experts) * 0.5)

    def forward(self, hidden_states):
        router_logits = F.linear(hidden_states.reshape(-1, HIDDEN), self.weight, self.bias)
        top_value, router_indices = torch.topk(router_logits, self.top_k, dim=-1)
        top_value = F.softmax(top_value, dim=1, dtype=top_value.dtype)
        self.last = F.softmax(router_logits, dim=-1)
        return torch.zeros_like(router_logits).scatter_(1, router_indices, top_value), router_indices


class GptOssExperts(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.experts = nn.ModuleList([Expert() for _ in range(n)])

    def forward(self, hidden_states, router_indices=None, routing_weights=None):
        x = hidden_states.reshape(-1, HIDDEN)
        w = routing_weights.gather(1, router_indices)
        return dispatch(self.experts, x, router_indices, w).view(hidden_states.shape)


class GptOssBlock(Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.router = GptOssTopKRouter(cfg)
        self.experts = GptOssExperts(cfg.num_local_experts)

    def forward(self, hidden_states):
        router_scores, router_indices = self.router(hidden_states)
        self.log(router_indices, router_scores.gather(1, router_indices), self.router.last)
        out = self.experts(hidden_states, router_indices=router_indices, routing_weights=router_scores)
        return out, router_scores


# ---------------------------------------------------------------- the model

class DecoderLayer(nn.Module):
    def __init__(self, ffn, attr):
        super().__init__()
        self.mix = nn.Linear(HIDDEN, HIDDEN)
        self.attr = attr
        setattr(self, attr, ffn)

    def forward(self, h, mask):
        m = mask[..., None]
        context = torch.cumsum(h * m, 1) / torch.cumsum(m, 1).clamp(min=1)  # causal, ignores padding
        h = h + torch.tanh(self.mix(context))
        out = getattr(self, self.attr)(h)
        return h + (out[0] if isinstance(out, tuple) else out)


class Body(nn.Module):
    def __init__(self, ffns, attr):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList([DecoderLayer(f, attr) for f in ffns])

    def get_input_embeddings(self):
        return self.embed_tokens

    def forward(self, input_ids, attention_mask=None, **kwargs):
        h = self.embed_tokens(input_ids)
        mask = torch.ones_like(input_ids, dtype=h.dtype) if attention_mask is None else attention_mask.to(h.dtype)
        for layer in self.layers:
            h = layer(h, mask)
        return h


class ForCausalLM(nn.Module):
    def __init__(self, config, ffns, attr="mlp"):
        super().__init__()
        self.config = config
        self.model = Body(ffns, attr)
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.lm_head(self.model(input_ids, attention_mask))

    def moe_blocks(self):
        return [getattr(layer, layer.attr) for layer in self.model.layers if isinstance(getattr(layer, layer.attr), Block)]


class ByteTokenizer:
    """Bytes -> ids 2..63 after a BOS of 1; 0 is padding and never a real token."""
    pad_token_id = 0

    def encode(self, text):
        return [1] + [2 + b % (VOCAB - 2) for b in text.encode("utf-8")]


# name -> (config, [per layer: block or None for a dense MLP], decoder attribute)
def _spec(name):
    base = dict(num_experts_per_tok=2, num_hidden_layers=3, hidden_size=HIDDEN, vocab_size=VOCAB)
    if name in ("mixtral", "mixtral-v5"):
        cfg = SimpleNamespace(model_type="mixtral", num_local_experts=8, **base)
        cfg.num_experts = 8
        make = (lambda i: RouterModuleBlock(cfg)) if name == "mixtral-v5" else (lambda i: InlineSoftmaxBlock(cfg, True))
        return cfg, make, ("mlp" if name == "mixtral-v5" else "block_sparse_moe")
    if name == "qwen2_moe":
        cfg = SimpleNamespace(model_type="qwen2_moe", num_experts=8, norm_topk_prob=False, **base)
        return cfg, lambda i: InlineSoftmaxBlock(cfg, False, shared=True), "mlp"
    if name == "qwen3_moe":  # layer 1 dense through mlp_only_layers
        cfg = SimpleNamespace(model_type="qwen3_moe", num_experts=8, norm_topk_prob=True, mlp_only_layers=[1], **base)
        return cfg, lambda i: None if i in cfg.mlp_only_layers else InlineSoftmaxBlock(cfg, True), "mlp"
    if name in ("olmoe", "olmoe-probs"):
        cfg = SimpleNamespace(model_type="olmoe", num_experts=8, norm_topk_prob=False, **base)
        return cfg, lambda i: InlineSoftmaxBlock(cfg, False, gate_gives_probs=name == "olmoe-probs"), "mlp"
    if name == "generic":
        cfg = SimpleNamespace(model_type="toy_moe", num_experts=8, **base)
        return cfg, lambda i: InlineSoftmaxBlock(cfg, False), "mlp"
    if name == "deepseek_v2":
        cfg = SimpleNamespace(model_type="deepseek_v2", n_routed_experts=8, n_shared_experts=2, n_group=4,
                              topk_group=2, topk_method="group_limited_greedy", routed_scaling_factor=2.0, **base)
        cfg.num_experts_per_tok = 3
        return cfg, lambda i: DeepseekV2Block(cfg), "mlp"
    if name in ("deepseek_v3", "deepseek_v3-private-bias", "glm4_moe"):  # first_k_dense_replace = 1
        cfg = SimpleNamespace(model_type=name.split("-")[0], n_routed_experts=16, n_shared_experts=1, norm_topk_prob=True,
                              routed_scaling_factor=2.5, first_k_dense_replace=1, **base)
        cfg.num_experts_per_tok = 4
        cfg.n_group, cfg.topk_group = (4, 2) if name == "deepseek_v3" else (1, 1)
        block = {"deepseek_v3": DeepseekV3Block, "glm4_moe": Glm4MoeBlock,
                 "deepseek_v3-private-bias": lambda c: DeepseekV3Block(c, "expert_bias")}[name]
        return cfg, lambda i: None if i < cfg.first_k_dense_replace else block(cfg), "mlp"
    if name == "gpt_oss":
        cfg = SimpleNamespace(model_type="gpt_oss", num_local_experts=8, **base)
        cfg.num_experts_per_tok = 3
        return cfg, lambda i: GptOssBlock(cfg), "mlp"
    raise KeyError(name)


FAMILIES = ["mixtral", "mixtral-v5", "qwen2_moe", "qwen3_moe", "olmoe", "olmoe-probs", "deepseek_v2",
            "deepseek_v3", "deepseek_v3-private-bias", "glm4_moe", "gpt_oss", "generic"]
LAST_MODEL = {}


def build(name, dtype="auto"):
    """--factory entry point: (model, tokenizer), same weights for the same name."""
    torch.manual_seed(0)
    cfg, make, attr = _spec(name)
    ffns = [make(i) or Expert(2 * FFN) for i in range(cfg.num_hidden_layers)]
    model = ForCausalLM(cfg, ffns, attr)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(3.0)  # spread the routing over the experts
    LAST_MODEL[name] = model
    return model, ByteTokenizer()
