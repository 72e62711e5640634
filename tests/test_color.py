import cv2
import numpy as np
import skimage.color
import skimage.data
import torch

from colorize.color import lab_to_rgb, rgb_to_lab

# OpenCV's float Lab interpolates the sRGB gamma and the cube root from tables: it differs from the
# exact CIE formulas by up to about 0.4 in L, a and b. scikit-image uses the exact formulas.
OPENCV_TOLERANCE = 0.5  # Lab units
EXACT_TOLERANCE = 0.01  # Lab units
ROUND_TRIP_TOLERANCE = 1e-4  # RGB in [0, 1]


def photos() -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]: random pixels, two photos, the primaries, black and white."""
    rng = np.random.default_rng(0)
    corners = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]]] * 8)
    parts = [rng.random((64, 64, 3)), skimage.data.astronaut()[:64, :64] / 255, skimage.data.coffee()[:64, :64] / 255]
    return np.concatenate([*parts, np.pad(corners, ((0, 0), (0, 56), (0, 0)))]).astype(np.float32)


def to_torch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def to_numpy(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).numpy()


def test_rgb_to_lab_matches_opencv_and_the_cie_formulas() -> None:
    rgb = photos()
    lab = to_numpy(rgb_to_lab(to_torch(rgb)))
    assert np.abs(lab - cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)).max() < OPENCV_TOLERANCE
    assert np.abs(lab - skimage.color.rgb2lab(rgb.astype(np.float64))).max() < EXACT_TOLERANCE
    assert np.allclose(lab[64 * 3, 1], [100, 0, 0], atol=EXACT_TOLERANCE)  # D65 white


def test_lab_round_trip_and_opencv_inverse() -> None:
    rgb = photos()
    assert np.abs(to_numpy(lab_to_rgb(rgb_to_lab(to_torch(rgb)))) - rgb).max() < ROUND_TRIP_TOLERANCE
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    assert np.abs(to_numpy(lab_to_rgb(to_torch(lab))) - cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)).max() < 1e-3


def test_lab_to_rgb_clips_out_of_gamut_colours() -> None:
    extreme = torch.tensor([50.0, 200.0, -200.0]).view(1, 3, 1, 1)
    rgb = lab_to_rgb(extreme)
    assert 0 <= rgb.min() and rgb.max() <= 1
