"""GPU checks: an Auto step makes no host-device synchronisation. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoopt_lab

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    "cls", [autoopt_lab.AutoSGD, autoopt_lab.AutoAdam, autoopt_lab.AutoAdaGrad]
)
def test_step_makes_no_host_sync(cls):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 24 * 24, 10), nn.LogSoftmax(1)
    ).cuda()
    opt = cls(model.named_parameters())
    x = torch.randn(32, 1, 28, 28, device="cuda")
    y = torch.randint(0, 10, (32,), device="cuda")
    with autoopt_lab.track(model):
        for i in range(3):
            opt.zero_grad()
            F.nll_loss(model(x), y).backward()
            if i == 2:
                torch.cuda.set_sync_debug_mode("error")
            try:
                opt.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cuda_matches_cpu():
    torch.manual_seed(0)
    cpu = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 4), nn.LogSoftmax(1))
    gpu = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 4), nn.LogSoftmax(1))
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    oc, og = autoopt_lab.AutoSGD(cpu.parameters()), autoopt_lab.AutoSGD(gpu.parameters())
    gen = torch.Generator().manual_seed(0)
    for model, opt in ((cpu, oc), (gpu, og)):
        gen.manual_seed(0)
        dev = next(model.parameters()).device
        with autoopt_lab.track(model):
            for _ in range(5):
                x = torch.randn(16, 1, 6, 6, generator=gen).to(dev)
                y = torch.randint(0, 4, (16,), generator=gen).to(dev)
                opt.zero_grad()
                F.nll_loss(model(x), y).backward()
                opt.step()
    for p, q in zip(cpu.parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(p, q.cpu(), rtol=1e-4, atol=1e-5)
