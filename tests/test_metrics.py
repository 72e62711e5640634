import math

import numpy as np
import pytest
import skimage.color
import torch
from skimage.metrics import structural_similarity

from colorize.color import lab_to_rgb, rgb_to_lab
from colorize.images import Images, from_rgb
from colorize.metrics import AB_RARITY, Scores, baselines, colorfulness, rarity, rarity_weights, ssim


def scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    s = Scores()
    s.add(pred, truth)
    return s.result()


def test_psnr_pooled_and_per_image_by_hand() -> None:
    truth = torch.zeros(2, 3, 4, 4)
    pred = truth.clone()
    pred[0] += 0.1  # MSE 0.01: 20 dB
    pred[1] += 0.01  # MSE 0.0001: 40 dB
    result = scores(pred, truth)
    assert result["psnr"] == pytest.approx(10 * math.log10(1 / 0.00505), abs=1e-3)  # 22.97 dB on the pooled MSE
    assert result["psnr_per_image"] == pytest.approx(30.0, abs=1e-3)  # (20 + 40) / 2


def test_colorfulness_of_known_images() -> None:
    half_red = torch.zeros(1, 3, 2, 2)
    half_red[0, 0, 0] = 1  # top row red (255, 0, 0), bottom row black
    # rg = 255 or 0, yb = 127.5 or 0: means and standard deviations are 127.5 and 63.75,
    # so M = (1 + 0.3) sqrt(127.5^2 + 63.75^2).
    assert colorfulness(half_red).item() == pytest.approx(1.3 * math.hypot(127.5, 63.75), rel=1e-5)
    gray = torch.rand(1, 1, 5, 5).expand(-1, 3, -1, -1)
    assert colorfulness(gray).item() == pytest.approx(0, abs=1e-4)
    assert scores(half_red * 0.5, half_red)["colorfulness_ratio"] == pytest.approx(0.5, rel=1e-5)


def test_colorfulness_gap_is_per_image_and_mean_ab_close_counts_casts() -> None:
    red, gray = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    red[:, 0] = 1
    truth, swapped = torch.cat([red, gray]), torch.cat([gray, red])
    result = scores(swapped, truth)
    assert result["colorfulness_ratio"] == pytest.approx(1, rel=1e-5)  # the same colour over the set...
    assert result["colorfulness_gap"] == pytest.approx(colorfulness(red).item(), rel=1e-5)  # ...on the wrong images
    assert result["mean_ab_close"] == 0  # both images' overall colour is far off
    tinted = truth.clone()
    tinted[1, 2] += 0.02  # a faint blue cast on the gray image: about 5 b* units
    assert scores(tinted, truth)["mean_ab_close"] == 1


def test_rarity_weights_by_hand() -> None:
    # Two bins seen, 3 pixels to 1; a sigma of 0.01 bins leaves the shares as they are.
    weights = rarity_weights(torch.tensor([[3.0, 1.0], [0.0, 0.0]]), sigma_bins=0.01, mix=0.5)
    # 1 / (0.5 p + 0.5 / 2): 1.6, 2.667 and, unseen, 4; then divided by 0.75 * 1.6 + 0.25 * 2.667 = 1.867.
    assert weights.flatten().tolist() == pytest.approx(
        [1.6 / 1.8667, 2.6667 / 1.8667, 4 / 1.8667, 4 / 1.8667], rel=1e-3
    )
    assert AB_RARITY.shape == (22, 22) and AB_RARITY.min() > 0.1 and AB_RARITY.max() < 6  # finite for every colour


def test_auc_raw_and_rebalanced_by_hand() -> None:
    # Three pixels given in CIE Lab (in the sRGB gamut, so they come back from RGB within 1e-4), and pure red
    # predicted as pure blue (ab error 175).
    truth_lab = torch.tensor([[50, 5.5, 5.5], [50, 20.5, 5], [60, -30.3, 45.4]]).mT.reshape(1, 3, 1, 3)
    pred_lab = torch.tensor([[50, 5.5, 5.5], [50, 0, 5], [60, 0, 5]]).mT.reshape(1, 3, 1, 3)
    red, blue = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1), torch.tensor([0, 0, 1.0]).view(1, 3, 1, 1)
    truth, pred = torch.cat([lab_to_rgb(truth_lab), red], -1), torch.cat([lab_to_rgb(pred_lab), blue], -1)
    # ab errors 0, 20.5, hypot(30.3, 40.4) = 50.5 and 175: within 151, 130, 100 and 0 of the 151 thresholds 0..150.
    passed = torch.tensor([151, 130, 100, 0]) / 151
    result = scores(pred, truth)
    assert result["auc"] == pytest.approx(100 * (151 + 130 + 100 + 0) / (4 * 151), abs=1e-3)  # 63.08
    # Each pixel weighs what its true colour's 10 x 10 bin of the table weighs: a in [0, 10) and b in [0, 10)
    # is bin (11, 11); (20.5, 5) is (13, 11); (-30.3, 45.4) is (7, 15); red's (80.1, 67.2) is (19, 17).
    weight = AB_RARITY[[11, 13, 7, 19], [11, 11, 15, 17]]
    assert weight.tolist() == pytest.approx(rarity(rgb_to_lab(truth)[:, 1:]).flatten().tolist())
    assert result["auc_rebalanced"] == pytest.approx(
        100 * (weight * passed).sum().item() / weight.sum().item(), abs=1e-3
    )
    assert weight[0] < 0.2 < 1 < weight[2]  # near-gray is common, yellow-green rarer: the rebalanced AuC is lower
    assert result["auc_rebalanced"] < result["auc"]


def test_auc_is_the_mean_over_thresholds_pooled_over_pixels() -> None:
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(3, 3, 8, 8, generator=generator)
    pred = (truth + 0.3 * torch.randn(3, 3, 8, 8, generator=generator)).clamp(0, 1)
    s = Scores()
    s.add(pred[:2], truth[:2])  # two batches, pooled
    s.add(pred[2:], truth[2:])
    result, per_image = s.result(), s.per_image()
    truth_ab = rgb_to_lab(truth)[:, 1:]
    error, weight = (rgb_to_lab(pred)[:, 1:] - truth_ab).norm(dim=1), rarity(truth_ab)
    within = torch.stack([(error <= t).float() for t in range(151)])  # one pass per threshold, as defined
    assert result["auc"] == pytest.approx(100 * within.mean().item(), abs=1e-3)
    assert result["auc_rebalanced"] == pytest.approx(
        100 * (within * weight).sum().item() / (151 * weight.sum().item()), abs=1e-3
    )
    assert per_image["auc"] == pytest.approx((100 * within.mean(dim=(0, 2, 3))).tolist(), abs=1e-3)
    perfect = scores(truth, truth)
    assert perfect["auc"] == pytest.approx(100) and perfect["auc_rebalanced"] == pytest.approx(100)


def test_ssim_matches_scikit_image() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((3, 32, 32)).astype(np.float32)
    pred = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1).astype(np.float32)
    expected = structural_similarity(
        truth, pred, channel_axis=0, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None]).item() == pytest.approx(expected, abs=1e-4)
    assert ssim(torch.from_numpy(truth)[None], torch.from_numpy(truth)[None]).item() == pytest.approx(1, abs=1e-6)


def test_baselines_by_hand() -> None:
    rgb = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    rgb[...] = (200, 100, 50)
    result = baselines(from_rgb(rgb))
    # OpenCV's gray: 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 -> 124 in R, G and B.
    mse = ((200 - 124) ** 2 + (100 - 124) ** 2 + (50 - 124) ** 2) / 3 / 255**2
    assert result["gray_copy_psnr"] == pytest.approx(-10 * math.log10(mse), abs=1e-3)  # 12.17 dB
    assert result["gray_copy_psnr_per_image"] == pytest.approx(result["gray_copy_psnr"], abs=1e-4)
    assert result["gray_copy_colorfulness_ratio"] == 0
    # Every pixel's ab error is the colour's chroma, hypot(a, b) = 58.1: within 92 of the 151 thresholds.
    chroma = math.hypot(*skimage.color.rgb2lab(rgb[0, 0, 0] / 255)[1:])
    assert (
        result["gray_copy_auc"]
        == result["gray_copy_auc_rebalanced"]
        == pytest.approx(100 * (151 - math.ceil(chroma)) / 151, abs=1e-3)
    )
    # The true L with a = b = 0 is a neutral gray; scikit-image's exact inverse gives its RGB.
    lightness = skimage.color.rgb2lab(rgb[0] / 255)[..., 0]
    neutral = skimage.color.lab2rgb(np.stack([lightness, 0 * lightness, 0 * lightness], -1))
    expected = -10 * math.log10(((neutral - rgb[0] / 255) ** 2).mean())
    assert result["lab_zero_ab_psnr"] == pytest.approx(expected, abs=0.01)
    assert result["lab_zero_ab_colorfulness"] == pytest.approx(0, abs=0.01)
    assert result["lab_zero_ab_ssim"] < 1


def test_a_gray_image_is_its_own_gray_copy() -> None:
    rgb = np.repeat(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), dtype=np.uint8), 3, axis=-1)
    result = baselines(from_rgb(rgb))
    assert result["gray_copy_psnr"] == 100  # the 1e-10 MSE floor
    assert result["gray_copy_ssim"] == pytest.approx(1, abs=1e-6)


def test_evaluation_batches_hold_as_many_pixels_at_any_image_size() -> None:
    from colorize.metrics import eval_batch_size

    small = Images(torch.zeros(3, 1, 32, 32, dtype=torch.uint8), torch.zeros(3, 3, 32, 32, dtype=torch.uint8), None)
    big = Images(torch.zeros(3, 1, 256, 256, dtype=torch.uint8), torch.zeros(3, 3, 256, 256, dtype=torch.uint8), None)
    assert (eval_batch_size(small), eval_batch_size(big)) == (1000, 15)  # 1,000 x 32^2 pixels
