"""What a trained GPT's heads do, as numbers: attention patterns scored, heads removed.

Lesson 12 looks inside the tiny GPT of lesson 10 (`lm_training.load_checkpoint()`). Its heads'
attention weights α (`gpt.gpt_attention_weights`, one (..., n_heads, T, T) array per layer) are
scored against two patterns that transformers trained on text are known to form (Elhage et
al. 2021, "A mathematical framework for transformer circuits"; Olsson et al. 2022, "In-context
learning and induction heads"):

- **previous-token score** of a head: the mean weight on the token just before,
  mean_i α_{i,i−1} over the positions i = 1 .. T − 1 (and every sequence). A head that looks
  uniformly at what it may see scores the chance level mean_i 1 / (i + 1).
- **induction score** of a head: on sequences [r, r], a block r of L random tokens repeated
  once, the mean weight that a token of the second copy, at position i = L .. 2L − 1, puts on
  the token after the first occurrence of itself, position i − L + 1: the token that came next
  last time. Its chance level is mean_i 1 / (i + 1) over those positions.

Attention weights say where a head looks, not whether what it finds matters to the output. The
other measurement removes one head at a time and measures the loss on held-out text:

- **ablation**: the output of head h of layer l, o_i = Σ_j α_ij v_j (d_head numbers per
  position), is replaced by zeros ("zero") or by its mean over the positions of the batch
  ("mean"), everything else unchanged; `ablation_losses` returns the cross-entropy of every
  window with each head so removed, against the full model's, so that the difference can be
  given with its standard error over the windows.

The ablated forward pass (`gpt_forward_ablated`) is the model of `course_lib.gpt` written out
from the public pieces of `course_lib.transformer` and `course_lib.attention`, one head at a time;
with nothing ablated it gives `gpt.gpt_forward`'s logits (a test checks it). Experiments layer:
imports the math and the course data, returns numbers and never draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from course_lib.attention import attention_weights, causal_mask, merge_heads, split_heads
from course_lib.gpt import GPTConfig, block_params, gpt_attention_weights
from course_lib.shapes import check_count, check_tokens
from course_lib.transformer import feed_forward, layer_norm, rope

__all__ = [
    "previous_token_scores",
    "previous_token_chance",
    "repeated_random_tokens",
    "repeated_passages",
    "induction_scores",
    "induction_chance",
    "head_outputs",
    "gpt_forward_ablated",
    "window_losses",
    "AblationResult",
    "ablation_losses",
    "repeated_sequence_losses",
    "InductionSummary",
    "induction_summary",
]

Params = Mapping[str, np.ndarray]
Head = tuple[int, int]
"""A head, as (layer, head), both counted from 0."""


def _stack(weights: Sequence[np.ndarray]) -> np.ndarray:
    """The layers' weights as one array (n_layers, ..., n_heads, T, T)."""
    return np.stack([np.asarray(w, dtype=np.float64) for w in weights])


def previous_token_scores(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Each head's mean weight on the previous token: mean over i >= 1 (and batch) of α_{i,i−1}.

    weights: one array per layer, (..., n_heads, T, T) (as `gpt.gpt_attention_weights` returns),
    T >= 2. Returns (n_layers, n_heads), float64.
    """
    W = _stack(weights)  # (L, ..., H, T, T)
    if W.shape[-1] < 2:
        raise ValueError("the previous-token score needs sequences of 2 tokens or more.")
    diagonal = np.diagonal(W, offset=-1, axis1=-2, axis2=-1)  # α_{i,i−1}, (L, ..., H, T − 1)
    per_head = np.moveaxis(diagonal, -2, 1)  # (L, H, ..., T − 1)
    return per_head.reshape(*per_head.shape[:2], -1).mean(axis=-1)  # (L, H)


def previous_token_chance(n: int) -> float:
    """The previous-token score of a head that spreads its weight evenly over what it may see:
    mean over i = 1 .. n − 1 of 1 / (i + 1) (token i sees the i + 1 tokens 0 .. i)."""
    i = np.arange(1, check_count(n, "n"))
    return float(np.mean(1.0 / (i + 1))) if i.size else float("nan")


def repeated_random_tokens(vocab_size: int, length: int, batch_size: int,
                           rng: np.random.Generator, low: int = 1) -> np.ndarray:
    """Sequences [r, r]: a block r of `length` tokens drawn uniformly from low .. vocab_size − 1,
    then the same block again. Shape (batch_size, 2 · length), int64. (low = 1 leaves out token 0,
    the tokenizer's unknown symbol.)"""
    vocab_size, length = check_count(vocab_size, "vocab_size"), check_count(length, "length")
    if not 0 <= low < vocab_size:
        raise ValueError(f"low must be in 0 .. vocab_size − 1; got {low}.")
    r = rng.integers(low, vocab_size, size=(check_count(batch_size, "batch_size"), length))
    return np.concatenate([r, r], axis=1).astype(np.int64)  # (B, 2L)


def repeated_passages(tokens: np.ndarray, length: int, batch_size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Sequences [p, p]: a passage p of `length` consecutive tokens of a text (`tokens`, 1-D),
    at a start drawn uniformly, then the same passage again. Shape (batch_size, 2 · length),
    int64. Real text where `repeated_random_tokens` has random characters: the model knows its
    spelling, so only the second copy's gain over the first shows copying."""
    tokens = np.asarray(tokens)
    length = check_count(length, "length")
    if tokens.ndim != 1 or len(tokens) < length:
        raise ValueError(f"tokens must be one sequence of at least length = {length} tokens; "
                         f"got shape {tokens.shape}.")
    starts = rng.integers(0, len(tokens) - length + 1, size=check_count(batch_size, "batch_size"))
    p = tokens[starts[:, None] + np.arange(length)]  # (B, L)
    return np.concatenate([p, p], axis=1).astype(np.int64)  # (B, 2L)


def induction_scores(weights: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Each head's mean weight, on sequences [r, r] with |r| = length, from the second copy's
    token at position i = L .. 2L − 1 to position i − L + 1 (the token after its first
    occurrence). weights: one array per layer, (..., n_heads, 2L, 2L). Returns (n_layers, n_heads).
    """
    W = _stack(weights)  # (L_layers, ..., H, 2L, 2L)
    L = check_count(length, "length")
    if W.shape[-1] != 2 * L or W.shape[-2] != 2 * L:
        raise ValueError(f"weights must be over 2 · length = {2 * L} tokens; got {W.shape[-2:]}.")
    i = np.arange(L, 2 * L)  # the second copy's positions
    picked = W[..., i, i - L + 1]  # α_{i, i−L+1}, (L_layers, ..., H, L)
    per_head = np.moveaxis(picked, -2, 1)  # (L_layers, H, ..., L)
    return per_head.reshape(*per_head.shape[:2], -1).mean(axis=-1)


def induction_chance(length: int) -> float:
    """The induction score of a head that spreads its weight evenly: mean over i = L .. 2L − 1
    of 1 / (i + 1)."""
    L = check_count(length, "length")
    i = np.arange(L, 2 * L)
    return float(np.mean(1.0 / (i + 1)))


# --- the forward pass, one head at a time --------------------------------------------------------


def _heads(X: np.ndarray, p: Mapping[str, np.ndarray], n_heads: int,
           use_rope: bool) -> np.ndarray:
    """The heads' outputs o = α V of causal multi-head attention on X (..., T, d_model), before
    W_O: (..., n_heads, T, d_head). Head h uses the columns h·d_head .. (h+1)·d_head − 1."""
    T = X.shape[-2]
    Q, K, V = (split_heads(X @ p[W], n_heads) for W in ("W_Q", "W_K", "W_V"))  # (.., H, T, d_head)
    if use_rope:
        Q, K = rope(Q), rope(K)  # positions 0 .. T − 1
    alpha = attention_weights(Q, K, causal_mask(T))  # (..., n_heads, T, T)
    return alpha @ V  # o_i = Σ_j α_ij v_j, (..., n_heads, T, d_head)


def _forward(params: Params, config: GPTConfig, tokens: np.ndarray,
             replace: Mapping[Head, np.ndarray | float]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The logits, and each layer's heads' outputs (..., n_heads, T, d_head) as computed (before
    any replacement): head (l, h)'s output is replaced by replace[(l, h)] (broadcast to
    (..., T, d_head)) before W_O."""
    X = params["wte"][tokens]  # X_0 = E[t], (..., T, d_model)
    if not config.rope:
        X = X + params["wpe"][:tokens.shape[-1]]  # + P[0:T]
    outputs = []
    for layer in range(config.n_layers):
        p = block_params(dict(params), layer)
        heads = _heads(layer_norm(X, p["ln1_gamma"], p["ln1_beta"]), p, config.n_heads,
                       config.rope)  # (..., H, T, d_head)
        outputs.append(heads)
        changed = heads.copy()
        for (l, h), value in replace.items():
            if l == layer:
                changed[..., h, :, :] = value
        concat = merge_heads(changed)  # heads side by side, (..., T, d_model)
        H = X + concat @ p["W_O"]  # H = X + MHA(LN_1(X))
        X = H + feed_forward(layer_norm(H, p["ln2_gamma"], p["ln2_beta"]),
                             p["W_1"], p["b_1"], p["W_2"], p["b_2"])  # Y = H + FFN(LN_2(H))
    final = layer_norm(X, params["ln_f_gamma"], params["ln_f_beta"])  # LN_f(X_L)
    return final @ params["wte"].T, outputs  # logits, (..., T, vocab_size)


def _check_heads(config: GPTConfig, heads: Sequence[Head]) -> list[Head]:
    checked = []
    for layer, head in heads:
        if not (0 <= layer < config.n_layers and 0 <= head < config.n_heads):
            raise ValueError(f"head ({layer}, {head}) does not exist: layers 0 .. "
                             f"{config.n_layers - 1}, heads 0 .. {config.n_heads - 1}.")
        checked.append((int(layer), int(head)))
    return checked


def head_outputs(params: Params, config: GPTConfig, tokens: np.ndarray) -> list[np.ndarray]:
    """Every head's output o_i = Σ_j α_ij v_j on `tokens` (T,) or (B, T): one array per layer,
    (..., n_heads, T, d_head), the full model's (nothing removed)."""
    tokens = check_tokens(tokens, config.vocab_size, config.n_ctx)
    return _forward(params, config, tokens, {})[1]


def gpt_forward_ablated(params: Params, config: GPTConfig, tokens: np.ndarray,
                        ablate: Sequence[Head] = (), *, mode: Literal["zero", "mean"] = "zero",
                        means: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The GPT's logits (..., T, vocab_size) with the heads in `ablate` removed.

    A removed head's output o_i (d_head,) is replaced at every position i by zeros
    (mode="zero") or by `means[l][h]` (mode="mean"; means: one (n_heads, d_head) array per layer,
    default: the mean of each head's output over all positions of `tokens`). With nothing removed,
    the logits of `gpt.gpt_forward`. tokens: int (T,) or (B, T), T <= n_ctx.
    """
    tokens = check_tokens(tokens, config.vocab_size, config.n_ctx)
    ablate = _check_heads(config, ablate)
    if mode not in ("zero", "mean"):
        raise ValueError(f'mode must be "zero" or "mean"; got {mode!r}.')
    if mode == "mean" and means is None and ablate:
        means = _mean_outputs(head_outputs(params, config, tokens))
    replace = {(l, h): 0.0 if mode == "zero" else means[l][h] for l, h in ablate}
    return _forward(params, config, tokens, replace)[0]


def _mean_outputs(outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each head's output averaged over batch and positions: per layer (n_heads, d_head)."""
    return [np.moveaxis(o, -3, 0).reshape(o.shape[-3], -1, o.shape[-1]).mean(axis=1)
            for o in outputs]


def window_losses(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The mean cross-entropy −log p(target) of each window: logits (B, T, vocab), targets (B, T)
    -> (B,), float64. log p = z − max − log Σ exp(z − max), as `gpt.causal_lm_loss`."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)  # (B, T, vocab)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # log softmax
    picked = np.take_along_axis(log_p, np.asarray(targets)[..., None], axis=-1)[..., 0]  # (B, T)
    return -picked.mean(axis=-1)


@dataclass(frozen=True)
class AblationResult:
    """Held-out loss with one head removed at a time.

    full: the full model's loss per window (B,); ablated: (n_layers, n_heads, B), the loss per
    window with that head removed; mode: "zero" or "mean". Properties give the means and the
    increase with its standard error over the windows (paired: same windows, both models).
    """

    full: np.ndarray
    ablated: np.ndarray
    mode: str

    @property
    def full_loss(self) -> float:
        """The full model's mean loss over the windows."""
        return float(self.full.mean())

    @property
    def loss(self) -> np.ndarray:
        """(n_layers, n_heads): the mean loss with each head removed."""
        return self.ablated.mean(axis=-1)

    @property
    def increase(self) -> np.ndarray:
        """(n_layers, n_heads): loss with the head removed − full loss (mean over windows)."""
        return (self.ablated - self.full).mean(axis=-1)

    @property
    def standard_error(self) -> np.ndarray:
        """(n_layers, n_heads): the standard error of `increase` over the B windows."""
        difference = self.ablated - self.full  # (L, H, B)
        return difference.std(axis=-1, ddof=1) / np.sqrt(difference.shape[-1])


def ablation_losses(params: Params, config: GPTConfig, inputs: np.ndarray, targets: np.ndarray,
                    *, mode: Literal["zero", "mean"] = "zero") -> AblationResult:
    """The held-out loss per window of the full model and with each head removed in turn.

    inputs, targets: int (B, T), targets = inputs shifted by one (`corpus.sample_batch`). With
    mode="mean", the replacement is each head's mean output over these same windows.
    """
    inputs = check_tokens(inputs, config.vocab_size, config.n_ctx)
    targets = check_tokens(targets, config.vocab_size, config.n_ctx, "targets")
    if inputs.ndim != 2 or targets.shape != inputs.shape:
        raise ValueError(f"inputs and targets must both be (B, T); got {inputs.shape} and "
                         f"{targets.shape}.")
    logits, outputs = _forward(params, config, inputs, {})
    full = window_losses(logits, targets)
    means = _mean_outputs(outputs) if mode == "mean" else None
    ablated = np.empty((config.n_layers, config.n_heads, len(inputs)))
    for layer in range(config.n_layers):
        for head in range(config.n_heads):
            logits = gpt_forward_ablated(params, config, inputs, [(layer, head)], mode=mode,
                                         means=means)
            ablated[layer, head] = window_losses(logits, targets)
    return AblationResult(full, ablated, mode)


def repeated_sequence_losses(params: Params, config: GPTConfig, sequences: np.ndarray,
                             ablate: Sequence[Head] = (), *,
                             mode: Literal["zero", "mean"] = "zero"
                             ) -> tuple[np.ndarray, np.ndarray]:
    """The loss of predicting each copy of [r, r] (sequences (B, 2L) from
    `repeated_random_tokens` or `repeated_passages`, 2L <= n_ctx + 1): (first, second), each
    (B,), the mean cross-entropy of the tokens 1 .. L − 1 of the first copy and of the tokens
    1 .. L − 1 of the second copy. A model that copies from its context (what induction heads
    do) predicts the second copy far better than the first; a model that does not, about as
    badly. ablate, mode: the model with those heads removed (`gpt_forward_ablated`; "mean":
    each head's mean output over these sequences)."""
    sequences = np.asarray(sequences)
    L = sequences.shape[-1] // 2
    if sequences.ndim != 2 or sequences.shape[-1] != 2 * L or L < 2:
        raise ValueError(f"sequences must be (B, 2L) with L >= 2; got {sequences.shape}.")
    logits = gpt_forward_ablated(params, config, sequences[:, :-1], ablate,
                                 mode=mode)  # (B, 2L − 1, vocab)
    first = window_losses(logits[:, :L - 1], sequences[:, 1:L])  # predict r_1 .. r_{L−1}
    second = window_losses(logits[:, L:], sequences[:, L + 1:])  # predict them again
    return first, second


@dataclass(frozen=True)
class InductionSummary:
    """The strongest induction head of a model on sequences [r, r] (|r| = length).

    head: (layer, head) with the highest induction score among the layers after the first (an
    induction head needs an earlier layer's previous-token head; a 1-layer model: among its
    heads); score: its score; chance: `induction_chance(length)`; first_copy_loss,
    second_copy_loss: the mean loss on each copy (`repeated_sequence_losses`).
    """

    head: Head
    score: float
    chance: float
    first_copy_loss: float
    second_copy_loss: float

    def to_json(self) -> dict[str, Any]:
        """The fields, rounded to 4 decimals, for a checkpoint's provenance."""
        return {"head": list(self.head), "score": round(self.score, 4),
                "chance": round(self.chance, 4),
                "first_copy_loss": round(self.first_copy_loss, 4),
                "second_copy_loss": round(self.second_copy_loss, 4)}


def induction_summary(params: Params, config: GPTConfig,
                      sequences: np.ndarray) -> InductionSummary:
    """`InductionSummary` of the model on `sequences` (B, 2L) ([r, r], from `repeated_passages`
    or `repeated_random_tokens`, 2L <= n_ctx)."""
    sequences = check_tokens(sequences, config.vocab_size, config.n_ctx, "sequences")
    length = sequences.shape[-1] // 2
    scores = induction_scores(gpt_attention_weights(params, config, sequences), length)  # (L, H)
    first_layer = 1 if config.n_layers > 1 else 0
    layer, head = np.unravel_index(np.argmax(scores[first_layer:]), scores[first_layer:].shape)
    first, second = repeated_sequence_losses(params, config, sequences)
    return InductionSummary((int(layer) + first_layer, int(head)),
                            float(scores[layer + first_layer, head]), induction_chance(length),
                            float(first.mean()), float(second.mean()))
