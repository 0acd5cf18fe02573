"""Shift transforms and transitions on known inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt_lab.streams import (
    Condition,
    StreamSampler,
    build_plan,
    interpolate,
    parse_scenario,
    sigmoid_fraction,
)
from autoopt_lab.streams.shifts import pixel_permutation

G = torch.Generator().manual_seed(0)


def scenario(body: str, batch: int = 64, seed: int = 0):
    head = (f'name="t"\ndataset="mnist"\nmodel="mnist_cnn"\nseed={seed}\nbatch_size={batch}\n'
            "[metrics]\nwarmup=0\n")
    return parse_scenario(head + body, source="t.toml")


def test_rotation_by_90_degrees_matches_rot90():
    x = torch.rand(3, 1, 8, 8)
    out = Condition(rotation=90.0).apply_images(x, generator=G)
    assert torch.allclose(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    out = Condition(rotation=-90.0).apply_images(x, generator=G)
    assert torch.allclose(out, torch.rot90(x, -1, dims=(2, 3)), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.integers(1, 3), h=st.integers(2, 9))
def test_permutation_and_its_inverse(seed, c, h):
    x = torch.rand(2, c, h, h)
    out = Condition(permutation_seed=seed).apply_images(x, generator=G)
    perm = pixel_permutation(h * h, seed)
    inv = torch.argsort(perm)
    back = out.reshape(2, c, -1)[:, :, inv].reshape(x.shape)
    assert torch.equal(back, x)
    # the same permutation for every channel and every sample: pixel values are only moved
    assert torch.equal(out.reshape(2, c, -1).sort(-1).values, x.reshape(2, c, -1).sort(-1).values)


def test_inversion_contrast_noise_blur_on_known_inputs():
    x = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3).expand(1, 1, 3, 3).contiguous()
    assert torch.allclose(Condition(inversion=1.0).apply_images(x, generator=G), 1 - x)
    half = Condition(inversion=0.5).apply_images(x, generator=G)
    assert torch.allclose(half, torch.full_like(x, 0.5))
    flat = Condition(contrast=0.0).apply_images(x, generator=G)
    assert torch.allclose(flat, flat.mean().expand_as(flat))  # contrast 0: a uniform grey
    g = torch.Generator().manual_seed(1)
    z = Condition(noise=0.1).apply_images(torch.full((64, 1, 16, 16), 0.5), generator=g)
    assert abs(z.std().item() - 0.1) < 0.01 and abs(z.mean().item() - 0.5) < 0.01
    spot = torch.zeros(1, 1, 9, 9)
    spot[0, 0, 4, 4] = 1.0
    blurred = Condition(blur=1.0).apply_images(spot, generator=G)
    assert blurred[0, 0, 4, 4] < 0.5 and blurred.sum().item() == pytest.approx(1.0, abs=1e-4)


def test_class_proportions_within_sampling_error():
    props = [0.4, 0.3, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]
    sc = scenario(f'[[segments]]\nname="a"\nsteps=50\nshifts=[{{kind="prior", '
                  f'proportions={props}}}]\n', batch=100)
    x = torch.zeros(500, 1, 4, 4, dtype=torch.uint8)
    y = torch.arange(500) % 10
    s = StreamSampler(sc, x, y, mean=(0.0,), std=(1.0,))
    labels = torch.cat([s.next_batch()[1] for _ in range(50)])
    n = labels.numel()
    freq = torch.bincount(labels, minlength=10).double() / n
    for k, p in enumerate(props):
        se = math.sqrt(max(p * (1 - p), 1e-12) / n)
        assert abs(freq[k].item() - p) <= 4 * se + 1e-12, (k, freq[k].item(), p)


def test_class_incremental_and_concept_labels():
    sc = scenario('[[segments]]\nname="a"\nsteps=3\nshifts=[{kind="class_incremental", '
                  'classes=[2, 7]}]\n[[segments]]\nname="b"\nsteps=3\n'
                  'shifts=[{kind="concept", mapping=[[2, 3], [3, 2]]}, '
                  '{kind="class_incremental", classes=[2]}]\n')
    x = torch.zeros(100, 1, 4, 4, dtype=torch.uint8)
    y = torch.arange(100) % 10
    s = StreamSampler(sc, x, y, mean=(0.0,), std=(1.0,))
    first = torch.cat([s.next_batch()[1] for _ in range(3)])
    second = torch.cat([s.next_batch()[1] for _ in range(3)])
    assert set(first.tolist()) == {2, 7}
    assert set(second.tolist()) == {3}  # class 2 drawn, relabelled as 3


def test_gradual_mixing_follows_the_sigmoid():
    # old = plain black images, new = inverted (white): the fraction of white samples per step
    # is the mixing probability
    width, batch = 40, 400
    sc = scenario(f'[[segments]]\nname="a"\nsteps=5\n[[segments]]\nname="b"\nsteps=60\n'
                  f'transition={{kind="gradual", width={width}}}\n'
                  f'shifts=[{{kind="inversion"}}]\n', batch=batch)
    x = torch.zeros(200, 1, 2, 2, dtype=torch.uint8)
    y = torch.arange(200) % 10
    s = StreamSampler(sc, x, y, mean=(0.0,), std=(1.0,))
    for t in range(65):
        xb, _ = s.next_batch()
        frac = (xb[:, 0, 0, 0] > 0.5).double().mean().item()
        p = 0.0 if t < 5 else (sigmoid_fraction(t, 5, width) if t < 5 + width else 1.0)
        assert abs(frac - p) <= 4 * math.sqrt(p * (1 - p) / batch) + 1e-9, (t, frac, p)
    assert sigmoid_fraction(5 + width // 2, 5, width) == pytest.approx(0.5)


def test_incremental_rotation_moves_a_little_every_step():
    sc = scenario('[[segments]]\nname="a"\nsteps=4\n[[segments]]\nname="b"\nsteps=10\n'
                  'transition={kind="incremental", width=8}\n'
                  'shifts=[{kind="rotation", degrees=80}]\n')
    plan = build_plan(sc)
    angles = [p.new.rotation for p in plan]
    assert angles[:4] == [0.0] * 4
    assert angles[4:12] == pytest.approx([10.0 * k for k in range(1, 9)])
    assert angles[12:] == [80.0, 80.0]
    assert interpolate(Condition(noise=0.0), Condition(noise=0.4), 0.5).noise == pytest.approx(0.2)


def test_markers_land_on_segment_boundaries_and_batch_sizes_change():
    sc = scenario('[[segments]]\nname="a"\nsteps=7\n[[segments]]\nname="b"\nsteps=5\n'
                  'batch_size=8\n[[segments]]\nname="c"\nsteps=3\n'
                  'transition={kind="recurring", to="a"}\n', batch=16)
    plan = build_plan(sc)
    assert [p.step for p in plan if p.boundary] == [7, 12] == sc.boundaries
    assert [p.segment for p in plan] == [0] * 7 + [1] * 5 + [2] * 3
    assert [p.batch_size for p in plan] == [16] * 7 + [8] * 5 + [16] * 3
    assert plan[13].new == plan[0].new


def test_same_seed_same_batches_and_resume_of_the_sampler():
    sc = scenario('[[segments]]\nname="a"\nsteps=6\nshifts=[{kind="noise", std=0.2}]\n', batch=8)
    x = torch.randint(0, 256, (50, 1, 5, 5), dtype=torch.uint8)
    y = torch.arange(50) % 10
    a = StreamSampler(sc, x, y, mean=(0.5,), std=(0.5,))
    b = StreamSampler(sc, x, y, mean=(0.5,), std=(0.5,))
    batches_a = [a.next_batch() for _ in range(6)]
    for xa, ya in batches_a[:3]:
        xb, yb = b.next_batch()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    state = b.state_dict()
    c = StreamSampler(sc, x, y, mean=(0.5,), std=(0.5,))
    c.load_state_dict(state)
    for xa, ya in batches_a[3:]:
        xc, yc = c.next_batch()
        assert torch.equal(xa, xc) and torch.equal(ya, yc)
    with pytest.raises(StopIteration):
        c.next_batch()


@pytest.mark.parametrize("sigma", [0.5, 1.5, 4.0])
def test_blur_matches_torchvision(sigma):
    import torchvision.transforms.v2.functional as TF

    from autoopt_lab.streams.shifts import gaussian_blur

    x = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    k = min(2 * math.ceil(3 * sigma) + 1, 27)
    assert torch.allclose(gaussian_blur(x, sigma), TF.gaussian_blur(x, [k, k], [sigma, sigma]),
                          atol=1e-5)
