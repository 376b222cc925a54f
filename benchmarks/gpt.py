"""The course's GPT on this CPU: a training step (against PyTorch's), generation with and without
the KV cache, and peak memory.

In one run, on the model of the committed checkpoint (`python -m course_lib train gpt`: 2 layers,
4 heads, d_model 64, n_ctx 64, batches of 32 windows, float32):

1. the training step, `gpt_loss_and_gradients` and one `training.Adam` update, median of
   --repeat rounds; if torch is installed (`pip install -e '.[bridge]'`), the same model in
   PyTorch (the same weights, its loss checked equal first) with `torch.optim.Adam`, timed in the
   same rounds, and the ratio (the issue's goal: the course's step within 2x of PyTorch's);
2. generation, one token at a time, at a few context lengths (a model of the same shape with
   n_ctx 512, untrained weights: the cost does not depend on them): the time to decode a token
   with the KV cache (`gpt_forward_cached`, one new row per layer) and without it (`gpt_forward`
   on the whole context, what `generate(use_cache=False)` runs each step), as tokens per second,
   and the prefill (the whole prompt at once, into an empty cache);
3. peak memory (tracemalloc, which sees numpy's buffers) of one training step and of one
   decoding step with and without the cache at the longest context.

Both run on --threads threads (numpy's BLAS through threadpoolctl, torch.set_num_threads):
default 1, as `lm_training.train_language_model` trains (on a busy 2-core machine a second BLAS
thread mostly waits for a core). Timings are of this machine, now (other programs running change
them): printed, never asserted.

    .venv/bin/python benchmarks/gpt.py            # about a minute; --repeat 20 for steadier figures
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Mapping

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from course_lib.corpus import load_corpus, sample_batch
from course_lib.gpt import (
    GPTConfig,
    KVCache,
    gpt_forward,
    gpt_forward_cached,
    gpt_loss_and_gradients,
    init_gpt,
)
from course_lib.parallel import interleaved_medians, peak_memory
from course_lib.training import Adam

CONTEXTS = (32, 128, 512)
DECODE_STEPS = 8  # tokens decoded per measurement, at the end of each context length


def blas_threads() -> int:
    """The number of threads numpy's BLAS uses (threadpoolctl)."""
    return max((pool["num_threads"] for pool in threadpool_info()
                if pool["user_api"] == "blas"), default=1)


def torch_training_step(params: Mapping[str, np.ndarray], config: GPTConfig, inputs: np.ndarray,
                        targets: np.ndarray) -> tuple[Callable[[], float], float] | None:
    """The same model in PyTorch with the course's weights: (one Adam training step, the loss
    at the course's weights), or None without torch. Learned positions only."""
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812 (the usual name)
    except ImportError:
        return None
    torch.set_num_threads(blas_threads())  # as many as numpy's BLAS (main() limits both)
    weights = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    x, y = torch.tensor(inputs), torch.tensor(targets)
    H, (B, T), d = config.n_heads, inputs.shape, config.d_model

    def heads(Z: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, H, T, d / H)
        return Z.view(B, T, H, d // H).transpose(1, 2)

    def loss_fn() -> torch.Tensor:
        w = weights
        X = w["wte"][x] + w["wpe"][:T]  # (B, T, d)
        for layer in range(config.n_layers):
            p = {name.split(".", 2)[2]: value for name, value in w.items()
                 if name.startswith(f"blocks.{layer}.")}
            Z = F.layer_norm(X, (d,), p["ln1_gamma"], p["ln1_beta"], 1e-5)
            O = F.scaled_dot_product_attention(heads(Z @ p["W_Q"]), heads(Z @ p["W_K"]),
                                               heads(Z @ p["W_V"]), is_causal=True)
            X = X + O.transpose(1, 2).reshape(B, T, d) @ p["W_O"]
            Z = F.layer_norm(X, (d,), p["ln2_gamma"], p["ln2_beta"], 1e-5)
            X = X + F.gelu(Z @ p["W_1"] + p["b_1"], approximate="tanh") @ p["W_2"] + p["b_2"]
        Z = F.layer_norm(X, (d,), w["ln_f_gamma"], w["ln_f_beta"], 1e-5)
        return F.cross_entropy((Z @ w["wte"].T).reshape(B * T, -1), y.reshape(-1))

    with torch.no_grad():
        loss = float(loss_fn())
    optimiser = torch.optim.Adam(list(weights.values()), lr=1e-3)

    def step() -> float:
        optimiser.zero_grad()
        value = loss_fn()
        value.backward()
        optimiser.step()
        return float(value.detach())

    return step, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and torch threads (default: 1, as the training loop)")
    args = parser.parse_args()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        run(args)


def run(args: argparse.Namespace) -> None:
    """The three measurements, printed."""
    corpus = load_corpus()
    config = GPTConfig(vocab_size=corpus.tokenizer.vocab_size, n_ctx=64)
    params = init_gpt(config, np.random.default_rng(0))
    inputs, targets = sample_batch(corpus.train, args.batch_size, config.n_ctx,
                                   np.random.default_rng(0))
    n_params = sum(value.size for value in params.values())
    print(f"model: {config.n_layers} layers, {config.n_heads} heads, d_model {config.d_model}, "
          f"n_ctx {config.n_ctx}, {n_params:,} parameters, float32; batch {args.batch_size} x "
          f"{config.n_ctx} tokens; numpy's BLAS on {blas_threads()} thread(s)")

    course_params = copy.deepcopy(params)
    optimiser = Adam(1e-3)

    def course_step() -> float:
        loss, grads = gpt_loss_and_gradients(course_params, config, inputs, targets)
        optimiser.step(course_params, grads)
        return loss

    steps = {"course": course_step}
    bridge = torch_training_step(params, config, inputs, targets)
    if bridge is not None:
        torch_step, torch_loss = bridge
        course_loss = gpt_loss_and_gradients(params, config, inputs, targets)[0]
        assert abs(torch_loss - course_loss) < 1e-4, (torch_loss, course_loss)
        steps["torch"] = torch_step
    t = interleaved_medians(steps, args.repeat)
    tokens = inputs.size
    print(f"\n1. training step (loss, gradients, Adam), median of {args.repeat}:")
    print(f"   course (numpy): {t['course'] * 1e3:7.1f} ms, {tokens / t['course']:8.0f} tokens/s")
    if bridge is None:
        print("   PyTorch: not installed (pip install -e '.[bridge]'), no comparison")
    else:
        import torch

        ratio = t["course"] / t["torch"]
        print(f"   PyTorch {torch.__version__} ({torch.get_num_threads()} thread(s)): "
              f"{t['torch'] * 1e3:7.1f} ms, {tokens / t['torch']:8.0f} tokens/s; the same loss "
              f"at the same weights ({course_loss:.6f} against {torch_loss:.6f})")
        verdict = "within" if ratio <= 2 else "outside"
        print(f"   the course's step takes {ratio:.2f}x PyTorch's: {verdict} the goal of 2x, on "
              "this machine now")

    long = GPTConfig(vocab_size=config.vocab_size, n_ctx=max(CONTEXTS), d_model=config.d_model,
                     n_heads=config.n_heads, n_layers=config.n_layers)
    long_params = init_gpt(long, np.random.default_rng(1))
    text = corpus.heldout[:max(CONTEXTS)]
    print(f"\n2. generation (n_ctx {long.n_ctx}): seconds per token decoded at a context of c "
          f"tokens (the last {DECODE_STEPS} of c), median of {args.repeat}")
    print(f"{'c':>6} {'prefill c−8':>12} {'with cache':>15} {'without cache':>17} "
          f"{'cache speed-up':>15}")
    per_token: dict[int, tuple[float, float]] = {}
    for c in CONTEXTS:
        prompt = text[:c - DECODE_STEPS]
        prefilled = KVCache()
        gpt_forward_cached(long_params, long, prompt, prefilled)

        def prefill(prompt: np.ndarray = prompt) -> None:
            gpt_forward_cached(long_params, long, prompt, KVCache())

        def cached(c: int = c, prefilled: KVCache = prefilled) -> None:
            cache = copy.deepcopy(prefilled)  # a fresh cache each round: a few small arrays
            for i in range(c - DECODE_STEPS, c):
                gpt_forward_cached(long_params, long, text[i:i + 1], cache)

        def uncached(c: int = c) -> None:
            for i in range(c - DECODE_STEPS, c):
                gpt_forward(long_params, long, text[:i + 1])

        t = interleaved_medians({"prefill": prefill, "cached": cached, "uncached": uncached},
                                args.repeat)
        per_cached, per_uncached = t["cached"] / DECODE_STEPS, t["uncached"] / DECODE_STEPS
        per_token[c] = per_cached, per_uncached
        print(f"{c:>6} {t['prefill'] * 1e3:9.1f} ms {1 / per_cached:9.0f} tok/s "
              f"{1 / per_uncached:11.0f} tok/s {per_uncached / per_cached:14.1f}x")

    short, c = min(CONTEXTS), max(CONTEXTS)
    print(f"   from c = {short} to c = {c} ({c // short}x the context), a token costs "
          f"{per_token[c][0] / per_token[short][0]:.1f}x more with the cache (its query meets "
          f"every cached key) and {per_token[c][1] / per_token[short][1]:.1f}x more without it "
          "(the whole context runs again)")
    cache = KVCache()
    gpt_forward_cached(long_params, long, text[:c - 1], cache)  # filled before measuring
    memory = {
        "training step": peak_memory(course_step),
        f"decoding 1 token at c = {c}, with cache": peak_memory(
            lambda: gpt_forward_cached(long_params, long, text[c - 1:c], cache)),
        f"decoding 1 token at c = {c}, without cache": peak_memory(
            lambda: gpt_forward(long_params, long, text[:c])),
    }
    print("\n3. peak memory (tracemalloc: numpy's buffers; PyTorch's are not seen)")
    for name, size in memory.items():
        print(f"   {name:<40} {size / 2**20:7.1f} MiB")


if __name__ == "__main__":
    main()
