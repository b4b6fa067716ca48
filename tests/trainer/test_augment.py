import pytest
import torch

from trainer.data.augment import (
    AugmentParams,
    augment,
    gaussian_blur,
    random_gamma,
    random_geometry,
    random_intensity,
    random_kernel,
)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(6, 3, 32, 32, generator=g)
    labels = torch.zeros(6, 1, 32, 32)
    labels[:, :, 10:20, 12:22] = 1.0
    return images, labels


def test_default_params_keep_the_earlier_random_stream():
    images, labels = _batch()
    g = torch.Generator().manual_seed(3)
    geo_images, geo_labels = random_geometry(images, labels, generator=g)
    earlier = random_intensity(geo_images, generator=g)
    now = augment(images, labels, torch.Generator().manual_seed(3), AugmentParams())
    assert torch.equal(now[0], earlier) and torch.equal(now[1], geo_labels)


def test_gamma_and_kernel_change_images_not_labels():
    images, labels = _batch()
    plain = augment(images, labels, torch.Generator().manual_seed(3))
    strong = augment(images, labels, torch.Generator().manual_seed(3),
                     AugmentParams(gamma=0.3, kernel=0.8))
    assert torch.equal(plain[1], strong[1])
    assert not torch.allclose(plain[0], strong[0])
    assert strong[0].min() >= 0.0 and strong[0].max() <= 1.0


def test_gaussian_blur_keeps_constants_and_spreads_a_point():
    flat = torch.full((1, 2, 9, 9), 0.4)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat)
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1.0
    out = gaussian_blur(point, 1.0)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    # separable Gaussian, sigma 1: centre weight (1 / sum over -3..3 of exp(-x^2/2))^2
    w0 = 1.0 / sum(torch.exp(torch.tensor(-0.5 * x * x)).item() for x in range(-3, 4))
    assert out[0, 0, 4, 4].item() == pytest.approx(w0 * w0, rel=1e-4)


def test_kernel_extremes_are_blur_and_unsharp_mask():
    images, _ = _batch()
    images = images * 0.5 + 0.25  # room on both sides so the clip does not act
    blurred = gaussian_blur(images, 1.0)

    g = torch.Generator().manual_seed(0)
    out = random_kernel(images, 1.0, g)
    k = (torch.rand(images.shape[0], generator=torch.Generator().manual_seed(0)) * 2 - 1)
    expected = (images + k.view(-1, 1, 1, 1) * (images - blurred)).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(random_kernel(images, 0.0, g), images)


def test_gamma_is_a_power_per_sample():
    images, _ = _batch()
    out = random_gamma(images, 0.3, torch.Generator().manual_seed(1))
    u = torch.rand(images.shape[0], generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert torch.allclose(out, images ** torch.exp(u * 0.3).view(-1, 1, 1, 1), atol=1e-6)
    assert torch.allclose(random_gamma(images, 0.0, None), images)
