"""Colour conversions."""

import cv2
import numpy as np


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8, exactly the seed's cv2.COLOR_RGB2GRAY."""
    n, h, w, _ = rgb.shape
    # One cvtColor call over the images stacked vertically: the conversion is per pixel, so this
    # equals converting each image on its own, without a Python loop over images.
    return cv2.cvtColor(np.ascontiguousarray(rgb).reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w)
