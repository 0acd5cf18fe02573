"""The hook engine and the functional engine against the loop-over-samples reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.stats import (
    UnsupportedModuleError,
    functional_backward,
    per_sample_grads,
    track,
)
from autoopt_lab.stats.loop import loop_per_sample_grads, loop_sum_sq


class PaperMnistCNN(nn.Module):
    """The paper's MNIST CNN (nested inside a wrapper below to test nesting)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)
        self.conv2 = nn.Conv2d(10, 20, 5)
        self.drop2d = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.drop2d(self.conv2(x)), 2))
        x = F.dropout(F.relu(self.fc1(x.flatten(1))), training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


class Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(PaperMnistCNN())

    def forward(self, x):
        return self.body(x)


class Mixed(nn.Module):
    """Conv1d, Embedding, LayerNorm, GroupNorm, BatchNorm (eval), shared input, in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6, padding_idx=0)
        self.conv = nn.Conv1d(6, 8, 3, padding=1, padding_mode="circular")
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(8)
        self.bn = nn.BatchNorm1d(8)
        self.head_a = nn.Linear(8, 3)
        self.head_b = nn.Linear(8, 3, bias=False)
        self.seq = nn.Linear(8, 8)  # 3-D input (N, T, C)

    def forward(self, tokens):
        h = self.emb(tokens).transpose(1, 2)  # (N, 6, T)
        h = torch.relu_(self.conv(h))
        h = self.gn(h)
        h = self.bn(h)
        h = self.seq(h.transpose(1, 2)).mean(1)  # Linear on (N, T, 8)
        h = self.ln(h)
        return F.log_softmax(self.head_a(h) + self.head_b(h), dim=1)  # shared input h


def _check(model, x, y, reduction="mean", atol=1e-5, rtol=1e-4, fused=True):
    loss_fn = F.nll_loss
    expected = loop_sum_sq(model, loss_fn, x, y)
    refs = loop_per_sample_grads(model, loss_fn, x, y)  # untracked: it would add a micro-batch
    model.zero_grad()
    with track(model, loss_reduction=reduction, fused=fused):
        out = model(x)
        loss = F.nll_loss(out, y, reduction=reduction)
        loss.backward()
        for name, p in model.named_parameters():
            if not p.requires_grad:
                assert not hasattr(p, "autoopt_stats")
                continue
            st = p.autoopt_stats
            assert st.batch_size == x.shape[0]
            torch.testing.assert_close(st.sum_sq.double(), expected[name], atol=atol, rtol=rtol)
            mean_grad = p.grad * st.grad_scale
            ref = refs[name].mean(0)
            torch.testing.assert_close(mean_grad, ref, atol=atol, rtol=rtol)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("n", [2, 3, 17, 64])
def test_hook_engine_matches_reference_on_paper_cnn(n, fused):
    torch.manual_seed(n)
    model = Wrapper().eval()  # dropout in eval mode
    x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
    _check(model, x, y, fused=fused)


@pytest.mark.slow
def test_hook_engine_matches_reference_at_256():
    torch.manual_seed(0)
    model = Wrapper().eval()
    _check(model, torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,)))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hook_engine_matches_reference_on_mixed_layers(reduction, fused):
    torch.manual_seed(1)
    model = Mixed().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2.0)
    tokens = torch.randint(0, 11, (9, 7))
    tokens[0, :3] = 0  # padding index
    _check(model, tokens, torch.randint(0, 3, (9,)), reduction=reduction, fused=fused)


@pytest.mark.parametrize("fused", [True, False])
def test_conv_groups_stride_dilation_same_padding(fused):
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2, padding=1),
        nn.Conv2d(6, 4, (2, 3), padding="same", padding_mode="reflect"),
        nn.Flatten(),
        nn.LazyLinear(5),
        nn.LogSoftmax(dim=1),
    )
    x = torch.randn(5, 4, 11, 9)
    model(x)  # materialise the lazy layer
    _check(model, x, torch.randint(0, 5, (5,)), fused=fused)


def test_module_called_twice_sums_per_sample_grads_before_squaring():
    torch.manual_seed(3)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.out = nn.Linear(4, 3)

        def forward(self, x):
            return F.log_softmax(self.out(torch.tanh(self.lin(torch.tanh(self.lin(x))))), 1)

    _check(Twice(), torch.randn(6, 4), torch.randint(0, 3, (6,)))


def test_functional_engine_matches_reference_and_backward():
    torch.manual_seed(4)
    model = Wrapper().eval()
    x, y = torch.randn(12, 1, 28, 28), torch.randint(0, 10, (12,))
    grads, losses = per_sample_grads(model, F.nll_loss, x, y)
    ref = loop_per_sample_grads(model, F.nll_loss, x, y)
    for name in ref:
        torch.testing.assert_close(grads[name], ref[name], atol=1e-5, rtol=1e-4)
    model.zero_grad()
    F.nll_loss(model(x), y).backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss = functional_backward(model, F.nll_loss, x, y)
    torch.testing.assert_close(loss, F.nll_loss(model(x), y))
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(
            p.autoopt_stats.sum_sq, ref[n].square().sum(0), atol=1e-5, rtol=1e-4
        )


def test_functional_engine_handles_a_layer_the_hooks_do_not():
    model = nn.Sequential(nn.Flatten(), nn.PReLU(), nn.Linear(6, 2))
    with pytest.raises(UnsupportedModuleError, match=r"'1' \(PReLU\).*functional_backward"):
        track(model)
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 1, 0])
    functional_backward(model, F.cross_entropy, x, y)
    ref = loop_sum_sq(model, F.cross_entropy, x, y)
    torch.testing.assert_close(model[1].weight.autoopt_stats.sum_sq.double(), ref["1.weight"])


@pytest.mark.parametrize("dims", [1, 2])
def test_batchnorm_in_eval_mode_on_flat_and_spatial_input(dims):
    """BatchNorm1d on (N, C) crashed with an IndexError (issue 13); (N, C, L) and 2-D too."""
    torch.manual_seed(2)
    bn = nn.BatchNorm1d(6) if dims == 1 else nn.BatchNorm2d(6)
    shape = (6,) if dims == 1 else (6, 3, 3)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(4, int(torch.tensor(shape).prod())),
        nn.Unflatten(1, shape),
        bn,
        nn.Flatten(),
        nn.Linear(int(torch.tensor(shape).prod()), 3),
        nn.LogSoftmax(1),
    )
    model.eval()
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    _check(model, torch.randn(7, 4), torch.randint(0, 3, (7,)))


def test_batchnorm_in_training_mode_is_a_clear_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with track(model):
        with pytest.raises(UnsupportedModuleError, match="BatchNorm.*training mode"):
            model(torch.randn(5, 3))
    with pytest.raises(UnsupportedModuleError, match="BatchNorm in training mode"):
        functional_backward(model, F.cross_entropy, torch.randn(5, 3), torch.zeros(5).long())


def test_double_tracking_is_refused():  # tied weights: tests/test_stats_layers.py
    model = nn.Linear(2, 2)
    with track(model), pytest.raises(RuntimeError, match="already tracked"):
        track(model)


def test_no_grad_forward_records_nothing_and_remove_clears():
    model = nn.Linear(3, 2)
    handle = track(model)
    with torch.no_grad():
        model(torch.randn(4, 3))
    F.cross_entropy(model(torch.randn(4, 3)), torch.tensor([0, 1, 0, 1])).backward()
    assert model.weight.autoopt_stats is not None
    handle.remove()
    assert not hasattr(model.weight, "autoopt_stats")
    model(torch.randn(4, 3)).sum().backward()
    assert not hasattr(model.weight, "autoopt_stats")


def test_second_forward_and_backward_before_step_adds_a_micro_batch():
    model = nn.Linear(3, 2)
    with track(model):
        for _ in range(2):
            F.cross_entropy(model(torch.randn(4, 3)), torch.tensor([0, 1, 0, 1])).backward()
        st = model.weight.autoopt_stats
        assert not st.stale and st.batch_size == 8 and st.micro_batches == 2


def test_fused_conv_reused_twice_and_removed_cleanly():
    torch.manual_seed(5)

    class ConvTwice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.out = nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            return F.log_softmax(
                self.out(torch.tanh(self.conv(torch.tanh(self.conv(x)))).flatten(1)), 1
            )

    model = ConvTwice()
    _check(model, torch.randn(6, 2, 4, 4), torch.randint(0, 3, (6,)))
    assert "forward" not in model.conv.__dict__  # the handle restored the class forward


def test_fused_conv_frozen_input_layer_and_no_grad():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 3 * 3, 2), nn.LogSoftmax(1)
    )
    model[2].requires_grad_(False)
    x, y = torch.randn(4, 1, 5, 5), torch.tensor([0, 1, 1, 0])
    _check(model, x, y)
    with track(model), torch.no_grad():
        assert model(x).shape == (4, 2)


@pytest.mark.parametrize(
    "c_in,groups,stride,padding,dilation,dims",
    [(8, 1, 1, 0, 1, 2), (8, 2, 2, 1, 2, 2), (6, 3, 1, 2, 1, 1), (4, 1, 2, 0, 3, 1)],
)
def test_conv_per_sample_methods_agree(c_in, groups, stride, padding, dilation, dims):
    from autoopt_lab.stats.rules import conv_per_sample

    torch.manual_seed(6)
    conv = (nn.Conv2d if dims == 2 else nn.Conv1d)(
        c_in, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    x = torch.randn(5, c_in, *([9] * dims))
    dz = torch.randn_like(conv(x))
    args = (x, dz, conv.weight.shape, conv.stride, conv.padding, conv.dilation, groups)
    a = conv_per_sample(*args, method="patches")
    b = conv_per_sample(*args, method="grouped")
    torch.testing.assert_close(a["weight"], b["weight"], atol=1e-4, rtol=1e-4)
    # and the per-sample gradients sum to autograd's weight gradient
    xr = x.clone().requires_grad_(False)
    conv.weight.grad = None
    conv(xr).backward(dz)
    torch.testing.assert_close(b["weight"].sum(0), conv.weight.grad, atol=1e-4, rtol=1e-4)
