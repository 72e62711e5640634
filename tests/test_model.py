import numpy as np
import pytest
import torch

from colorize import wrapper
from colorize.color import rgb_to_cbcr
from colorize.models.convnet import ConvNet

SIZES = [(32, 32), (37, 45), (9, 16), (64, 24)]  # all but the first need padding to a multiple of 2^depth


def test_convnet_matches_the_seed() -> None:
    model = ConvNet(width=1)
    # conv 1->16 3x3 (160) + conv 16->32 3x3 (4,640) + linear 1568->512 (803,328) + linear 512->3072 (1,575,936)
    assert sum(p.numel() for p in model.parameters()) == 2_384_064
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (512, 1568), (512,), (3072, 512), (3072,)]


@pytest.mark.parametrize("batch", [1, 7, 100])
def test_convnet_any_batch_size(compose_cfg, batch: int) -> None:
    model = wrapper.colorizer(compose_cfg().model)
    out = model(torch.rand(batch, 1, 32, 32))
    assert out.shape == (batch, 3, 32, 32)
    assert 0 <= out.min() and out.max() <= 1  # the seed's sigmoid


def test_width_scales_channels_and_hidden_units(compose_cfg) -> None:
    net = wrapper.colorizer(compose_cfg("model.width=2").model).net
    assert isinstance(net, ConvNet)
    assert [tuple(p.shape) for p in net.parameters()][::2] == [
        (32, 1, 3, 3),
        (64, 32, 3, 3),
        (1024, 3136),
        (3072, 1024),
    ]


def train_one_step(model: wrapper.Colorizer, gray: torch.Tensor, target: torch.Tensor) -> None:
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.l1_loss(model.predict(gray), target)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("family", ["convae", "unet"])
@pytest.mark.parametrize("target", ["rgb", "lab"])
@pytest.mark.parametrize("height, width", SIZES)
def test_fully_convolutional_models_take_any_size(
    compose_cfg, family: str, target: str, height: int, width: int
) -> None:
    model = wrapper.colorizer(
        compose_cfg(f"model={family}", "model.width=4", "model.depth=3", f"model.target={target}").model
    )
    gray = torch.rand(2, 1, height, width)
    prediction = model.predict(gray)
    assert prediction.shape == (2, 3 if target == "rgb" else 2, height, width)  # lab models predict ab
    rgb = model(gray)
    assert rgb.shape == (2, 3, height, width) and 0 <= rgb.min() and rgb.max() <= 1
    train_one_step(model.train(), gray, torch.rand_like(prediction))


@pytest.mark.parametrize("target", ["rgb", "lab"])
def test_convnet_trains_a_step_in_either_space(compose_cfg, target: str) -> None:
    model = wrapper.colorizer(compose_cfg(f"model.target={target}").model)
    gray = torch.rand(4, 1, 32, 32)
    assert model(gray).shape == (4, 3, 32, 32)
    train_one_step(model, gray, torch.rand_like(model.predict(gray)))


def test_depth_and_width_shape_the_unet(compose_cfg) -> None:
    net = wrapper.colorizer(compose_cfg("model=unet", "model.width=8", "model.depth=2").model).net
    assert net.encoder.stem[0].out_channels == 8 and net.encoder.down[-1][1][0].out_channels == 32  # 8 -> 16 -> 32
    assert len(net.encoder.down) == len(net.upsample) == 2


def test_lab_model_keeps_the_input_luminance(compose_cfg) -> None:
    from colorize.color import rgb_to_lab

    model = wrapper.colorizer(compose_cfg("model=unet", "model.width=4", "model.target=lab").model).eval()
    generator = torch.Generator().manual_seed(0)
    lightness = torch.rand(2, 1, 16, 16, generator=generator) * 0.6 + 0.2  # mid tones
    ab = (torch.rand(2, 2, 8, 8, generator=generator) - 0.5) * 0.2  # +-11 units, upsampled: in gamut there
    rgb = model.to_rgb(lightness, torch.nn.functional.interpolate(ab, size=(16, 16), mode="bilinear"))
    assert torch.allclose(rgb_to_lab(rgb)[:, :1] / 100, lightness, atol=0.02)


def test_an_untrained_ycbcr_model_is_the_gray_copy_and_keeps_the_gray(compose_cfg) -> None:
    from colorize.color import GRAY_WEIGHTS

    model = wrapper.colorizer(compose_cfg("model=unet", "model.width=4", "model.target=ycbcr").model).eval()
    gray = torch.rand(2, 1, 16, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(gray), gray.expand(-1, 3, -1, -1))
    chroma = (torch.rand(2, 2, 16, 24, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.1
    rgb = model.to_rgb(gray * 0.6 + 0.2, chroma)  # mid tones and weak colour: nothing clipped
    assert torch.allclose((GRAY_WEIGHTS * rgb).sum(1, keepdim=True), gray * 0.6 + 0.2, atol=1e-6)
    assert torch.allclose(rgb_to_cbcr(rgb), chroma, atol=1e-6)


def test_a_unet_with_out_level_predicts_at_a_lower_resolution(compose_cfg) -> None:
    from colorize.images import from_rgb

    model = wrapper.colorizer(
        compose_cfg("model=unet", "model.width=4", "model.depth=3", "model.out_level=2", "model.target=ycbcr").model
    )
    assert len(model.net.upsample) == 1 and model.net.head.in_channels == 16  # 4 -> 8 -> 16: the head at level 2
    images = from_rgb(np.random.default_rng(0).integers(0, 256, (2, 22, 29, 3), dtype=np.uint8), with_lab=False)
    prediction = model.predict(model.inputs(images))
    assert prediction.shape == model.targets(images).shape == (2, 2, 6, 8)  # the loss compares 4x4 block averages
    assert model(model.inputs(images)).shape == (2, 3, 22, 29)  # upsampled to the image


def test_chroma_bins_encode_exactly_and_an_untrained_bins_model_is_the_gray_copy(compose_cfg) -> None:
    from colorize import bins

    chroma = (torch.rand(2, 2, 5, 7, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.8
    target = bins.soft_targets(chroma, 16)
    assert torch.allclose(target.sum(1), torch.ones(2, 5, 7))  # a distribution per pixel
    decoded = torch.einsum("nqhw,qc->nchw", target, bins.centres(16, torch.device("cpu")))
    assert torch.allclose(decoded, chroma, atol=1e-6)  # its mean is the chroma itself
    cfg = compose_cfg(
        "model=unet", "model.width=4", "model.target=ycbcr", "model.bins=8", "model.out_level=1", "loss=bins"
    )
    model = wrapper.colorizer(cfg.model).eval()
    gray = torch.rand(1, 1, 12, 20)
    with torch.no_grad():
        assert model.predict(gray).shape == (1, 64, 6, 10)
        assert torch.equal(model(gray), gray.expand(-1, 3, -1, -1))


def test_the_bins_loss_weighs_rare_colours_up_and_learns(compose_cfg) -> None:
    from colorize import bins

    loss = bins.RebalancedCrossEntropy(mix=0.5)
    # Nine pixels of one colour and one of another, each at a bin centre of the 8 x 8 grid (one class
    # each); the other 62 bins are never seen.
    common, rare = torch.tensor([0.0625, 0.0625]).view(1, 2, 1, 1), torch.tensor([0.1875, -0.0625]).view(1, 2, 1, 1)
    logits = torch.zeros(1, 64, 1, 10, requires_grad=True)
    loss(logits, torch.cat([common.expand(-1, -1, -1, 9), rare], -1)).backward()
    per_pixel = logits.grad.abs().sum(1).flatten()  # at equal scores, each pixel's pull is its weight
    # Weights 1 / (0.5 share + 0.5 / 2), the uniform share over the 2 colours seen (Zhang et al.'s over
    # the in-gamut bins): 1 / 0.3 against 1 / 0.7, 2.33 times. Over all 64 bins it was 7.9 times.
    assert (per_pixel[-1] / per_pixel[0]).item() == pytest.approx(0.7 / 0.3, rel=1e-4)
    cfg = compose_cfg("model=unet", "model.width=4", "model.depth=2", "model.target=ycbcr", "model.bins=8", "loss=bins")
    torch.manual_seed(0)  # the weights too: the test must not depend on what ran before it
    model = wrapper.colorizer(cfg.model)
    gray, chroma = torch.rand(4, 1, 16, 16), torch.zeros(4, 2, 16, 16) + torch.tensor([0.1, -0.2]).view(1, 2, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        loss(model.predict(gray), chroma).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():  # the annealed mean lands in the right bin
        assert (
            bins.read_out(model.predict(gray), 0.38).mean(dim=(0, 2, 3)) - torch.tensor([0.1, -0.2])
        ).abs().max() < 0.07


def test_saturation_scales_the_colour_and_keeps_the_gray(compose_cfg) -> None:
    from colorize.color import GRAY_WEIGHTS

    model = wrapper.colorizer(
        compose_cfg("model=unet", "model.width=4", "model.target=ycbcr", "model.saturation=1.5").model
    )
    gray = torch.full((1, 1, 4, 4), 0.5)
    chroma = torch.full((1, 2, 4, 4), 0.05)
    rgb = model.to_rgb(gray, chroma)
    assert torch.allclose(rgb_to_cbcr(rgb), chroma * 1.5, atol=1e-6)
    assert torch.allclose((GRAY_WEIGHTS * rgb).sum(1, keepdim=True), gray, atol=1e-6)
