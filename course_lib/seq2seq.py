"""An encoder-decoder Transformer in plain numpy: it reads a source and writes its translation.

For a source s_1 .. s_n (padded in a batch; `src_is_token` says which are words) and a target
whose first T tokens the decoder is given (BOS then the target so far, teacher forcing):

    X_0 = E_src[s] + PE[0:n]                          source embeddings (+ sinusoidal
                                                      positions, Vaswani et al. 2017)  (.., n, d)
    X_l = block_l(X_{l−1}),  l = 1..L_enc             encoder blocks: `transformer_block` with
                                                      causal=False and the padding mask (every
                                                      word sees every word, none sees padding)
    M   = LN_enc(X_L)                                 the memory: one row per source word
    Y_0 = E_tgt[y] + PE[0:T]                          target embeddings                (.., T, d)
    Y_l = dec_block_l(Y_{l−1}, M),  l = 1..L_dec      decoder blocks (`decoder_block`): causal
                                                      self-attention, cross-attention to M
                                                      (queries from the target, keys and values
                                                      from the memory, padding masked), FFN
    logits = LN_dec(Y_L) W_out                        the next target token's scores (.., T, V_tgt)
    L = −(1/N) Σ_positions log softmax(logits)[next token]      teacher forcing: every position
                                                      predicts the token after it, given the true
                                                      ones before it

`translate` decodes greedily: from BOS, the most likely token, appended, until EOS. The cross-
attention weights of every decoder layer (`seq2seq_attention`) are the maps of where each
target token looks in the source.

Parameters are a flat dict of arrays (names in `init_seq2seq`), for `training.Adam` and
numpy .npz checkpoints. Math layer: numpy and the course's math modules only. Sources:
Vaswani et al. 2017 (the encoder-decoder, sinusoidal positions); Radford et al. 2019 (pre-norm,
the initialisation); Bahdanau et al. 2014 (attention for translation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from course_lib.attention import padding_mask, sinusoidal_positions
from course_lib.gpt import causal_lm_loss
from course_lib.shapes import BLOCK_PARAM_NAMES, check_block_widths, check_count
from course_lib.transformer import (
    DECODER_PARAM_NAMES,
    BlockCache,
    DecoderBlockCache,
    LayerNormCache,
    decoder_block_backward_cached,
    decoder_block_with_cache,
    layer_norm_backward_cached,
    layer_norm_with_cache,
    transformer_block_backward_cached,
    transformer_block_with_cache,
)

__all__ = [
    "Seq2SeqConfig",
    "init_seq2seq",
    "encoder_params",
    "decoder_params",
    "seq2seq_forward",
    "seq2seq_attention",
    "seq2seq_loss_and_gradients",
    "translate",
    "GRUSeq2SeqConfig",
    "init_gru_seq2seq",
    "gru_seq2seq_loss_and_gradients",
    "gru_translate",
]

Params = dict[str, np.ndarray]
PAD, BOS, EOS = 0, 1, 2  # the ids `course_lib.translation_task` uses


@dataclass(frozen=True)
class Seq2SeqConfig:
    """The shape of an encoder-decoder: source and target vocabularies, width d_model, n_heads
    heads in every attention, n_encoder_layers and n_decoder_layers blocks, a feed-forward width
    d_ff (None: 4 · d_model). Padding is id 0 in both vocabularies, BOS 1 and EOS 2 in the
    target's."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    d_ff: int | None = None

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "n_encoder_layers", "n_decoder_layers"):
            check_count(getattr(self, name), name)
        object.__setattr__(self, "d_ff", check_block_widths(self.d_model, self.n_heads, self.d_ff))
        if self.tgt_vocab_size <= EOS:
            raise ValueError("the target vocabulary needs padding (0), BOS (1) and EOS (2).")


def init_seq2seq(config: Seq2SeqConfig, rng: np.random.Generator,
                 dtype: type = np.float32) -> Params:
    """The initial parameters, drawn from rng in the order of their names:

    "src_embedding" (src_vocab, d_model) and "tgt_embedding" (tgt_vocab, d_model), N(0, 1), the
    scale of the sinusoidal positions they are added to; "encoder.{l}.{name}" for each name of
    `BLOCK_PARAM_NAMES`; "encoder_ln_gamma", "encoder_ln_beta"; "decoder.{l}.{name}" for each
    name of `transformer.DECODER_PARAM_NAMES`; "decoder_ln_gamma", "decoder_ln_beta"; "W_out"
    (d_model, tgt_vocab). Weights N(0, 0.02²), the projections that write into a residual stream
    (W_O, cross_W_O, W_2) scaled by 1 / √(number of residual branches), biases 0, LayerNorm
    γ = 1, β = 0 (GPT-2's scheme, Radford et al. 2019). Returns arrays of `dtype`.
    """
    d, d_ff, std = config.d_model, config.d_ff, 0.02
    shapes = {"W_1": (d, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d), "b_2": (d,)}

    def block(prefix: str, names: tuple[str, ...], branches: int) -> Params:
        out = {}
        for name in names:
            shape = shapes.get(name, (d,) if "gamma" in name or "beta" in name else (d, d))
            if name.endswith("gamma"):
                value = np.ones(shape)
            elif name.endswith("beta") or name.startswith("b_"):
                value = np.zeros(shape)
            else:
                scale = std / math.sqrt(branches) if name in ("W_O", "cross_W_O", "W_2") else std
                value = scale * rng.standard_normal(shape)
            out[f"{prefix}{name}"] = value
        return out

    params = {"src_embedding": rng.standard_normal((config.src_vocab_size, d)),
              "tgt_embedding": rng.standard_normal((config.tgt_vocab_size, d))}
    for layer in range(config.n_encoder_layers):
        params |= block(f"encoder.{layer}.", BLOCK_PARAM_NAMES, 2 * config.n_encoder_layers)
    params |= {"encoder_ln_gamma": np.ones(d), "encoder_ln_beta": np.zeros(d)}
    for layer in range(config.n_decoder_layers):
        params |= block(f"decoder.{layer}.", DECODER_PARAM_NAMES, 3 * config.n_decoder_layers)
    params |= {"decoder_ln_gamma": np.ones(d), "decoder_ln_beta": np.zeros(d),
               "W_out": std * rng.standard_normal((d, config.tgt_vocab_size))}
    return {name: value.astype(dtype) for name, value in params.items()}


def encoder_params(params: Params, layer: int) -> dict[str, np.ndarray]:
    """Encoder block `layer`'s parameters under the block's own names (W_Q, ...)."""
    return {name: params[f"encoder.{layer}.{name}"] for name in BLOCK_PARAM_NAMES}


def decoder_params(params: Params, layer: int) -> dict[str, np.ndarray]:
    """Decoder block `layer`'s parameters under the decoder block's own names."""
    return {name: params[f"decoder.{layer}.{name}"] for name in DECODER_PARAM_NAMES}


@dataclass
class _ForwardCache:
    """What the model's forward pass keeps for the backward pass."""

    src: np.ndarray
    tgt_in: np.ndarray
    encoder: list[BlockCache]
    encoder_ln: LayerNormCache
    decoder: list[DecoderBlockCache]
    decoder_ln: LayerNormCache
    final: np.ndarray  # LN_dec(Y_L), (B, T, d_model)


def _check_ids(ids: object, vocab_size: int, name: str) -> np.ndarray:
    """Token ids as int64 (B, n), n >= 1, each below vocab_size."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must be integer token ids; got dtype {ids.dtype}.")
    if ids.ndim != 2 or ids.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (B, n) with n >= 1; got {ids.shape}.")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"{name} must lie in 0 .. {vocab_size - 1}; got ids from {ids.min()} "
                         f"to {ids.max()}.")
    return ids.astype(np.int64, copy=False)


def _source_mask(src: np.ndarray, src_is_token: np.ndarray | None) -> np.ndarray:
    """The key-padding mask of the source, (B, 1, n): True for a real word."""
    is_token = src != PAD if src_is_token is None else np.asarray(src_is_token, dtype=bool)
    if is_token.shape != src.shape:
        raise ValueError(f"src_is_token must have the shape of src {src.shape}; "
                         f"got {is_token.shape}.")
    if not is_token.any(axis=-1).all():
        raise ValueError("every source needs at least one word (a row of src_is_token is all "
                         "False).")
    return padding_mask(is_token)


def _forward(params: Params, config: Seq2SeqConfig, src: np.ndarray, tgt_in: np.ndarray,
             src_is_token: np.ndarray | None) -> tuple[np.ndarray, _ForwardCache]:
    """The logits (B, T, tgt_vocab) and the cache of the backward pass."""
    src = _check_ids(src, config.src_vocab_size, "src")
    tgt_in = _check_ids(tgt_in, config.tgt_vocab_size, "tgt_in")
    if len(src) != len(tgt_in):
        raise ValueError(f"src and tgt_in must hold as many sequences; got {len(src)} and "
                         f"{len(tgt_in)}.")
    mask = _source_mask(src, src_is_token)  # (B, 1, n)
    dtype = params["src_embedding"].dtype
    d = config.d_model
    X = params["src_embedding"][src] + sinusoidal_positions(src.shape[1], d).astype(dtype)
    encoder = []
    for layer in range(config.n_encoder_layers):  # X_l, (B, n, d_model)
        X, cache = transformer_block_with_cache(X, encoder_params(params, layer), config.n_heads,
                                                causal=False, mask=mask)
        encoder.append(cache)
    memory, encoder_ln = layer_norm_with_cache(X, params["encoder_ln_gamma"],
                                               params["encoder_ln_beta"])  # M, (B, n, d_model)
    Y = params["tgt_embedding"][tgt_in] + sinusoidal_positions(tgt_in.shape[1], d).astype(dtype)
    decoder = []
    for layer in range(config.n_decoder_layers):  # Y_l, (B, T, d_model)
        Y, cache = decoder_block_with_cache(Y, memory, decoder_params(params, layer),
                                            config.n_heads, mask)
        decoder.append(cache)
    final, decoder_ln = layer_norm_with_cache(Y, params["decoder_ln_gamma"],
                                              params["decoder_ln_beta"])  # (B, T, d_model)
    logits = final @ params["W_out"]  # (B, T, tgt_vocab)
    return logits, _ForwardCache(src, tgt_in, encoder, encoder_ln, decoder, decoder_ln, final)


def seq2seq_forward(params: Params, config: Seq2SeqConfig, src: np.ndarray, tgt_in: np.ndarray,
                    src_is_token: np.ndarray | None = None) -> np.ndarray:
    """The logits of the next target token at every position of the decoder's input.

    src: int (B, n) source ids, padded with 0; tgt_in: int (B, T), BOS then the target's first
    T − 1 tokens; src_is_token: bool (B, n), True for a real word (None: src != 0). Returns
    logits (B, T, tgt_vocab) in the parameters' dtype: row t scores the token after tgt_in[:, t],
    having seen the whole source and tgt_in[:, :t + 1] only.
    """
    return _forward(params, config, src, tgt_in, src_is_token)[0]


def seq2seq_attention(params: Params, config: Seq2SeqConfig, src: np.ndarray,
                      tgt_in: np.ndarray, src_is_token: np.ndarray | None = None,
                      ) -> dict[str, list[np.ndarray]]:
    """The attention weights of every layer, for the maps: {"encoder": per encoder layer
    (B, n_heads, n, n), "decoder": per decoder layer, its causal self-attention (B, n_heads, T, T),
    "cross": per decoder layer, its cross-attention (B, n_heads, T, n)}: row t of "cross" says
    where in the source the decoder looks when it predicts the token after tgt_in[:, t]."""
    cache = _forward(params, config, src, tgt_in, src_is_token)[1]
    return {"encoder": [c.attention.weights for c in cache.encoder],
            "decoder": [c.attention.weights for c in cache.decoder],
            "cross": [c.cross.weights for c in cache.decoder]}


def seq2seq_loss_and_gradients(params: Params, config: Seq2SeqConfig, src: np.ndarray,
                               tgt_in: np.ndarray, tgt_out: np.ndarray,
                               src_is_token: np.ndarray | None = None) -> tuple[float, Params]:
    """The teacher-forcing loss and its gradients with respect to every parameter.

    tgt_out: int (B, T), the token each position must predict (tgt_in shifted by one, then
    EOS). L = the mean cross-entropy over all B · T positions (`gpt.causal_lm_loss`). Backward,
    from the logits down; the memory M gets the gradients of every decoder layer's
    cross-attention, then goes back through the encoder:

        logits = F W_out      ->  dW_out = Σ Fᵀ dlogits,  dF = dlogits W_outᵀ
        F = LN_dec(Y_L)       ->  dY_L (LayerNorm's backward)
        Y_l = dec_l(Y_l−1, M) ->  dY_{l−1}, dM += dM_l, the block's gradients, l = L_dec .. 1
        Y_0 = E_tgt[y] + PE   ->  dE_tgt[y] += dY_0
        M = LN_enc(X_L)       ->  dX_L
        X_l = enc_l(X_l−1)    ->  dX_{l−1}, the block's gradients, l = L_enc .. 1
        X_0 = E_src[s] + PE   ->  dE_src[s] += dX_0

    Returns (L, grads), grads keyed like params, each of its parameter's shape and dtype.
    """
    logits, cache = _forward(params, config, src, tgt_in, src_is_token)
    loss, dlogits = causal_lm_loss(logits, tgt_out)  # dlogits (B, T, tgt_vocab)
    d = config.d_model
    grads = {"W_out": cache.final.reshape(-1, d).T @ dlogits.reshape(-1, dlogits.shape[-1])}
    dY, grads["decoder_ln_gamma"], grads["decoder_ln_beta"] = layer_norm_backward_cached(
        cache.decoder_ln, params["decoder_ln_gamma"], dlogits @ params["W_out"].T)  # dY_L
    dmemory = np.zeros(cache.encoder_ln.x_hat.shape, dtype=dY.dtype)  # dM, (B, n, d_model)
    for layer in reversed(range(config.n_decoder_layers)):
        dY, dM, block = decoder_block_backward_cached(cache.decoder[layer],
                                                      decoder_params(params, layer), dY)
        dmemory += dM
        grads |= {f"decoder.{layer}.{name}": g for name, g in block.items()}
    grads["tgt_embedding"] = np.zeros_like(params["tgt_embedding"])
    np.add.at(grads["tgt_embedding"], cache.tgt_in.reshape(-1), dY.reshape(-1, d))
    dX, grads["encoder_ln_gamma"], grads["encoder_ln_beta"] = layer_norm_backward_cached(
        cache.encoder_ln, params["encoder_ln_gamma"], dmemory)  # dX_L
    for layer in reversed(range(config.n_encoder_layers)):
        dX, block = transformer_block_backward_cached(cache.encoder[layer],
                                                      encoder_params(params, layer), dX)
        grads |= {f"encoder.{layer}.{name}": g for name, g in block.items()}
    grads["src_embedding"] = np.zeros_like(params["src_embedding"])
    np.add.at(grads["src_embedding"], cache.src.reshape(-1), dX.reshape(-1, d))
    return loss, {name: grads[name].astype(params[name].dtype, copy=False) for name in params}


def translate(params: Params, config: Seq2SeqConfig, src: np.ndarray,
              src_is_token: np.ndarray | None = None, max_length: int = 16) -> np.ndarray:
    """Greedy decoding: from BOS, append the most likely next token until EOS or max_length.

    src: int (B, n) (or one source (n,)). Each step runs the decoder on everything written so
    far (the sequences are short: no cache) and takes the argmax of the last position's logits.
    Returns int64 (B, L) (or (L,)), the tokens written after BOS, EOS included where written,
    0 (padding) after it; L <= max_length.
    """
    src = np.asarray(src)
    single = src.ndim == 1
    src = src[None] if single else src
    if src_is_token is not None and single:
        src_is_token = np.asarray(src_is_token)[None]
    max_length = check_count(max_length, "max_length")
    written = np.full((len(src), 1), BOS, dtype=np.int64)  # (B, 1 + steps)
    done = np.zeros(len(src), dtype=bool)
    for _ in range(max_length):
        logits = seq2seq_forward(params, config, src, written, src_is_token)[:, -1]  # (B, V)
        next_token = np.where(done, PAD, np.argmax(logits, axis=-1))  # (B,)
        written = np.concatenate([written, next_token[:, None]], axis=1)
        done |= next_token == EOS
        if done.all():
            break
    out = written[:, 1:]
    return out[0] if single else out


# --- the RNN encoder-decoder of Bahdanau's time, with and without attention --------------------


@dataclass(frozen=True)
class GRUSeq2SeqConfig:
    """A GRU encoder-decoder (Cho et al. 2014; Sutskever et al. 2014) of width d_h; with
    attention=True, the decoder also reads the encoder's states through cross-attention (Luong
    et al. 2015's form of Bahdanau et al. 2014's idea). Padding 0, BOS 1, EOS 2 as in
    `Seq2SeqConfig`."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_h: int = 64
    attention: bool = True

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "d_h"):
            check_count(getattr(self, name), name)


def init_gru_seq2seq(config: GRUSeq2SeqConfig, rng: np.random.Generator,
                     dtype: type = np.float32) -> Params:
    """Parameters: "src_embedding" (src_vocab, d_h), "tgt_embedding" (tgt_vocab, d_h), N(0, 1);
    "encoder.W_x", "encoder.W_h" (d_h, 3·d_h), "encoder.b_x", "encoder.b_h" (3·d_h,), the same
    for "decoder.", drawn U(−1/√d_h, 1/√d_h) as torch.nn.GRU; with attention "W_Q", "W_K",
    "W_V" (d_h, d_h), N(0, 1/d_h); "W_out" ((2 with attention, else 1) · d_h, tgt_vocab),
    N(0, 0.02²), and "b_out" (tgt_vocab,) zeros."""
    d = config.d_h
    bound = 1 / math.sqrt(d)
    params = {"src_embedding": rng.standard_normal((config.src_vocab_size, d)),
              "tgt_embedding": rng.standard_normal((config.tgt_vocab_size, d))}
    for side in ("encoder", "decoder"):
        for name, shape in (("W_x", (d, 3 * d)), ("W_h", (d, 3 * d)), ("b_x", (3 * d,)),
                            ("b_h", (3 * d,))):
            params[f"{side}.{name}"] = rng.uniform(-bound, bound, shape)
    if config.attention:
        for name in ("W_Q", "W_K", "W_V"):
            params[name] = rng.standard_normal((d, d)) / math.sqrt(d)
    width = 2 * d if config.attention else d
    params["W_out"] = 0.02 * rng.standard_normal((width, config.tgt_vocab_size))
    params["b_out"] = np.zeros(config.tgt_vocab_size)
    return {name: value.astype(dtype) for name, value in params.items()}


def _gru(params: Params, side: str) -> tuple[np.ndarray, ...]:
    return tuple(params[f"{side}.{name}"] for name in ("W_x", "W_h", "b_x", "b_h"))


def gru_seq2seq_loss_and_gradients(params: Params, config: GRUSeq2SeqConfig, src: np.ndarray,
                                   tgt_in: np.ndarray, tgt_out: np.ndarray,
                                   src_is_token: np.ndarray | None = None,
                                   ) -> tuple[float, Params]:
    """Teacher-forcing loss and gradients of the GRU encoder-decoder:

        H_enc = GRU_enc(E_src[s])                  (B, n, d_h); padding comes after the words,
                                                   so it never changes the words' states
        h_0 = H_enc[last word]                     the whole source in one vector (B, d_h)
        H_dec = GRU_dec(E_tgt[y], h_0)             (B, T, d_h)
        C = cross_attention(H_dec, H_enc, W_Q, W_K, W_V, padding mask)   (with attention only)
        logits = [H_dec | C] W_out + b_out         (B, T, tgt_vocab)

    Without attention, everything the decoder knows of the source passes through h_0 (the
    bottleneck attention removed). Backward: the logits' gradient splits into H_dec's and C's;
    C's goes through `cross_attention_backward` into H_dec and H_enc; the decoder's
    `gru_backward` gives dh_0, which joins H_enc's gradient at each source's last word; then
    the encoder's `gru_backward`. Returns (L, grads keyed like params).
    """
    from course_lib.attention import cross_attention, cross_attention_backward
    from course_lib.rnn import gru_backward, gru_forward

    src = _check_ids(src, config.src_vocab_size, "src")
    tgt_in = _check_ids(tgt_in, config.tgt_vocab_size, "tgt_in")
    mask = _source_mask(src, src_is_token)  # (B, 1, n)
    rows, last = np.arange(len(src)), mask[:, 0].sum(axis=-1) - 1  # each source's last word
    X_enc, X_dec = params["src_embedding"][src], params["tgt_embedding"][tgt_in]
    H_enc = gru_forward(X_enc, *_gru(params, "encoder"))  # (B, n, d_h)
    h_0 = H_enc[rows, last]  # (B, d_h)
    H_dec = gru_forward(X_dec, *_gru(params, "decoder"), h0=h_0)  # (B, T, d_h)
    attention = ("W_Q", "W_K", "W_V")
    if config.attention:
        C, _ = cross_attention(H_dec, H_enc, *(params[k] for k in attention), mask)
        F = np.concatenate([H_dec, C], axis=-1)  # (B, T, 2·d_h)
    else:
        F = H_dec
    logits = F @ params["W_out"] + params["b_out"]  # (B, T, tgt_vocab)
    loss, dlogits = causal_lm_loss(logits, tgt_out)
    d = config.d_h
    grads = {"W_out": F.reshape(-1, F.shape[-1]).T @ dlogits.reshape(-1, dlogits.shape[-1]),
             "b_out": dlogits.reshape(-1, dlogits.shape[-1]).sum(axis=0)}
    dF = dlogits @ params["W_out"].T  # (B, T, width)
    dH_dec, dH_enc = dF[..., :d], np.zeros_like(H_enc)
    if config.attention:
        dH_q, dH_kv, *dW = cross_attention_backward(H_dec, H_enc, *(params[k] for k in attention),
                                                    dF[..., d:], mask)
        dH_dec, dH_enc = dH_dec + dH_q, dH_enc + dH_kv
        grads |= dict(zip(attention, dW, strict=True))
    dX_dec, *dec, dh_0 = gru_backward(X_dec, *_gru(params, "decoder"), dH_dec, h0=h_0)
    np.add.at(dH_enc, (rows, last), dh_0)  # h_0 is each source's last state
    dX_enc, *enc, _ = gru_backward(X_enc, *_gru(params, "encoder"), dH_enc)
    for side, side_grads in (("encoder", enc), ("decoder", dec)):
        grads |= {f"{side}.{name}": g for name, g in zip(("W_x", "W_h", "b_x", "b_h"),
                                                         side_grads, strict=True)}
    for name, ids, dX in (("src_embedding", src, dX_enc), ("tgt_embedding", tgt_in, dX_dec)):
        grads[name] = np.zeros_like(params[name])
        np.add.at(grads[name], ids.reshape(-1), dX.reshape(-1, d))
    return loss, {name: grads[name].astype(params[name].dtype, copy=False) for name in params}


def gru_translate(params: Params, config: GRUSeq2SeqConfig, src: np.ndarray,
                  src_is_token: np.ndarray | None = None, max_length: int = 16) -> np.ndarray:
    """Greedy decoding with the GRU encoder-decoder, as `translate`: int (B, L), the tokens
    after BOS, EOS included, 0 after it. (Each step reruns the decoder on what it wrote: the
    sequences are short.)"""
    from course_lib.attention import cross_attention
    from course_lib.rnn import gru_forward

    src = _check_ids(src, config.src_vocab_size, "src")
    mask = _source_mask(src, src_is_token)
    rows, last = np.arange(len(src)), mask[:, 0].sum(axis=-1) - 1
    H_enc = gru_forward(params["src_embedding"][src], *_gru(params, "encoder"))
    written = np.full((len(src), 1), BOS, dtype=np.int64)
    done = np.zeros(len(src), dtype=bool)
    for _ in range(check_count(max_length, "max_length")):
        H_dec = gru_forward(params["tgt_embedding"][written], *_gru(params, "decoder"),
                            h0=H_enc[rows, last])[:, -1:]  # (B, 1, d_h)
        F = H_dec
        if config.attention:
            C, _ = cross_attention(H_dec, H_enc, params["W_Q"], params["W_K"], params["W_V"],
                                   mask)
            F = np.concatenate([H_dec, C], axis=-1)
        logits = (F @ params["W_out"] + params["b_out"])[:, 0]  # (B, tgt_vocab)
        next_token = np.where(done, PAD, np.argmax(logits, axis=-1))
        written = np.concatenate([written, next_token[:, None]], axis=1)
        done |= next_token == EOS
        if done.all():
            break
    return written[:, 1:]
