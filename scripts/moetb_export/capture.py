"""Find the MoE blocks of a model and record the routing each one actually did.

A block is a module with an `experts` child and a router child named `gate` or
`router` (the names every supported transformers family uses; dense MLPs and shared
experts have neither, so dense layers and shared experts are never recorded). For each
block, the forward methods of the block, its router, its `route_tokens_to_experts`
method and its `experts` module are wrapped (plain attribute wrapping, which works with
any torch version and with accelerate's device_map hooks). After each block call the
selection is taken from the first of these that holds it:

1. the call of the `experts` module: the indices and weights the experts were run with
   (transformers >= 4.57 style; gpt-oss);
2. the output of `route_tokens_to_experts` (DeepSeek-V2/V3, GLM-4.5);
3. a router output that holds indices (DeepSeek-V3 before 4.57, Mixtral/Qwen/OLMoE
   routers in transformers 5, gpt-oss);
4. the router logits passed through the family's rule (families.route), for blocks
   that select inline from a plain linear gate (Mixtral, Qwen-MoE, OLMoE before 4.57).

So a bias-corrected selection (DeepSeek-V3, GLM-4.5) is recorded as the model made it,
never recomputed from gate weights without the bias. Slots are ordered by weight,
highest first, as the trace format asks (several routers use topk(sorted=False)).
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import families


class CaptureError(Exception):
    pass


def _router_of(block):
    for name in ("gate", "router"):
        module = getattr(block, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def find_moe_blocks(model):
    """[(module name, original layer index, block)] in model order."""
    found = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix, _, _ in found):
            continue
        if isinstance(getattr(module, "experts", None), nn.Module) and _router_of(module) is not None:
            numbers = re.findall(r"(?:^|\.)(\d+)(?=\.|$)", name)
            found.append((name, int(numbers[-1]) if numbers else len(found), module))
    return found


def _tensors(values):
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            out.extend(_tensors(v))
    return out


def _wrap(obj, attr, on_call, undo):
    had_own = attr in vars(obj)
    previous = vars(obj).get(attr)
    inner = getattr(obj, attr)

    def wrapper(*args, **kwargs):
        out = inner(*args, **kwargs)
        on_call(args, kwargs, out)
        return out

    setattr(obj, attr, wrapper)
    undo.append(lambda: setattr(obj, attr, previous) if had_own else delattr(obj, attr))


class LayerTap:
    """Records one MoE block's routing for every model call; take() returns it per token."""

    def __init__(self, name, layer_index, block, config, family, want_probs):
        self.name, self.layer_index, self.block = name, layer_index, block
        self.config, self.family, self.want_probs = config, family, want_probs
        self.router = _router_of(block)
        weight = getattr(self.router, "weight", None)
        n = families.num_experts(config) or (weight.shape[0] if isinstance(weight, torch.Tensor) else None)
        if not n:
            raise CaptureError("%s: cannot tell the number of experts (no num_experts-like config value)" % name)
        self.num_experts = int(n)
        self.top_k = int(families.top_k(config) or 0)
        self.method = None            # how the selection was found (first call)
        self.router_gave_probs = None  # trap: "router_logits" that are probabilities
        self.calls, self.results, self._undo = {}, [], []
        _wrap(block, "forward", self._on_block, self._undo)
        _wrap(self.router, "forward", self._record("router"), self._undo)
        if callable(getattr(block, "route_tokens_to_experts", None)):
            _wrap(block, "route_tokens_to_experts", self._record("route"), self._undo)
        experts = block.experts
        if not isinstance(experts, (nn.ModuleList, nn.ModuleDict)):
            _wrap(experts, "forward", self._record("experts"), self._undo)

    def remove(self):
        for undo in reversed(self._undo):
            undo()
        self._undo = []

    def _record(self, key):
        def on_call(args, kwargs, out):
            self.calls[key] = (args, kwargs, out)
        return on_call

    def _on_block(self, args, kwargs, out):
        hidden = args[0] if args else kwargs.get("hidden_states")
        n_tokens = hidden.numel() // hidden.shape[-1]
        try:
            self.results.append(self._resolve(n_tokens))
        finally:
            self.calls = {}

    # -- selection ---------------------------------------------------------------
    def _pick(self, values, n_tokens):
        """(indices, weights) from the tensors of a call or output, else None."""
        ts = [t for t in _tensors(values) if t.numel() > 0 and t.numel() % n_tokens == 0]
        ints = [t for t in ts if not t.is_floating_point() and t.dtype != torch.bool]
        if not ints:
            return None
        idx = ints[0].reshape(n_tokens, -1).long()
        k, e = idx.shape[1], self.num_experts
        for t in ts:
            if not t.is_floating_point():
                continue
            w = t.reshape(n_tokens, -1)
            if w.shape[1] == k:
                return idx, w.float()
            if w.shape[1] == e and e > k:
                dense, at = w.float(), idx.to(w.device)
                if bool((dense.scatter(1, at, 0.0) == 0).all()):  # a scatter of the top-k weights
                    return idx, dense.gather(1, at)
        return None

    def _logits(self, n_tokens):
        """(router logits [T, E] float, rows are probabilities) or (None, None)."""
        e, x = self.num_experts, None
        if "route" in self.calls:
            args, kwargs, _ = self.calls["route"]
            x = args[0] if args else next(iter(kwargs.values()))
        elif "router" in self.calls:
            args, kwargs, out = self.calls["router"]
            for t in _tensors([out]):
                if t.is_floating_point() and t.numel() == n_tokens * e:
                    cand = t.reshape(n_tokens, e)
                    if bool((cand != 0).sum(-1).min() > max(self.top_k, 1)) or e <= self.top_k:
                        x = cand  # a full distribution, not a scatter of the top-k weights
                        break
            weight = getattr(self.router, "weight", None)
            if x is None and isinstance(weight, torch.Tensor) and weight.shape[0] == e:
                inp = (args[0] if args else next(iter(kwargs.values()))).reshape(n_tokens, -1)
                bias = getattr(self.router, "bias", None)
                x = F.linear(inp.float(), weight.float(), None if bias is None else bias.float())
        if x is None:
            return None, None
        x = x.reshape(n_tokens, e).float()
        return x, families.rows_are_probabilities(x)

    def _resolve(self, n_tokens):
        sel, method = None, None
        if "experts" in self.calls:
            args, kwargs, _ = self.calls["experts"]
            sel, method = self._pick(list(args[1:]) + list(kwargs.values()), n_tokens), "experts call"
        if sel is None and "route" in self.calls:
            sel, method = self._pick([self.calls["route"][2]], n_tokens), "route_tokens_to_experts"
        if sel is None and "router" in self.calls:
            sel, method = self._pick([self.calls["router"][2]], n_tokens), "router output"
        logits, is_probs = self._logits(n_tokens) if (sel is None or self.want_probs) else (None, None)
        if sel is None:
            if logits is None:
                raise CaptureError("%s: no routing seen in this MoE block (router not called; a fused MoE "
                                   "kernel?)" % self.name)
            try:
                sel, method = families.route(self.family, self.config, self.block, logits, is_probs), "router logits + rule"
            except ValueError as e:
                raise CaptureError("%s: %s" % (self.name, e))
        if self.method is None:
            self.method, self.router_gave_probs = method, is_probs
        idx, w = sel
        idx, w = idx.detach().cpu(), w.detach().float().cpu()
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.num_experts):
            raise CaptureError("%s: expert id outside [0, %d)" % (self.name, self.num_experts))
        w, order = torch.sort(w, dim=1, descending=True, stable=True)
        idx = idx.gather(1, order)
        probs = None
        if self.want_probs:
            if logits is None:
                raise CaptureError("%s: the router distribution is not available (--probs)" % self.name)
            probs = families.full_distribution(self.family, logits, is_probs).cpu()
        return idx, w, probs

    def reset(self):
        self.calls, self.results = {}, []

    def take(self, keep):
        """Routing of the last model call for the kept tokens (bool [T] mask, B*S order)."""
        if len(self.results) != 1:
            raise CaptureError("%s: the MoE block ran %d times in one model call, expected once"
                               % (self.name, len(self.results)))
        idx, w, probs = self.results.pop()
        if idx.shape[0] != keep.numel():
            raise CaptureError("%s: routed %d tokens, the batch holds %d" % (self.name, idx.shape[0], keep.numel()))
        return idx[keep], w[keep], (None if probs is None else probs[keep])
