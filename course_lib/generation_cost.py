"""What generating one token costs: a GPT with and without its KV cache, and an RNN (lesson 11).

A GPT (`course_lib.gpt`) of n_layers blocks of width d = d_model, feed-forward width d_ff and a
vocabulary of V tokens generates the token after a context of n tokens in one of two ways:

- **without a cache**, it runs the whole context again (`gpt_forward`): every block computes
  all n rows, and the attention all n × n scores (the causal mask throws half of them away);
- **with a KV cache** (`gpt_forward_cached`), it runs the newest token only: its query meets
  the n keys and values kept from before (its own included).

An Elman RNN (`course_lib.rnn`) of n_layers layers of width d runs one step per layer,
h_t = tanh(x_t W_xh + h_{t−1} W_hh + b_h), whatever n is: the past is summed up in h_{t−1}.

FLOPs count the matrix products (2 per multiply-add), as `course_lib.parallel` does:

    per block and row:   8 d²         q, k, v and the output projection W_O
                         4 d d_ff     the feed-forward network (d -> d_ff -> d)
    per block, mixing:   4 n d        one row against n keys: scores q · k_j and Σ_j α_j v_j
                         4 n² d       all n rows against n keys (the full square, as computed)
    the output head:     2 d V        per row whose logits are computed

    with the cache:      L (8 d² + 4 d d_ff + 4 n d) + 2 d V
    without:             L (n (8 d² + 4 d d_ff) + 4 n² d) + 2 n d V
    RNN step:            L · 4 d²     (the recurrence alone, `parallel.rnn_flops_per_token`)

Memory: the cache holds a key and a value of width d for every layer and every position,
2 L n d numbers; the RNN's state is L d numbers whatever n is.

The timers return the median of repeated wall-clock runs, in seconds, after a warm-up
(`parallel.median_time`); they measure this machine, now. Nothing here draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from course_lib.gpt import GPTConfig, KVCache, gpt_forward, gpt_forward_cached
from course_lib.parallel import median_time, rnn_flops_per_token
from course_lib.rnn import rnn_forward
from course_lib.shapes import check_count

__all__ = [
    "cache_numbers",
    "rnn_state_numbers",
    "gpt_flops_per_token",
    "rnn_flops_per_step",
    "time_per_token",
    "time_rnn_token",
    "time_prefill_and_decode",
]

Params = dict[str, np.ndarray]


def cache_numbers(config: GPTConfig, n: int) -> int:
    """How many numbers a KV cache holds after n tokens: 2 · n_layers · n · d_model.

    One key and one value (d_model numbers each, all heads side by side) per layer and token.
    Multiply by the bytes of a number (4 in float32) for its memory.
    """
    n = check_count(n, "n", minimum=0)
    return 2 * config.n_layers * n * config.d_model


def rnn_state_numbers(d: int, n_layers: int = 1) -> int:
    """How many numbers an RNN of n_layers layers of width d keeps between tokens: n_layers · d,
    whatever the number of tokens seen (its hidden states h_t)."""
    return check_count(n_layers, "n_layers") * check_count(d, "d")


def gpt_flops_per_token(config: GPTConfig, n: int, *, use_cache: bool) -> int:
    """The FLOPs of the matrix products that give the next token's logits after a context of n
    tokens (1 <= n), as `gpt_forward_cached` (use_cache) or `gpt_forward` computes them:

        with the cache:  L (8 d² + 4 d d_ff + 4 n d) + 2 d V
        without:         L (n (8 d² + 4 d d_ff) + 4 n² d) + 2 n d V

    L = n_layers, d = d_model, V = vocab_size. LayerNorm, GELU, the softmax and the
    embeddings (a few operations per number) are left out.
    """
    n = check_count(n, "n")
    L, d, d_ff, V = config.n_layers, config.d_model, config.d_ff, config.vocab_size
    per_row = 8 * d**2 + 4 * d * d_ff  # projections and feed-forward, per row
    if use_cache:
        return L * (per_row + 4 * n * d) + 2 * d * V
    return L * (n * per_row + 4 * n**2 * d) + 2 * n * d * V


def rnn_flops_per_step(d: int, n_layers: int = 1) -> int:
    """The FLOPs of one token through n_layers RNN layers of width d: n_layers · 4 d²."""
    return check_count(n_layers, "n_layers") * rnn_flops_per_token(check_count(d, "d"))


def _tokens(config: GPTConfig, n: int, seed: int) -> np.ndarray:
    """n random token ids (the cost does not depend on which tokens they are)."""
    return np.random.default_rng(seed).integers(0, config.vocab_size, size=n)


def time_per_token(params: Params, config: GPTConfig, contexts: Sequence[int], *,
                   use_cache: bool, repeat: int = 5, seed: int = 0) -> np.ndarray:
    """The median wall-clock time of giving the next token's logits after each context length.

    For n in contexts (1 <= n <= n_ctx), on n random tokens: without the cache, one
    `gpt_forward` of all n tokens; with it, one `gpt_forward_cached` of token n on a cache
    already holding the n − 1 before it (filled once, untimed; each run extends a copy of the
    cache's lists, so every run starts from the same n − 1). Sampling is not included.
    Returns seconds, shape (len(contexts),).
    """
    repeat = check_count(repeat, "repeat")
    seconds = []
    for n in contexts:
        tokens = _tokens(config, check_count(n, "n"), seed)
        if not use_cache:
            seconds.append(median_time(lambda t=tokens: gpt_forward(params, config, t), repeat))
            continue
        past = KVCache()
        if n > 1:
            gpt_forward_cached(params, config, tokens[:-1], past)  # the prefill, untimed

        def step(past: KVCache = past, last: np.ndarray = tokens[-1:]) -> np.ndarray:
            cache = KVCache(list(past.keys), list(past.values), past.length)
            return gpt_forward_cached(params, config, last, cache)

        seconds.append(median_time(step, repeat))
    return np.array(seconds)


def time_rnn_token(d: int, n_layers: int = 1, *, repeat: int = 21, seed: int = 0) -> float:
    """The median wall-clock time of one token through n_layers RNN layers of width d.

    Each layer is one step of `rnn.rnn_forward` (a sequence of one token, from the layer's
    previous hidden state h0): h = tanh(x W_xh + h0 W_hh + b_h), its output the next layer's
    input. Weights N(0, 1/d), seeded, in float32 (as the course's GPT). Returns seconds.
    """
    d, n_layers = check_count(d, "d"), check_count(n_layers, "n_layers")
    rng = np.random.default_rng(seed)

    def draw(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    layers = [(draw(d, d, scale=d**-0.5), draw(d, d, scale=d**-0.5), draw(d, scale=0.0))
              for _ in range(n_layers)]  # (W_xh, W_hh, b_h) of each layer
    states = [draw(d) for _ in range(n_layers)]  # each layer's h_{t-1}
    x0 = draw(1, d)  # one token's input, (1, d)

    def step() -> np.ndarray:
        x = x0
        for (W_xh, W_hh, b_h), h0 in zip(layers, states, strict=True):
            x = rnn_forward(x, W_xh, W_hh, b_h, h0)  # (1, d): h_t of this layer
        return x

    return median_time(step, check_count(repeat, "repeat"))


def time_prefill_and_decode(params: Params, config: GPTConfig, n: int, *, repeat: int = 3,
                            seed: int = 0) -> tuple[float, float]:
    """The median wall-clock times of putting n tokens (n <= n_ctx) into an empty KV cache in
    one call (the prefill: all n rows at once) and one token per call (n calls, as decoding
    does). Both leave the same keys and values in the cache. Returns (prefill, one at a time)
    in seconds, each for all n tokens.
    """
    tokens = _tokens(config, check_count(n, "n"), seed)
    repeat = check_count(repeat, "repeat")

    def prefill() -> KVCache:
        cache = KVCache()
        gpt_forward_cached(params, config, tokens, cache)
        return cache

    def one_at_a_time() -> KVCache:
        cache = KVCache()
        for t in range(n):
            gpt_forward_cached(params, config, tokens[t:t + 1], cache)
        return cache

    return median_time(prefill, repeat), median_time(one_at_a_time, repeat)
