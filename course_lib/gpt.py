"""A tiny GPT in plain numpy: token and position embeddings, pre-norm blocks, a tied output head.

For tokens t_1 .. t_T (integers below vocab_size), with E = wte (vocab_size, d_model):

    X_0 = E[t] + P[0:T]                 embeddings; P = wpe, learned ("learned" positions), or
                                        nothing, the positions then entering every block's
                                        queries and keys by RoPE ("rope")    (..., T, d_model)
    X_l = block_l(X_{l−1}),  l = 1..L   `transformer.transformer_block`      (..., T, d_model)
    logits = LN_f(X_L) Eᵀ               the output head is the embedding, transposed (weight
                                        tying, as GPT-2)                      (..., T, vocab_size)
    L = −(1/N) Σ_positions log softmax(logits)[target]     the mean cross-entropy of predicting
                                        each next token (targets = tokens shifted by one)

Generation samples one token at a time from softmax(logits_T / temperature), optionally among
the top_k most likely only, and appends it. Without a cache, every step runs the whole context
again; with a `KVCache`, each step runs only the new token, reading the keys and values of the
tokens before it from the cache (the prompt is run once, all at once: the prefill).

Parameters are a flat dict of arrays (names in `init_gpt`), so that the course's optimiser
(`training.Adam`) and checkpoints (numpy .npz) take them as they are. Sources: Radford et al.
2019 (GPT-2); Vaswani et al. 2017; Su et al. 2021 (RoPE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from course_lib.attention import softmax
from course_lib.shapes import (
    BLOCK_PARAM_NAMES,
    as_float_array,
    check_block_widths,
    check_count,
    check_tokens,
)
from course_lib.transformer import (
    BlockCache,
    LayerNormCache,
    layer_norm_backward_cached,
    layer_norm_with_cache,
    transformer_block_backward_cached,
    transformer_block_with_cache,
)

__all__ = [
    "GPTConfig",
    "init_gpt",
    "block_params",
    "gpt_forward",
    "gpt_attention_weights",
    "causal_lm_loss",
    "gpt_loss_and_gradients",
    "KVCache",
    "gpt_forward_cached",
    "sample_next",
    "generate",
]

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT: vocab_size tokens, a context of n_ctx positions, n_layers blocks of
    width d_model with n_heads heads and a feed-forward width d_ff (None: 4 · d_model, as
    GPT-2); positions "learned" (a table wpe, as GPT-2) or "rope" (rotary, in every block)."""

    vocab_size: int
    n_ctx: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    positions: Literal["learned", "rope"] = "learned"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_ctx", "n_layers"):
            check_count(getattr(self, name), name)
        object.__setattr__(self, "d_ff", check_block_widths(self.d_model, self.n_heads, self.d_ff))
        if self.positions not in ("learned", "rope"):
            raise ValueError(f'positions must be "learned" or "rope"; got {self.positions!r}.')
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("RoPE rotates pairs of features: d_model / n_heads must be even.")

    @property
    def rope(self) -> bool:
        """True when the positions enter as rotary embeddings."""
        return self.positions == "rope"


def init_gpt(config: GPTConfig, rng: np.random.Generator, dtype: type = np.float32) -> Params:
    """GPT-2's initialisation: weights N(0, 0.02²), biases 0, LayerNorm γ = 1 and β = 0, and the
    projections that write into the residual stream (W_O, W_2) scaled by 1 / √(2 · n_layers),
    so that the stream's variance does not grow with depth (Radford et al. 2019, section 2.3).

    Names: "wte" (vocab_size, d_model), the token embedding, also the output head; "wpe"
    (n_ctx, d_model) with learned positions; "blocks.{l}.{name}" for l = 0 .. n_layers − 1 and
    each name of `transformer.BLOCK_PARAM_NAMES`; "ln_f_gamma", "ln_f_beta" (d_model,).
    Draws from rng in this order. Returns a dict of arrays of `dtype`.
    """
    d, d_ff, std = config.d_model, config.d_ff, 0.02
    residual_std = std / math.sqrt(2 * config.n_layers)
    shapes = {"W_Q": (d, d), "W_K": (d, d), "W_V": (d, d), "W_O": (d, d),
              "W_1": (d, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d), "b_2": (d,)}
    params = {"wte": std * rng.standard_normal((config.vocab_size, d))}
    if not config.rope:
        params["wpe"] = std * rng.standard_normal((config.n_ctx, d))
    for layer in range(config.n_layers):
        for name in BLOCK_PARAM_NAMES:
            if name.endswith("gamma"):
                value = np.ones(d)
            elif name.endswith("beta") or name.startswith("b_"):
                value = np.zeros(shapes.get(name, (d,)))
            else:
                scale = residual_std if name in ("W_O", "W_2") else std
                value = scale * rng.standard_normal(shapes[name])
            params[f"blocks.{layer}.{name}"] = value
    params["ln_f_gamma"], params["ln_f_beta"] = np.ones(d), np.zeros(d)
    return {name: value.astype(dtype) for name, value in params.items()}


def block_params(params: Params, layer: int) -> dict[str, np.ndarray]:
    """The parameters of block `layer`, under the block's own names (W_Q, ...)."""
    return {name: params[f"blocks.{layer}.{name}"] for name in BLOCK_PARAM_NAMES}


@dataclass
class _ForwardCache:
    """What the model's forward pass keeps for the backward pass."""

    tokens: np.ndarray
    blocks: list[BlockCache]
    ln_f: LayerNormCache
    final: np.ndarray  # LN_f(X_L), (..., T, d_model)


def _embed(params: Params, config: GPTConfig, tokens: np.ndarray, start: int = 0) -> np.ndarray:
    """X_0 = E[t] (+ P[start : start + T] with learned positions), (..., T, d_model)."""
    X = params["wte"][tokens]  # (..., T, d_model), a copy (fancy indexing)
    if not config.rope:
        X = X + params["wpe"][start:start + tokens.shape[-1]]
    return X


def _forward(params: Params, config: GPTConfig, tokens: np.ndarray) -> tuple[np.ndarray,
                                                                               _ForwardCache]:
    """The logits (..., T, vocab_size) and the cache of the backward pass."""
    X = _embed(params, config, tokens)  # X_0, (..., T, d_model)
    caches = []
    for layer in range(config.n_layers):
        X, cache = transformer_block_with_cache(X, block_params(params, layer), config.n_heads,
                                                rope=config.rope)  # X_l, (..., T, d_model)
        caches.append(cache)
    final, ln_f = layer_norm_with_cache(X, params["ln_f_gamma"], params["ln_f_beta"])  # LN_f(X_L)
    logits = final @ params["wte"].T  # (..., T, vocab_size)
    return logits, _ForwardCache(tokens, caches, ln_f, final)


def gpt_forward(params: Params, config: GPTConfig, tokens: np.ndarray) -> np.ndarray:
    """The logits of the next token at every position: LN_f(blocks(E[t] + P)) Eᵀ.

    tokens: int array (T,) or (B, T), 1 <= T <= n_ctx, ids below vocab_size. Returns logits
    (..., T, vocab_size) in the parameters' dtype: row t scores every possible token t + 1,
    having seen tokens 0 .. t only (the causal mask).
    """
    tokens = check_tokens(tokens, config.vocab_size, config.n_ctx)
    return _forward(params, config, tokens)[0]


def gpt_attention_weights(params: Params, config: GPTConfig,
                          tokens: np.ndarray) -> list[np.ndarray]:
    """The attention weights α of every layer on `tokens`: a list of n_layers arrays
    (..., n_heads, T, T), row i of head h of layer l saying where token i looks."""
    tokens = check_tokens(tokens, config.vocab_size, config.n_ctx)
    return [cache.attention.weights for cache in _forward(params, config, tokens)[1].blocks]


def causal_lm_loss(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean cross-entropy of the next tokens, and its gradient with respect to the logits.

        L = −(1/N) Σ_i log p_i[y_i],   p_i = softmax(logits_i)      over all N positions
        dlogits_i = (p_i − onehot(y_i)) / N

    Shapes: logits (..., T, vocab_size), targets int (..., T) -> (L as a float, dlogits of the
    shape and dtype of logits). log p is computed as z − max − log Σ exp(z − max): no overflow.
    """
    logits = as_float_array(logits, "logits", 2, "(..., T, vocab_size)")
    targets = check_tokens(targets, logits.shape[-1], logits.shape[-2], "targets")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must have shape {logits.shape[:-1]} (one per position of "
                         f"the logits); got {targets.shape}.")
    z = logits.reshape(-1, logits.shape[-1])  # (N, vocab_size)
    y = targets.reshape(-1)  # (N,)
    shifted = z - z.max(axis=-1, keepdims=True)  # (N, vocab_size)
    log_total = np.log(np.exp(shifted).sum(axis=-1))  # log Σ exp(z − max), (N,)
    rows = np.arange(y.size)
    loss = float(np.mean(log_total - shifted[rows, y], dtype=np.float64))  # −mean log p[y]
    dlogits = np.exp(shifted - log_total[:, None])  # p, (N, vocab_size)
    dlogits[rows, y] -= 1
    dlogits /= y.size
    return loss, dlogits.reshape(logits.shape)


def gpt_loss_and_gradients(params: Params, config: GPTConfig, tokens: np.ndarray,
                           targets: np.ndarray) -> tuple[float, Params]:
    """The mean next-token cross-entropy of `tokens` against `targets`, and its gradients.

    tokens, targets: int (B, T) or (T,), targets[..., t] the token that follows tokens[..., t].
    Returns (L, grads), grads keyed like params, each the shape and dtype of its parameter.
    Backward, from the logits down (the steps of each block: `transformer`):

        logits = F Eᵀ       ->  dE = dlogitsᵀ F (the head),  dF = dlogits E
        F = LN_f(X_L)       ->  dγ_f, dβ_f, dX_L              (LayerNorm's backward)
        X_l = block(X_l−1)  ->  dX_{l−1} and the block's gradients, l = L .. 1
        X_0 = E[t] + P      ->  dE[t] += dX_0 (each row to its token), dP = Σ_batch dX_0
    """
    tokens = check_tokens(tokens, config.vocab_size, config.n_ctx)
    logits, cache = _forward(params, config, tokens)
    loss, dlogits = causal_lm_loss(logits, targets)
    d = config.d_model
    grads = {"wte": dlogits.reshape(-1, config.vocab_size).T @ cache.final.reshape(-1, d)}
    dX, grads["ln_f_gamma"], grads["ln_f_beta"] = layer_norm_backward_cached(
        cache.ln_f, params["ln_f_gamma"], dlogits @ params["wte"])  # dX_L, (..., T, d_model)
    for layer in reversed(range(config.n_layers)):
        dX, block_grads = transformer_block_backward_cached(
            cache.blocks[layer], block_params(params, layer), dX)  # dX_{l−1}
        grads.update({f"blocks.{layer}.{name}": g for name, g in block_grads.items()})
    np.add.at(grads["wte"], tokens.reshape(-1), dX.reshape(-1, d))  # dE[t] += dX_0
    if not config.rope:
        grads["wpe"] = np.zeros_like(params["wpe"])
        grads["wpe"][:tokens.shape[-1]] = dX.reshape(-1, *dX.shape[-2:]).sum(axis=0)
    return loss, {name: grads[name].astype(params[name].dtype, copy=False) for name in params}


# --- generation ------------------------------------------------------------------------------


@dataclass
class KVCache:
    """The keys and values of the tokens seen so far, per layer, and how many there are.

    keys[l] and values[l] are (n_heads, length, d_head): layer l's K and V of every past token
    (after RoPE, when used), appended to at each step; `length` is also the position of the
    next token. Empty at the start (`KVCache()`); `gpt_forward_cached` fills it.
    """

    keys: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    length: int = 0


def gpt_forward_cached(params: Params, config: GPTConfig, tokens: np.ndarray,
                       cache: KVCache) -> np.ndarray:
    """The logits of new tokens given the cache of the tokens before them; the cache grows.

    tokens: int (T_new,), positions cache.length .. cache.length + T_new − 1, which must stay
    below n_ctx. The prompt at once (the prefill: T_new = T0, an empty cache), then one token
    per step (decoding). Each block computes the new tokens' rows only: their queries meet the
    cached keys, and their keys and values are appended to the cache. Returns logits
    (T_new, vocab_size), equal (up to rounding) to the last T_new rows of gpt_forward on the
    whole sequence.
    """
    tokens = check_tokens(tokens, config.vocab_size, config.n_ctx)
    if tokens.ndim != 1:
        raise ValueError(f"gpt_forward_cached takes one sequence (T_new,); got {tokens.shape}.")
    if cache.length + tokens.shape[0] > config.n_ctx:
        raise ValueError(f"the cache holds {cache.length} tokens: {tokens.shape[0]} more would "
                         f"pass the context of n_ctx = {config.n_ctx} positions.")
    X = _embed(params, config, tokens, start=cache.length)  # (T_new, d_model)
    for layer in range(config.n_layers):
        past = (cache.keys[layer], cache.values[layer]) if cache.length else None
        X, block = transformer_block_with_cache(X, block_params(params, layer), config.n_heads,
                                                rope=config.rope, past=past)
        if cache.length:
            cache.keys[layer], cache.values[layer] = block.attention.K, block.attention.V
        else:
            cache.keys.append(block.attention.K)
            cache.values.append(block.attention.V)
    cache.length += tokens.shape[0]
    final, _ = layer_norm_with_cache(X, params["ln_f_gamma"], params["ln_f_beta"])  # LN_f(X)
    return final @ params["wte"].T  # (T_new, vocab_size)


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None,
                rng: np.random.Generator) -> int:
    """Draw the next token from softmax(logits / temperature), among the top_k largest only.

    Divide by the temperature first, then take the softmax: below 1 it sharpens the
    distribution towards the most likely token, above 1 flattens it. temperature = 0 means
    greedy (the argmax; the limit of temperature -> 0), and draws nothing from rng. top_k keeps
    the k largest logits and sets the others to −∞ (ties at the k-th value: the lower ids).
    One draw u = rng.random() picks the token whose cumulative probability first exceeds u.
    logits (vocab_size,). Returns an int.
    """
    logits = as_float_array(logits, "logits", 1, "(vocab_size,)").astype(np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must be one row (vocab_size,); got {logits.shape}.")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a number >= 0; got {temperature!r}.")
    if top_k is not None:
        top_k = check_count(top_k, "top_k")
        kept = np.argsort(-logits, kind="stable")[:top_k]  # the k largest, lower ids on ties
        logits = np.where(np.isin(np.arange(logits.size), kept), logits, -np.inf)
    if temperature == 0:
        return int(np.argmax(logits))
    p = softmax((logits - logits.max()) / temperature)  # temperature first, then softmax
    return int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), logits.size - 1))


def generate(params: Params, config: GPTConfig, prompt: np.ndarray, n_new: int, *,
             temperature: float = 1.0, top_k: int | None = None, rng: np.random.Generator,
             use_cache: bool = True) -> np.ndarray:
    """Continue `prompt` by n_new sampled tokens: prompt (T0,) -> tokens (T0 + n_new,).

    Each step samples from the logits of the last position (`sample_next`) and appends. With
    use_cache=False, each step runs `gpt_forward` on the whole context, cropped to its last
    n_ctx tokens. With use_cache=True, the prompt (cropped) is run once (prefill) into a
    `KVCache`, then each step runs only the new token (decoding). When the context outgrows
    n_ctx, the cache is rebuilt from the cropped context (a learned position table ends at
    n_ctx), so both ways give the same tokens for a seed (up to rounding at a near tie).
    """
    prompt = check_tokens(prompt, config.vocab_size, np.iinfo(np.int64).max, "prompt")
    n_new = check_count(n_new, "n_new", minimum=0)
    if prompt.ndim != 1:
        raise ValueError(f"prompt must be one sequence (T0,); got shape {prompt.shape}.")
    tokens = list(prompt)
    cache = KVCache()
    for _ in range(n_new):
        context = np.array(tokens[-config.n_ctx:])
        if not use_cache:
            logits = gpt_forward(params, config, context)[-1]
        elif cache.length == 0 or cache.length + 1 > config.n_ctx:
            cache = KVCache()  # prefill: the whole (cropped) context at once
            logits = gpt_forward_cached(params, config, context, cache)[-1]
        else:
            logits = gpt_forward_cached(params, config, context[-1:], cache)[-1]
        tokens.append(sample_next(logits, temperature, top_k, rng))
    return np.array(tokens, dtype=np.int64)
