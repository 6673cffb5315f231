"""Cheap image facts measured before OCR: is the page blank, which way do its lines run, how skewed is it.

All measurements run on a reduced copy of the page (about 100 dpi), so a page costs a few
milliseconds; OCR then runs once, on the corrected full-resolution image.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageFilter

# A page is blank when less than this fraction of its area (inside the margins) is ink
# after specks are removed. A short hand-written entry covers ~0.5% of a card; dust,
# bleed-through and scanner noise stay well under 0.05%.
BLANK_INK_FRACTION = 0.0015
# Scanner edges, punch holes and the shadow of the card edge live in the margins.
MARGIN = 0.04
# Ink is anything this much darker than the paper; bleed-through is fainter than this.
INK_CONTRAST = 70
# Skew search range and resolution, in degrees.
MAX_SKEW = 6.0
COARSE_STEP = 0.25
FINE_STEP = 0.05
# Text lines run across the page when the row profile is this much sharper than the
# column profile; below it the page is probably turned by 90 degrees.
ACROSS_RATIO = 1.15


@dataclass(frozen=True, slots=True)
class Layout:
    """What the reduced page image shows."""

    blank: bool
    ink_fraction: float
    skew: float  # degrees the scan is turned counter-clockwise (0 for turned pages)
    lines_across: bool  # text lines run left-right (0/180) rather than up-down (90/270)
    paper: int  # grey level of the paper, to fill corners exposed by rotation


def reduced(image: Image.Image, dpi: int, target_dpi: int = 100) -> Image.Image:
    factor = max(1, round(dpi / target_dpi))
    small = image.reduce(factor) if factor > 1 else image
    return small.convert("L") if small.mode != "L" else small


def ink_mask(small: Image.Image) -> tuple[np.ndarray, int]:
    """Boolean ink mask of a reduced page (specks removed) and the paper grey level."""
    cleaned = small.filter(ImageFilter.MedianFilter(3))
    pixels = np.asarray(cleaned, dtype=np.int16)
    paper = int(np.percentile(pixels, 75))
    mask = pixels < paper - INK_CONTRAST
    h, w = mask.shape
    my, mx = int(h * MARGIN), int(w * MARGIN)
    mask[:my, :] = False
    mask[h - my :, :] = False
    mask[:, :mx] = False
    mask[:, w - mx :] = False
    return mask, paper


def _sharpness(ys: np.ndarray, xs: np.ndarray, angles: np.ndarray, height: int) -> np.ndarray:
    """Projection-profile sharpness of ink rows for each candidate angle (degrees)."""
    scores = np.empty(len(angles))
    pad = int(np.ceil(np.tan(np.radians(MAX_SKEW + 1)) * (xs.max() + 1))) + 1 if len(xs) else 1
    for i, angle in enumerate(angles):
        shifted = np.rint(ys + xs * np.tan(np.radians(angle))).astype(np.int64) + pad
        profile = np.bincount(shifted, minlength=height + 2 * pad)
        scores[i] = float(np.dot(profile, profile))
    return scores


def _best_angle(ys: np.ndarray, xs: np.ndarray, height: int) -> tuple[float, float]:
    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 1e-9, COARSE_STEP)
    scores = _sharpness(ys, xs, coarse, height)
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - COARSE_STEP, best + COARSE_STEP + 1e-9, FINE_STEP)
    fine_scores = _sharpness(ys, xs, fine, height)
    i = int(np.argmax(fine_scores))
    return float(fine[i]), float(fine_scores[i])


def measure(image: Image.Image, dpi: int) -> Layout:
    """Blankness, skew and line direction of a page image."""
    small = reduced(image, dpi)
    mask, paper = ink_mask(small)
    h, w = mask.shape
    inner = max(1, int(h * (1 - 2 * MARGIN)) * int(w * (1 - 2 * MARGIN)))
    ink = float(mask.sum()) / inner
    if ink < BLANK_INK_FRACTION:
        return Layout(True, ink, 0.0, True, paper)
    ys, xs = np.nonzero(mask)
    row_angle, row_score = _best_angle(ys, xs, h)
    _, col_score = _best_angle(xs, ys, w)
    # Text lines and card rules give a much sharper profile along the lines than across.
    across = row_score * ACROSS_RATIO >= col_score
    return Layout(False, ink, row_angle if across else 0.0, across, paper)


def level(image: Image.Image, skew: float, paper: int) -> Image.Image:
    """Turn a page that is `skew` degrees counter-clockwise back to level."""
    if abs(skew) < 0.1:
        return image
    return image.rotate(-skew, resample=Image.Resampling.BICUBIC, fillcolor=paper)


def turn(image: Image.Image, rotation: int) -> Image.Image:
    """Undo a scan turned `rotation` degrees clockwise."""
    if rotation % 360 == 0:
        return image
    return image.rotate(rotation, expand=True)


def phash(image: Image.Image, dpi: int) -> str:
    return str(imagehash.phash(reduced(image, dpi, 50)))


def phash_distance(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)
