"""The bridge to PyTorch: the course's Transformer block and tiny GPT, rebuilt from torch.nn with
the course's weights copied in, agree with the numpy forward and backward passes (float64).

torch is an optional extra, never a dependency of the course: without it these tests skip,
saying how to install it. PyTorch's conventions, stated where the weights are copied:
nn.Linear computes x Wᵀ + b, so a course matrix W (d_in, d_out) is copied as Wᵀ;
nn.MultiheadAttention holds W_Q, W_K, W_V stacked as in_proj_weight (3·d_model, d_model), and
its boolean attn_mask is True where a token may NOT attend (the course's mask inverted).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the PyTorch bridge needs the 'bridge' extra: pip install -e '.[bridge]' "
    "(torch==2.13.0, a CPU build)")
nn = torch.nn
F = torch.nn.functional

from course_lib.attention import causal_mask  # noqa: E402
from course_lib.gpt import GPTConfig, gpt_forward, gpt_loss_and_gradients, init_gpt  # noqa: E402
from course_lib.transformer import (  # noqa: E402
    BLOCK_PARAM_NAMES,
    transformer_block,
    transformer_block_backward,
)


def rope_torch(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE written again in torch, from RoFormer's formula: pairs (2i, 2i + 1) of row p turned
    by p θ_i, θ_i = base^(−2i / d). x (..., n, d)."""
    n, d = x.shape[-2:]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = torch.arange(n, dtype=torch.float64)[:, None] * theta  # (n, d/2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class TorchBlock(nn.Module):
    """GPT-2's pre-norm block in torch: x + attn(ln_1(x)), then + mlp(ln_2(.)); causal
    multi-head attention without biases; GELU with the tanh approximation."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, rope: bool) -> None:
        super().__init__()
        self.n_heads, self.rope = n_heads, rope
        self.ln_1 = nn.LayerNorm(d_model, eps=1e-5)
        self.attn = nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True)
        self.ln_2 = nn.LayerNorm(d_model, eps=1e-5)
        self.fc = nn.Linear(d_model, d_ff)
        self.proj = nn.Linear(d_ff, d_model)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2]
        if not self.rope:  # PyTorch's own multi-head attention, its mask True = blocked
            blocked = torch.from_numpy(~causal_mask(n))
            return self.attn(x, x, x, attn_mask=blocked, need_weights=False)[0]
        # with RoPE: the same weights, heads split by hand, q and k rotated per head
        q, k, v = F.linear(x, self.attn.in_proj_weight).chunk(3, dim=-1)
        heads = [t.unflatten(-1, (self.n_heads, -1)).transpose(-2, -3) for t in (q, k, v)]
        q, k, v = rope_torch(heads[0]), rope_torch(heads[1]), heads[2]
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.attn.out_proj(o.transpose(-2, -3).flatten(-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.ln_1(x))
        return h + self.proj(F.gelu(self.fc(self.ln_2(h)), approximate="tanh"))


def load_block(block: TorchBlock, p: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Copy the course's block parameters into `block`; returns, under the course's names, the
    torch tensors (transposed views where torch stores Wᵀ) whose .grad are the gradients."""
    t = {name: torch.from_numpy(np.array(value)) for name, value in p.items()}
    with torch.no_grad():
        block.ln_1.weight.copy_(t["ln1_gamma"])
        block.ln_1.bias.copy_(t["ln1_beta"])
        block.attn.in_proj_weight.copy_(torch.cat([t["W_Q"].T, t["W_K"].T, t["W_V"].T]))
        block.attn.out_proj.weight.copy_(t["W_O"].T)
        block.ln_2.weight.copy_(t["ln2_gamma"])
        block.ln_2.bias.copy_(t["ln2_beta"])
        block.fc.weight.copy_(t["W_1"].T)
        block.fc.bias.copy_(t["b_1"])
        block.proj.weight.copy_(t["W_2"].T)
        block.proj.bias.copy_(t["b_2"])
    return {"ln1_gamma": block.ln_1.weight, "ln1_beta": block.ln_1.bias,
            "W_QKV": block.attn.in_proj_weight, "W_O": block.attn.out_proj.weight,
            "ln2_gamma": block.ln_2.weight, "ln2_beta": block.ln_2.bias,
            "W_1": block.fc.weight, "b_1": block.fc.bias, "W_2": block.proj.weight,
            "b_2": block.proj.bias}


def torch_grads(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The gradients of the torch tensors, under the course's names and in its layout."""
    grads = {name: t.grad.numpy() for name, t in tensors.items()}
    for name in ("W_O", "W_1", "W_2"):
        grads[name] = grads[name].T  # torch's weight is Wᵀ
    for name, g in zip(("W_Q", "W_K", "W_V"), np.split(grads.pop("W_QKV"), 3), strict=True):
        grads[name] = g.T
    return grads


def block_params(rng: np.random.Generator, d_model: int, d_ff: int) -> dict[str, np.ndarray]:
    shapes = {"W_1": (d_model, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d_model)}
    return {name: (name.endswith("gamma") + 0.4 * rng.standard_normal(
        shapes.get(name, (d_model, d_model) if name.startswith("W") else (d_model,))))
        for name in BLOCK_PARAM_NAMES}


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize(("batch", "n", "d_model", "n_heads", "d_ff"),
                         [((2,), 7, 16, 4, 64), ((3, 2), 5, 8, 2, 12), ((1,), 1, 4, 1, 4)])
def test_block_agrees_with_pytorch_forward_and_backward(
        rope: bool, batch: tuple[int, ...], n: int, d_model: int, n_heads: int,
        d_ff: int) -> None:
    rng = np.random.default_rng(n * d_model)
    X, dY = rng.standard_normal((2, *batch, n, d_model))
    p = block_params(rng, d_model, d_ff)
    module = TorchBlock(d_model, n_heads, d_ff, rope).double()
    tensors = load_block(module, p)
    x = torch.from_numpy(X.reshape(-1, n, d_model).copy()).requires_grad_(True)
    y = module(x)
    np.testing.assert_allclose(transformer_block(X, p, n_heads, rope=rope),
                               y.detach().numpy().reshape(X.shape), rtol=1e-10, atol=1e-12)
    (y * torch.from_numpy(dY.reshape(-1, n, d_model))).sum().backward()
    dX, grads = transformer_block_backward(X, p, n_heads, dY, rope=rope)
    np.testing.assert_allclose(dX, x.grad.numpy().reshape(X.shape), rtol=1e-9, atol=1e-11)
    expected = torch_grads(tensors)
    for name in BLOCK_PARAM_NAMES:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-9, atol=1e-11,
                                   err_msg=name)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_gpt_loss_and_gradients_agree_with_pytorch(positions: str) -> None:
    """The whole model in torch (embedding, blocks, final LayerNorm, the tied head, the mean
    cross-entropy), autograd against the course's gpt_loss_and_gradients."""
    config = GPTConfig(vocab_size=11, n_ctx=8, d_model=16, n_heads=2, n_layers=2,
                       positions=positions)
    rng = np.random.default_rng(0)
    params = {k: v + 0.1 * rng.standard_normal(v.shape)
              for k, v in init_gpt(config, rng, np.float64).items()}
    tokens, targets = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    blocks = [TorchBlock(16, 2, 64, config.rope).double() for _ in range(2)]
    tensors = [load_block(b, {n: params[f"blocks.{l}.{n}"] for n in BLOCK_PARAM_NAMES})
               for l, b in enumerate(blocks)]
    wte = torch.from_numpy(params["wte"].copy()).requires_grad_(True)
    wpe = torch.from_numpy(params.get("wpe", np.zeros((8, 16))).copy()).requires_grad_(True)
    ln_f = nn.LayerNorm(16, eps=1e-5).double()
    with torch.no_grad():
        ln_f.weight.copy_(torch.from_numpy(params["ln_f_gamma"]))
        ln_f.bias.copy_(torch.from_numpy(params["ln_f_beta"]))
    x = wte[torch.from_numpy(tokens)] + (wpe if positions == "learned" else 0)
    for block in blocks:
        x = block(x)
    logits = ln_f(x) @ wte.T
    loss = F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(targets).flatten())
    loss.backward()
    np.testing.assert_allclose(gpt_forward(params, config, tokens), logits.detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    ours, grads = gpt_loss_and_gradients(params, config, tokens, targets)
    assert ours == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(grads["wte"], wte.grad.numpy(), rtol=1e-9, atol=1e-12)
    if positions == "learned":
        np.testing.assert_allclose(grads["wpe"], wpe.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["ln_f_gamma"], ln_f.weight.grad.numpy(), rtol=1e-9)
    for layer, t in enumerate(tensors):
        expected = torch_grads(t)
        for name in BLOCK_PARAM_NAMES:
            np.testing.assert_allclose(grads[f"blocks.{layer}.{name}"], expected[name],
                                       rtol=1e-9, atol=1e-12, err_msg=f"{layer} {name}")
