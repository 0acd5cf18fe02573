"""Ghost norms (autoopt_lab.stats.ghost) against the loop-over-samples reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.stats import ghost, record, track
from autoopt_lab.stats.loop import loop_per_sample_grads
from autoopt_lab.stats.rules import conv_patches


def _weighted(g: torch.Tensor, weights) -> torch.Tensor:
    """``sum_i g_i^T W g_i`` from per-sample gradients ``(N, *shape)``."""
    g2 = g.double().square().reshape(g.shape[0], g.shape[1], -1).sum(0)
    if weights is None:
        return g2.sum()
    row, col = weights
    return row.double() @ g2 @ col.double()


def _output_grad(module: nn.Module, run) -> torch.Tensor:
    """The gradient reaching ``module``'s output during ``run()``."""
    seen = {}

    def hook(m, inputs, output):
        output.register_hook(lambda g: seen.update(dz=g))

    handle = module.register_forward_hook(hook)
    run()
    handle.remove()
    return seen["dz"]


def _weights(kind: str, out: int, in_: int):
    if kind == "identity":
        return None
    gen = torch.Generator().manual_seed(out * 31 + in_)
    return (
        torch.rand(out, generator=gen, dtype=torch.float64) + 0.1,
        torch.rand(in_, generator=gen, dtype=torch.float64) + 0.1,
    )


class SeqNet(nn.Module):
    """A Linear on ``(N, T, in)`` inputs, pooled over T, then a head."""

    def __init__(self, d_in=5, d_hid=4, classes=3, bias=True):
        super().__init__()
        self.lin = nn.Linear(d_in, d_hid, bias=bias)
        self.head = nn.Linear(d_hid, classes)

    def forward(self, x):
        return F.log_softmax(self.head(torch.tanh(self.lin(x)).mean(1)), dim=1)


class ConvNet(nn.Module):
    def __init__(self, conv: nn.Module, features: int, classes=3):
        super().__init__()
        self.conv = conv
        self.head = nn.Linear(features, classes)

    def forward(self, x):
        return F.log_softmax(self.head(torch.tanh(self.conv(x)).flatten(1)), dim=1)


CONVS = [  # (dims, c_in, c_out, kernel, stride, padding, dilation, groups)
    (1, 3, 4, 3, 1, 0, 1, 1),
    (1, 4, 6, 3, 2, 1, 2, 2),
    (2, 2, 3, 3, 1, 1, 1, 1),
    (2, 4, 6, (2, 3), 2, (1, 0), (2, 1), 2),
    (2, 6, 6, 3, 1, 2, 1, 3),
]


def _conv_net(dims, c_in, c_out, kernel, stride, padding, dilation, groups, size=7):
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    conv = cls(
        c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    x = torch.randn(4, c_in, *([size] * dims), dtype=torch.float64)
    features = conv.double()(x)[0].numel()
    return ConvNet(conv, features).double(), x


@pytest.mark.parametrize("kind", ["identity", "rank1"])
@pytest.mark.parametrize("spec", CONVS)
def test_conv_ghost_norm_matches_loop(spec, kind):
    torch.manual_seed(0)
    model, x = _conv_net(*spec)
    y = torch.randint(0, 3, (x.shape[0],))
    ref = loop_per_sample_grads(model, F.nll_loss, x, y)["conv.weight"]
    conv = model.conv
    # with a summed loss, dz holds each sample's own output gradient
    dz = _output_grad(conv, lambda: F.nll_loss(model(x), y, reduction="sum").backward())
    padded = F.pad(x, [q for p in reversed(conv.padding) for q in (p, p)])
    cols = conv_patches(padded, conv.kernel_size, conv.stride, conv.dilation)
    w = _weights(kind, conv.weight.shape[0], conv.weight[0].numel())
    q = ghost.conv_ghost_norm(cols, dz, conv.groups, w)
    torch.testing.assert_close(q, _weighted(ref, w), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["identity", "rank1"])
def test_linear_ghost_norm_matches_loop(kind):
    torch.manual_seed(1)
    model = SeqNet().double()
    x, y = torch.randn(5, 6, 5, dtype=torch.float64), torch.randint(0, 3, (5,))
    ref = loop_per_sample_grads(model, F.nll_loss, x, y)["lin.weight"]
    dz = _output_grad(model.lin, lambda: F.nll_loss(model(x), y, reduction="sum").backward())
    w = _weights(kind, 4, 5)
    q = ghost.linear_ghost_norm(x, dz, w)
    torch.testing.assert_close(q, _weighted(ref, w), rtol=1e-10, atol=1e-12)


def _check_tracked(model, x, y, reduction, fused, weights, path="ghost"):
    """The tracker's statistics and gradients against the loop, with ``path`` forced."""
    ref = loop_per_sample_grads(model, F.nll_loss, x, y)
    model.zero_grad()
    for name, p in model.named_parameters():
        record.publish_weights(p, weights.get(name))
    with ghost.forced(path), track(model, loss_reduction=reduction, fused=fused):
        F.nll_loss(model(x), y, reduction=reduction).backward()
        stats = {n: p.autoopt_stats for n, p in model.named_parameters()}
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, st in stats.items():
        g = ref[name]
        torch.testing.assert_close(grads[name] * st.grad_scale, g.mean(0), rtol=1e-9, atol=1e-12)
        if name.endswith("weight"):
            assert st.scalar == (path == "ghost")
            assert st.weights is (weights.get(name) if st.scalar else None)
            expected = _weighted(g, weights.get(name)) if st.scalar else g.square().sum(0)
        else:  # biases stay elementwise
            assert not st.scalar
            expected = g.square().sum(0)
        torch.testing.assert_close(st.sum_sq, expected, rtol=1e-9, atol=1e-12)
    for p in model.parameters():
        record.publish_weights(p, None)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("spec", [CONVS[1], CONVS[3]])
def test_tracked_conv_takes_the_ghost_path(spec, reduction, fused):
    torch.manual_seed(2)
    model, x = _conv_net(*spec)
    y = torch.randint(0, 3, (x.shape[0],))
    w = {"conv.weight": _weights("rank1", model.conv.weight.shape[0], model.conv.weight[0].numel())}
    _check_tracked(model, x, y, reduction, fused, w)


@pytest.mark.parametrize("kind", ["identity", "rank1"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_tracked_sequence_linear_takes_the_ghost_path(reduction, kind):
    torch.manual_seed(3)
    model = SeqNet(bias=kind == "identity").double()
    x, y = torch.randn(4, 5, 5, dtype=torch.float64), torch.randint(0, 3, (4,))
    w = {"lin.weight": _weights(kind, 4, 5), "head.weight": _weights(kind, 3, 4)}
    _check_tracked(model, x, y, reduction, True, {k: v for k, v in w.items() if v is not None})


def test_forced_elementwise_and_reused_modules_stay_elementwise():
    torch.manual_seed(4)
    model, x = _conv_net(*CONVS[2])
    y = torch.randint(0, 3, (x.shape[0],))
    _check_tracked(model, x, y, "mean", True, {}, path="elementwise")

    class Twice(nn.Module):  # a module called twice sums per-sample gradients: elementwise
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, padding=1)
            self.head = nn.Linear(10, 3)

        def forward(self, x):
            h = torch.tanh(self.conv(torch.tanh(self.conv(x))))
            return F.log_softmax(self.head(h.flatten(1)), 1)

    model = Twice().double()
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    ref = loop_per_sample_grads(model, F.nll_loss, x, y)
    for fused in (True, False):
        model.zero_grad()
        with ghost.forced("ghost"), track(model, fused=fused):
            F.nll_loss(model(x), y).backward()
            st = model.conv.weight.autoopt_stats
            assert not st.scalar
            torch.testing.assert_close(st.sum_sq, ref["conv.weight"].square().sum(0))
            torch.testing.assert_close(model.conv.weight.grad, ref["conv.weight"].mean(0))


def test_auto_path_takes_ghost_for_a_wide_layer_and_elementwise_for_small_ones():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(4, 64, 1),
        nn.Tanh(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.Flatten(),
        nn.Linear(64 * 4, 3),
        nn.LogSoftmax(1),
    )
    x, y = torch.randn(8, 2, 2, 2), torch.randint(0, 3, (8,))
    ref = loop_per_sample_grads(model, F.nll_loss, x, y)
    with track(model):
        F.nll_loss(model(x), y).backward()
        scalar = {n: p.autoopt_stats.scalar for n, p in model.named_parameters()}
        q = model[4].weight.autoopt_stats.sum_sq
    assert [n for n, s in scalar.items() if s] == ["4.weight"]
    torch.testing.assert_close(q.double(), _weighted(ref["4.weight"], None), rtol=1e-4, atol=0)


def test_cost_model_choices():
    # torchvision ResNet-18, 32x32 input, N=32: layer4's 3x3 conv sees 1 position, layer3's 4
    assert ghost.choose(32, 512, 512 * 9, 1) == "ghost"
    assert ghost.choose(32, 256, 256 * 9, 4) == "ghost"
    # the paper's first conv (1 -> 10, 5x5 on 28x28: 576 positions) at N = 128
    assert ghost.choose(128, 10, 25, 576) == "elementwise"
    # a depthwise conv: 64 groups of one channel, Gram matrices per group
    assert ghost.choose(64, 64, 9, 256, groups=64) == "elementwise"
    e, g = ghost.path_costs(32, 512, 4608, 16)
    assert g.total < e.total / 10
    with pytest.raises(ValueError, match="statistics path"):
        ghost.choose(1, 1, 1, 1, mode="fast")
    with pytest.raises(ValueError, match="statistics path"), ghost.forced("fast"):
        pass


def test_published_weights_of_the_wrong_shape_are_refused():
    a, dz = torch.randn(2, 3, 4), torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"\(5, 4\)"):
        ghost.linear_ghost_norm(a, dz, (torch.ones(4), torch.ones(5)))


def test_gram_norm_chunks_and_half_precision(monkeypatch):
    torch.manual_seed(6)
    a, dz = torch.randn(5, 3, 4), torch.randn(5, 3, 2)
    full = ghost.gram_norm(a, dz)
    monkeypatch.setattr(ghost, "GRAM_CHUNK", 9)  # one sample per chunk
    torch.testing.assert_close(ghost.gram_norm(a, dz), full)
    half = ghost.gram_norm(a.bfloat16(), dz.bfloat16())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=3e-2, atol=0)


@pytest.mark.parametrize("fused", [True, False])
def test_ghost_path_with_same_and_circular_padding_and_4d_linear(fused):
    torch.manual_seed(7)

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, (3, 2), padding="same", padding_mode="circular")
            self.lin = nn.Linear(3, 2)  # on (N, H, W, 3): two middle dimensions
            self.head = nn.Linear(2 * 5 * 4, 3)

        def forward(self, x):
            h = torch.tanh(self.conv(x)).permute(0, 2, 3, 1)
            return F.log_softmax(self.head(torch.tanh(self.lin(h)).flatten(1)), 1)

    model = Padded().double()
    x, y = torch.randn(4, 2, 5, 4, dtype=torch.float64), torch.randint(0, 3, (4,))
    w = {"conv.weight": _weights("rank1", 3, 12), "lin.weight": _weights("rank1", 2, 3)}
    _check_tracked(model, x, y, "mean", fused, w)
