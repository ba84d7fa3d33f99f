"""Router conventions of the MoE families the exporter knows, keyed by config.model_type.

The exporter records the routing a model *made* (see capture.py); the rules here are
used only where a model hands out nothing but its router logits and selects inline
(e.g. Mixtral, Qwen-MoE and OLMoE before transformers moved routing into a router
module), and to turn logits into the optional full router distribution. Each rule
restates the family's published routing as implemented in Hugging Face transformers:

- softmax top-k (Mixtral: always renormalised; Qwen2-MoE, Qwen3-MoE, OLMoE:
  renormalised when config.norm_topk_prob): softmax over all experts, top-k, weights
  = the k probabilities (optionally divided by their sum);
- deepseek_v2: softmax, then greedy top-k or group-limited greedy (keep the
  topk_group groups with the largest maximum), weights x routed_scaling_factor;
- deepseek_v3, glm4_moe: sigmoid scores; the selection adds e_score_correction_bias
  (aux-loss-free balancing), keeps the topk_group groups whose two best biased scores
  sum highest, then takes the top k; the weights are the *unbiased* scores,
  normalised when norm_topk_prob, times routed_scaling_factor;
- gpt_oss: top-k of the logits, then softmax over those k.
"""
import torch
import torch.nn.functional as F

SOFTMAX, SIGMOID = "softmax", "sigmoid"


class Family:
    def __init__(self, name, scores, rule, renorm=None):
        self.name = name
        self.scores = scores  # how the full distribution is formed from logits
        self.rule = rule      # selection rule for route()
        self.renorm = renorm  # True / False, or None: read config.norm_topk_prob


FAMILIES = {
    "mixtral": Family("mixtral", SOFTMAX, "softmax_topk", renorm=True),
    "qwen2_moe": Family("qwen2_moe", SOFTMAX, "softmax_topk"),
    "qwen3_moe": Family("qwen3_moe", SOFTMAX, "softmax_topk"),
    "olmoe": Family("olmoe", SOFTMAX, "softmax_topk"),
    "deepseek_v2": Family("deepseek_v2", SOFTMAX, "deepseek_v2"),
    "deepseek_v3": Family("deepseek_v3", SIGMOID, "sigmoid_bias_group"),
    "glm4_moe": Family("glm4_moe", SIGMOID, "sigmoid_bias_group"),
    "gpt_oss": Family("gpt_oss", SOFTMAX, "topk_softmax"),
}
GENERIC = Family("generic", SOFTMAX, "softmax_topk")


def family_of(config):
    """(Family, known): the family for config.model_type, else the generic softmax top-k."""
    name = getattr(config, "model_type", None)
    return (FAMILIES[name], True) if name in FAMILIES else (GENERIC, False)


def config_value(config, names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def num_experts(config):
    return config_value(config, ["num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"])


def top_k(config):
    return config_value(config, ["num_experts_per_tok", "experts_per_token", "moe_top_k", "top_k"])


def rows_are_probabilities(x, tol=1e-2):
    """True when every row is non-negative and sums to 1: some transformers versions
    return softmax probabilities under the name router_logits (transformers issue
    #45120), and a second softmax would flatten them."""
    x = x.float()
    return bool(x.numel() > 0 and x.min() >= 0 and (x.sum(-1) - 1).abs().max() <= tol)


def full_distribution(family, logits, is_probs):
    """[T, E] router distribution before top-k: softmax, or sigmoid scores normalised."""
    if is_probs:
        return logits.float()
    if family.scores == SIGMOID:
        s = torch.sigmoid(logits.float())
        return s / s.sum(-1, keepdim=True)
    return F.softmax(logits.float(), dim=-1)


def _group_mask(group_scores, topk_group, experts_per_group):
    keep = torch.zeros_like(group_scores)
    keep.scatter_(1, torch.topk(group_scores, k=topk_group, dim=-1)[1], 1.0)
    return keep.bool().repeat_interleave(experts_per_group, dim=1)


def route(family, config, block, logits, is_probs):
    """(indices [T, k], weights [T, k]) as the family's model computes them from logits."""
    k = int(top_k(config))
    x = logits.float()
    renorm = family.renorm if family.renorm is not None else bool(getattr(config, "norm_topk_prob", False))
    if family.rule == "softmax_topk":
        p = x if is_probs else F.softmax(x, dim=-1)
        w, idx = torch.topk(p, k, dim=-1)
        return idx, (w / w.sum(-1, keepdim=True) if renorm else w)
    if family.rule == "topk_softmax":
        v, idx = torch.topk(x, k, dim=-1)
        return idx, F.softmax(v, dim=-1)
    scale = float(getattr(config, "routed_scaling_factor", 1.0) or 1.0)
    n_group = int(getattr(config, "n_group", 1) or 1)
    topk_group = int(getattr(config, "topk_group", n_group) or n_group)
    t, e = x.shape
    if family.rule == "deepseek_v2":
        p = x if is_probs else F.softmax(x, dim=-1)
        if getattr(config, "topk_method", "greedy") == "group_limited_greedy":
            mask = _group_mask(p.view(t, n_group, -1).max(-1).values, topk_group, e // n_group)
            p = p.masked_fill(~mask, 0.0)
        w, idx = torch.topk(p, k, dim=-1)
        if renorm and k > 1:
            return idx, w / (w.sum(-1, keepdim=True) + 1e-20)
        return idx, w * scale
    if family.rule == "sigmoid_bias_group":
        gate = getattr(block, "gate", None)
        bias = getattr(gate, "e_score_correction_bias", getattr(block, "e_score_correction_bias", None))
        if bias is None:
            raise ValueError("the %s router has no e_score_correction_bias" % family.name)
        s = torch.sigmoid(x)
        choice = s + bias.to(s.device).float()
        mask = _group_mask(choice.view(t, n_group, -1).topk(2, dim=-1)[0].sum(-1), topk_group, e // n_group)
        idx = torch.topk(choice.masked_fill(~mask, 0.0), k, dim=-1)[1]
        w = s.gather(1, idx)
        if renorm:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        return idx, w * scale
    raise ValueError("unknown routing rule " + family.rule)
