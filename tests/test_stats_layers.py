"""The layers of current models in the hook engine, against the loop-over-samples reference:
autocast, tied weights, attention, LSTM/GRU, BatchNorm contributions, layers called outside
the tracked model's forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoopt_lab.stats import UnsupportedModuleError, suspended, track
from autoopt_lab.stats.loop import loop_per_sample_grads


def _check(model, x, y, *, loss_fn=F.cross_entropy, atol=1e-5, rtol=1e-4, autocast=None, **kw):
    """Tracked forward + backward vs the loop reference: ``S`` and the gradient."""
    refs = loop_per_sample_grads(model, loss_fn, x, y)
    if autocast is not None:  # the reference under the same autocast
        with torch.autocast("cpu", dtype=autocast):
            refs = loop_per_sample_grads(model, lambda o, t: loss_fn(o.float(), t), x, y)
    model.zero_grad()
    with track(model, **kw):
        ctx = torch.autocast("cpu", dtype=autocast) if autocast else torch.enable_grad()
        with ctx:
            out = model(x)
        loss_fn(out.float(), y).backward()
        for name, p in model.named_parameters():
            st = p.autoopt_stats
            assert st.batch_size == x.shape[0] and not st.stale, name
            assert st.sum_sq.dtype == torch.float32, name
            expected = refs[name].double().square().sum(0)
            torch.testing.assert_close(
                st.sum_sq.double(), expected, atol=atol, rtol=rtol, msg=lambda m, k=name: f"{k}: {m}"
            )
            torch.testing.assert_close(  # bf16 autograd: a few elements off by its rounding
                p.grad * st.grad_scale, refs[name].mean(0), atol=atol * (5 if autocast else 1),
                rtol=rtol, msg=lambda m, k=name: f"{k} grad: {m}",
            )


# ----------------------------------------------------------------------------- autocast
class SmallMixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.lin = nn.Linear(4 * 4 * 4, 8)
        self.ln = nn.LayerNorm(8)
        self.seq = nn.Linear(4, 3)  # 3-D input
        self.head = nn.Linear(8 + 3, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        a = self.ln(torch.relu(self.lin(h.flatten(1))))
        b = self.seq(h.flatten(2).transpose(1, 2)).mean(1)
        return self.head(torch.cat([a, b.to(a.dtype)], 1))


@pytest.mark.parametrize("fused", [True, False])
def test_autocast_bfloat16_matches_the_reference_under_autocast(fused):
    torch.manual_seed(0)
    model = SmallMixed()
    x, y = torch.randn(6, 2, 6, 6), torch.randint(0, 3, (6,))
    _check(model, x, y, autocast=torch.bfloat16, atol=1e-3, rtol=5e-2, fused=fused)


# ----------------------------------------------------------------------------- tied weights
class TiedLM(nn.Module):
    """An embedding shared with the output layer, and a Linear used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.mix = nn.Linear(6, 6)
        self.out = nn.Linear(6, 10, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, tokens):
        h = torch.tanh(self.mix(torch.tanh(self.mix(self.emb(tokens)))))
        return self.out(h.mean(1))


def test_tied_weights_add_per_sample_gradients_over_their_uses():
    torch.manual_seed(1)
    model = TiedLM()
    _check(model, torch.randint(0, 10, (7, 5)), torch.randint(0, 10, (7,)))


def test_tied_weights_with_one_use_frozen_elsewhere():
    torch.manual_seed(2)
    a, b = nn.Linear(4, 4), nn.Linear(4, 3)
    b.weight = nn.Parameter(torch.randn(3, 4))
    c = nn.Linear(4, 3)
    c.weight = b.weight  # tied, different bias
    model = nn.Sequential(a, nn.Tanh(), b)

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.c = model, c

        def forward(self, x):
            return self.body(x) + self.c(torch.tanh(x))

    _check(Two(), torch.randn(5, 4), torch.randint(0, 3, (5,)))


# ----------------------------------------------------------------------------- attention
class Attn(nn.Module):
    """MHA on one input ``(N, L + S, E)``: the first L positions query, the rest key/value."""

    def __init__(self, mode, batch_first, need_weights, kdim=None, length=4):
        super().__init__()
        self.mode, self.bf, self.nw, self.length = mode, batch_first, need_weights, length
        self.mha = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=kdim)
        self.kv = nn.Linear(8, kdim or 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        q, src = x[:, : self.length], x[:, self.length :]
        k = self.kv(src)
        v = torch.tanh(k) if self.mode in ("cross", "separate") else k
        if self.mode == "self":
            q = k = v = self.kv(x)
        t = (lambda a: a) if self.bf else (lambda a: a.transpose(0, 1))
        if self.mode == "self":
            q = k = v = t(q)
        else:
            q, k, v = t(q), t(k), (t(k) if self.mode == "kv" else t(v))
        mask = torch.zeros(x.shape[0], k.shape[0 if not self.bf else 1], dtype=torch.bool)
        mask[:, -1] = True
        out, _ = self.mha(q, k, v, key_padding_mask=mask, need_weights=self.nw)
        return self.head(t(out).mean(1))


ATTN_CASES = [
    ("self", True, False),
    ("self", False, True),
    ("kv", True, True),
    ("cross", False, False),
    ("separate", True, False),
]


@pytest.mark.parametrize("mode,batch_first,need_weights", ATTN_CASES)
def test_multihead_attention_outputs_and_statistics(mode, batch_first, need_weights):
    torch.manual_seed(3)
    model = Attn(mode, batch_first, need_weights, kdim=6 if mode == "separate" else None)
    x, y = torch.randn(5, 7, 8), torch.randint(0, 3, (5,))
    plain = model(x)
    with track(model):
        assert torch.equal(model(x), plain)  # the decomposed forward is torch's, op for op
    _check(model, x, y)


def test_multihead_attention_causal_mask_unbatched_and_refusals():
    torch.manual_seed(4)
    mha = nn.MultiheadAttention(8, 2)
    x = torch.randn(5, 8)  # unbatched (L, E)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    plain = mha(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]
    with track(mha):
        out = mha(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]
        assert torch.equal(out, plain)
        out.sum().backward()
        assert mha.in_proj_weight.autoopt_stats.batch_size == 1
    with pytest.raises(UnsupportedModuleError, match="bias_k"):
        track(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    zero = nn.MultiheadAttention(8, 2, add_zero_attn=True)
    with track(zero), pytest.raises(UnsupportedModuleError, match="add_zero_attn"):
        zero(x, x, x)


class Encoder(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        self.bf = batch_first
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.enc(x if self.bf else x.transpose(0, 1), is_causal=False)
        return self.head((h if self.bf else h.transpose(0, 1)).mean(1))


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layer_both_layouts(batch_first):
    torch.manual_seed(5)
    model = Encoder(batch_first)
    x, y = torch.randn(4, 6, 8), torch.randint(0, 3, (4,))
    plain = model(x)
    with track(model):
        torch.testing.assert_close(model(x), plain, atol=1e-6, rtol=1e-6)
    _check(model, x, y)


class SdpaBlock(nn.Module):
    """Attention written with F.scaled_dot_product_attention between Linear layers."""

    def __init__(self):
        super().__init__()
        self.qkv, self.proj, self.head = nn.Linear(8, 24), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        n, t, _ = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, 2, 4).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.head(self.proj(h.transpose(1, 2).reshape(n, t, 8)).mean(1))


def test_sdpa_attention_from_linear_layers():
    torch.manual_seed(6)
    _check(SdpaBlock(), torch.randn(5, 6, 8), torch.randint(0, 3, (5,)))


# ----------------------------------------------------------------------------- LSTM / GRU
class Recurrent(nn.Module):
    def __init__(self, kind, batch_first, layers, bidirectional, bias=True):
        super().__init__()
        self.bf = batch_first
        self.rnn = getattr(nn, kind)(
            3, 5, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional,
            bias=bias,
        )
        self.head = nn.Linear(5 * (2 if bidirectional else 1), 3)

    def forward(self, x):  # (N, T, 3)
        out, _ = self.rnn(x if self.bf else x.transpose(0, 1))
        out = out if self.bf else out.transpose(0, 1)
        return self.head(out.mean(1) + out[:, -1])


RNN_CASES = [
    ("LSTM", True, 1, False, True),
    ("LSTM", False, 2, True, True),
    ("GRU", True, 2, False, False),
    ("GRU", False, 1, True, True),
]


@pytest.mark.parametrize("kind,batch_first,layers,bidirectional,bias", RNN_CASES)
def test_lstm_gru_outputs_and_statistics(kind, batch_first, layers, bidirectional, bias):
    torch.manual_seed(7)
    model = Recurrent(kind, batch_first, layers, bidirectional, bias)
    x, y = torch.randn(4, 6, 3), torch.randint(0, 3, (4,))
    seq = x if batch_first else x.transpose(0, 1)
    dirs = 2 if bidirectional else 1
    hx = torch.randn(layers * dirs, 4, 5)
    hx = (hx, torch.randn_like(hx)) if kind == "LSTM" else hx
    plain = model.rnn(seq, hx)
    with track(model):
        tracked = model.rnn(seq, hx)
    torch.testing.assert_close(tracked, plain, atol=1e-6, rtol=1e-5)
    _check(model, x, y)


def test_lstm_unbatched_and_refusals():
    torch.manual_seed(8)
    lstm = nn.LSTM(3, 4)
    x = torch.randn(5, 3)  # unbatched (T, I)
    plain = lstm(x)
    with track(lstm):
        out, (h, c) = lstm(x)
        torch.testing.assert_close((out, (h, c)), plain, atol=1e-6, rtol=1e-5)
        h.sum().backward()
        assert lstm.weight_hh_l0.autoopt_stats.batch_size == 1
        packed = nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 3), [5, 3])
        with pytest.raises(UnsupportedModuleError, match="PackedSequence"):
            lstm(packed)
    with pytest.raises(UnsupportedModuleError, match="weight_hr_l0"):  # proj_size
        track(nn.LSTM(3, 4, proj_size=2))


# ----------------------------------------------------------------------------- BatchNorm
def _contributions_reference(x, y, lin1, bn, lin2):
    """Per-sample contributions by autograd: every sample gets its own copy of each
    parameter, the batch loss is differentiated with respect to the copies."""
    n = x.shape[0]
    copies = [p.detach().expand(n, *p.shape).clone().requires_grad_() for p in (
        lin1.weight, lin1.bias, bn.weight, bn.bias, lin2.weight, lin2.bias)]
    w1, b1, g, b, w2, b2 = copies
    z = torch.einsum("nhd,nd->nh", w1, x) + b1
    h = torch.relu(F.batch_norm(z, None, None, training=True, eps=bn.eps) * g + b)
    out = torch.einsum("nch,nh->nc", w2, h) + b2
    grads = torch.autograd.grad(F.cross_entropy(out, y), copies)
    names = ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    return {k: n * v for k, v in zip(names, grads, strict=True)}  # each sample's own scale


def test_batchnorm_contributions_match_autograd_per_sample_copies():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    ref = _contributions_reference(x, y, model[0], model[1], model[3])
    with track(model, batchnorm="contributions"):
        F.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.autoopt_stats.sum_sq, ref[name].square().sum(0))
            torch.testing.assert_close(p.grad, ref[name].mean(0))  # they sum to the gradient


def test_batchnorm2d_contributions_and_the_default_refusal():
    torch.manual_seed(10)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(27, 2))
    model[0].requires_grad_(False)
    model[3].requires_grad_(False)
    x, y = torch.randn(6, 2, 5, 5), torch.randint(0, 2, (6,))
    with torch.no_grad():
        a = model[0](x)
    g = model[1].weight.detach().expand(6, 3).clone().requires_grad_()
    b = model[1].bias.detach().expand(6, 3).clone().requires_grad_()
    xhat = F.batch_norm(a, None, None, training=True, eps=model[1].eps)
    out = model[3](model[2](xhat * g[:, :, None, None] + b[:, :, None, None]))
    ref = [6 * t for t in torch.autograd.grad(F.cross_entropy(out, y), [g, b])]
    with track(model, batchnorm="contributions"):
        F.cross_entropy(model(x), y).backward()
        torch.testing.assert_close(model[1].weight.autoopt_stats.sum_sq, ref[0].square().sum(0))
        torch.testing.assert_close(model[1].bias.autoopt_stats.sum_sq, ref[1].square().sum(0))
    with track(model), pytest.raises(UnsupportedModuleError, match="batchnorm=.contributions"):
        model(x)
    with pytest.raises(ValueError, match="batchnorm"):
        track(model, batchnorm="split")


# ----------------------------------------------------------------------------- torch.compile
@pytest.mark.parametrize("order", ["compile_then_track", "track_then_compile"])
def test_torch_compile_in_either_order(order):
    """Tracked layers run eagerly inside the compiled model (dynamo breaks the graph there)."""
    torch.manual_seed(11)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 4))
    x, y = torch.randn(5, 1, 5, 5), torch.randint(0, 4, (5,))
    refs = loop_per_sample_grads(model, F.cross_entropy, x, y)
    if order == "compile_then_track":
        compiled = torch.compile(model)
        handle = track(compiled)
    else:
        handle = track(model)
        compiled = torch.compile(model)
    with handle:
        for _ in range(2):  # the second step runs the cached graphs
            model.zero_grad()
            F.cross_entropy(compiled(x), y).backward()
            for name, p in model.named_parameters():
                torch.testing.assert_close(
                    p.autoopt_stats.sum_sq, refs[name].square().sum(0), atol=1e-5, rtol=1e-4
                )
                del p.autoopt_stats
    F.cross_entropy(compiled(x), y).backward()  # removed: nothing recorded
    assert not any(hasattr(p, "autoopt_stats") for p in model.parameters())


# ----------------------------------------------------------------------------- messages
def test_layers_called_outside_the_tracked_forward_get_statistics_every_step():
    """Issue 19: the second step said 'call track(model)' though it was called."""
    from autoopt_lab.optim import AutoSGD

    torch.manual_seed(12)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    opt = AutoSGD(model.named_parameters())
    with track(model):
        for _ in range(3):
            x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
            with suspended():  # the reference records nothing
                refs = loop_per_sample_grads(model, F.cross_entropy, x, y)
            opt.zero_grad()
            h = model[1](model[0](x))  # the layers, not model(x)
            F.cross_entropy(model[2](h), y).backward()
            for name, p in model.named_parameters():
                st = p.autoopt_stats
                assert st.batch_size == 8 and not st.stale
                torch.testing.assert_close(st.sum_sq, refs[name].square().sum(0))
            opt.step()


def test_explain_missing_says_what_happened():
    from autoopt_lab.stats.hooks import explain_missing

    lin, other = nn.Linear(3, 2), nn.Linear(3, 2)
    with track(lin):
        lin(torch.randn(4, 3))  # ran, but the loss below does not use its output
        F.linear(torch.randn(4, 3), lin.weight).sum().backward()
        assert "did not reach the layer's output" in explain_missing(lin.weight)
        assert "outside its module" in explain_missing(lin.weight)
        assert "no tracked model holds it" in explain_missing(other.weight)


@pytest.mark.parametrize("case", ["encoder", "gru", "tied"])
def test_autocast_bfloat16_on_attention_recurrent_and_tied_layers(case):
    torch.manual_seed(13)
    if case == "encoder":
        model, x = Encoder(False), torch.randn(4, 6, 8)
    elif case == "gru":
        model, x = Recurrent("GRU", False, 2, True), torch.randn(4, 6, 3)
    else:
        model, x = TiedLM(), torch.randint(0, 10, (5, 4))
    y = torch.randint(0, 3, (x.shape[0],))
    _check(model, x, y, autocast=torch.bfloat16, atol=2e-3, rtol=5e-2)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_functional_engine_on_lstm_and_gru(kind):
    """The torch.func engine crashed on nn.GRU (vmap has no rule for ATen's GRU)."""
    from autoopt_lab.stats import functional_backward

    torch.manual_seed(14)
    model = Recurrent(kind, False, 2, True)
    x, y = torch.randn(4, 5, 3), torch.randint(0, 3, (4,))
    refs = loop_per_sample_grads(model, F.cross_entropy, x, y)
    with track(model):  # a tracked model keeps its tracked forward afterwards
        tracked_forward = model.rnn.forward
        functional_backward(model, F.cross_entropy, x, y)
        assert model.rnn.forward is tracked_forward
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.autoopt_stats.sum_sq, refs[name].square().sum(0))


class Seq2Seq(nn.Module):
    """nn.Transformer (encoder and decoder layers) on one input: source, then target."""

    def __init__(self, batch_first):
        super().__init__()
        self.bf = batch_first
        self.net = nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        src, tgt = x[:, :4], x[:, 4:]
        if not self.bf:
            src, tgt = src.transpose(0, 1), tgt.transpose(0, 1)
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[0 if not self.bf else 1])
        h = self.net(src, tgt, tgt_mask=mask, tgt_is_causal=True)
        return self.head((h if self.bf else h.transpose(0, 1)).mean(1))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_with_decoder_both_layouts(batch_first):
    torch.manual_seed(15)
    model = Seq2Seq(batch_first)
    x, y = torch.randn(4, 7, 8), torch.randint(0, 3, (4,))
    plain = model(x)
    with track(model):
        torch.testing.assert_close(model(x), plain, atol=1e-6, rtol=1e-6)
    _check(model, x, y)


# ----------------------------------------------------------------------------- ghost norms
@pytest.mark.parametrize("case", ["self", "cross", "separate", "LSTM", "GRU"])
@pytest.mark.parametrize("weights", ["identity", "rank1"])
def test_attention_and_recurrent_ghost_norms(case, weights):
    """Where the ghost path is taken, Q = sum_i g_i^T W g_i matches the reference."""
    from autoopt_lab.stats import ghost, record

    torch.manual_seed(16)
    if case in ("LSTM", "GRU"):
        model, x = Recurrent(case, False, 2, True), torch.randn(5, 6, 3)
    else:
        model = Attn(case, True, False, kdim=6 if case == "separate" else None)
        x = torch.randn(5, 7, 8)
    y = torch.randint(0, 3, (x.shape[0],))
    refs = loop_per_sample_grads(model, F.cross_entropy, x, y)
    published = {}
    for name, p in model.named_parameters():
        if p.dim() == 2 and weights == "rank1":
            gen = torch.Generator().manual_seed(p.numel())
            published[name] = (torch.rand(p.shape[0], generator=gen) + 0.1,
                               torch.rand(p.shape[1], generator=gen) + 0.1)
            record.publish_weights(p, published[name])
    ghosts = 0
    with track(model), ghost.forced("ghost"):
        F.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            st, ref = p.autoopt_stats, refs[name].double().square().sum(0)
            if st.scalar:
                ghosts += name.startswith(("rnn.", "mha."))
                ref = record.weighted_total(ref, published.get(name))
            torch.testing.assert_close(st.sum_sq.double(), ref, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(p.grad, refs[name].mean(0), rtol=1e-4, atol=1e-6)
    assert ghosts >= 2  # the layers' own weights took the ghost path
