import pytest
import torch
from hydra.utils import instantiate

from colorize.models.convnet import ConvNet


def test_convnet_matches_the_seed() -> None:
    model = ConvNet(width=1)
    # conv 1->16 3x3 (160) + conv 16->32 3x3 (4,640) + linear 1568->512 (803,328) + linear 512->3072 (1,575,936)
    assert sum(p.numel() for p in model.parameters()) == 2_384_064
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (512, 1568), (512,), (3072, 512), (3072,)]


@pytest.mark.parametrize("batch", [1, 7, 100])
def test_convnet_any_batch_size(batch: int) -> None:
    out = ConvNet()(torch.rand(batch, 1, 32, 32))
    assert out.shape == (batch, 3, 32, 32)
    assert 0 <= out.min() and out.max() <= 1  # sigmoid


def test_width_scales_channels_and_hidden_units(compose_cfg) -> None:
    model = instantiate(compose_cfg("model.width=2").model)
    assert isinstance(model, ConvNet)
    assert [tuple(p.shape) for p in model.parameters()][::2] == [(32, 1, 3, 3), (64, 32, 3, 3), (1024, 3136), (3072, 1024)]
