"""Colour conversions as torch ops on the device: OpenCV's gray for the seed, sRGB <-> CIE Lab (D65),
gray + Cb, Cr -> RGB, and colour fitted into the sRGB gamut keeping the luminance."""

import torch

L_SCALE = 100.0  # L* spans [0, 100]
AB_SCALE = 110.0  # a*, b* of sRGB colours stay within about +-110 (richzhang/colorization's ab_norm)

# Linear sRGB -> CIE XYZ, D65 white (IEC 61966-2-1, the matrix OpenCV uses).
_RGB_TO_XYZ = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ.double()).float()
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])  # D65 white point, XYZ with Y = 1
# OpenCV's RGB -> gray weights (ITU-R BT.601 luma), shaped to weigh (N, 3, H, W) channels.
GRAY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
# BT.601 chroma, centred on 0 (OpenCV's COLOR_RGB2YCrCb without its 0.5 offset): Cb = (B - Y) * CB,
# Cr = (R - Y) * CR, Y the gray above; both span [-0.5, 0.5] for RGB in [0, 1].
CB, CR = 0.564, 0.713
_EPSILON = 216 / 24389  # CIE: below this, f(t) is linear (t = (6/29)^3)
_KAPPA = 24389 / 27
# Halvings of the chroma scale when fitting a Lab colour into the sRGB gamut: 2^-12 of its chroma.
GAMUT_STEPS = 12


# OpenCV's COLOR_RGB2GRAY in integers: BT.601's weights in 15-bit fixed point, rounded (equal to
# cv2.cvtColor on all 2^24 colours; tested), so a photo's gray is the same in training, in the photo
# command and in the served model, where OpenCV is not installed.
GRAY_FIXED_POINT = torch.tensor([9798, 19235, 3735], dtype=torch.int32).view(1, 3, 1, 1)
GRAY_SHIFT = 15


def gray(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB -> (N, 1, H, W) uint8, exactly the seed's cv2.COLOR_RGB2GRAY."""
    weighted = (rgb.to(torch.int32) * GRAY_FIXED_POINT.to(rgb.device)).sum(1, keepdim=True)
    return ((weighted + (1 << (GRAY_SHIFT - 1))) >> GRAY_SHIFT).to(torch.uint8)


def as_float(pixels: torch.Tensor) -> torch.Tensor:
    return pixels / 255  # uint8 -> float32 in [0, 1], a new tensor (never the caller's, changed in place)


def _mix(matrix: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix to (N, 3, H, W)."""
    return torch.einsum("ij,njhw->nihw", matrix.to(pixels), pixels)


def rgb_to_cbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 2, H, W) Cb, Cr: the colour without the gray."""
    gray = (GRAY_WEIGHTS.to(rgb) * rgb).sum(1, keepdim=True)
    return torch.cat([(rgb[:, 2:] - gray) * CB, (rgb[:, :1] - gray) * CR], 1)


def cbcr_to_rgb(gray: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) gray and (N, 2, H, W) Cb, Cr -> RGB in [0, 1] whose gray is `gray` on every pixel
    (add_chroma); zero chroma gives the gray in R, G and B."""
    w_r, w_g, w_b = GRAY_WEIGHTS.flatten().tolist()
    blue_minus_gray, red_minus_gray = cbcr[:, :1] / CB, cbcr[:, 1:] / CR
    green_minus_gray = -(w_r * red_minus_gray + w_b * blue_minus_gray) / w_g  # the one G that keeps Y = gray
    return add_chroma(gray, torch.cat([red_minus_gray, green_minus_gray, blue_minus_gray], 1))


def add_chroma(gray: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """gray + offsets, the offsets (R, G, B minus the gray, which weigh to zero) scaled down on each
    pixel just enough for R, G and B to fit in [0, 1]. Clipping each channel instead would change the
    gray of every colour that leaves the gamut; scaling keeps it, and only the chroma is lost."""
    # Per channel, the largest scale that keeps gray + scale * offset within [0, 1].
    room = torch.where(offsets > 0, (1 - gray) / offsets.clamp_min(1e-12), gray / (-offsets).clamp_min(1e-12))
    scale = torch.where(offsets == 0, torch.ones_like(room), room).amin(1, keepdim=True).clamp(0, 1)
    return (gray + scale * offsets).clamp(0, 1)  # the clamp only absorbs float rounding


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] -> CIE Lab: L in [0, 100], a and b about [-110, 110]."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).pow(2.4))
    xyz = _mix(_RGB_TO_XYZ, linear) / _WHITE.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > _EPSILON, xyz.clamp_min(_EPSILON).pow(1 / 3), (_KAPPA * xyz + 16) / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def _lab_to_linear(lab: torch.Tensor) -> torch.Tensor:
    lightness, a, b = lab.unbind(1)
    fy = (lightness + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    xyz = torch.where(f.pow(3) > _EPSILON, f.pow(3), (116 * f - 16) / _KAPPA)
    return _mix(_XYZ_TO_RGB, xyz * _WHITE.to(lab).view(1, 3, 1, 1))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) CIE Lab -> sRGB in [0, 1]; colours outside the sRGB gamut are clipped."""
    linear = _lab_to_linear(lab).clamp(0, 1)
    return torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear.clamp_min(1e-12).pow(1 / 2.4) - 0.055)


def lab_to_rgb_keeping_l(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) L and (N, 2, H, W) ab -> sRGB in [0, 1] with that L on every pixel: where a colour
    leaves the sRGB gamut its ab is scaled down, found by halving, until it fits (the neutral colour
    at any L in [0, 100] does), instead of clipping channels, which would change its L."""

    def fits(scale: torch.Tensor) -> torch.Tensor:
        linear = _lab_to_linear(torch.cat([lightness, scale * ab], 1))
        return ((linear >= -1e-6) & (linear <= 1 + 1e-6)).all(1, keepdim=True)

    low, high = torch.zeros_like(lightness), torch.ones_like(lightness)
    whole = fits(high)
    for _ in range(GAMUT_STEPS):
        middle = (low + high) / 2
        inside = fits(middle)
        low, high = torch.where(inside, middle, low), torch.where(inside, high, middle)
    return lab_to_rgb(torch.cat([lightness, torch.where(whole, high, low) * ab], 1))
