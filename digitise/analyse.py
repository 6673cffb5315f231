"""Cheap image facts measured before OCR: is the page blank, which way do its lines run, how skewed is it.

All measurements run on a reduced copy of the page (about 100 dpi), so a page costs a few
milliseconds; OCR then runs once, on the corrected full-resolution image. A page this
cheap test calls blank is not trusted on it alone: `sensitive` gives the pipeline a copy
in which faint writing is black, for one OCR that must find nothing (see pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageChops, ImageFilter

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
# Above this edge-alignment hint a page is first read turned by 180 degrees. On the fixture
# set upright pages scored -0.60..0.00 and upside-down ones 0.00..0.31.
UPSIDE_DOWN_HINT = 0.05
# The sensitive copy of a page judged blank. Contrast is measured against the paper near
# each point (blocks of about 1/20 inch, the lightest within 5 blocks), so an edge shadow
# or a tinted patch counts as paper. Scanner noise and the other side's writing seen
# through card stock stay within about FAINT_FLOOR grey levels of the paper (or
# NOISE_SIGMAS of the page's own noise, if that is more) and are drawn white; anything
# darker is ink, drawn black once FAINT_SPAN levels above the floor. So a hard pencil
# line 25 levels darker than the paper comes out ~3 times the contrast the cheap test needs.
FAINT_FLOOR = 12
FAINT_SPAN = 20
NOISE_SIGMAS = 4


@dataclass(frozen=True, slots=True)
class Layout:
    """What the reduced page image shows."""

    blank: bool
    ink_fraction: float
    skew: float  # degrees the scan is turned counter-clockwise (0 for turned pages)
    lines_across: bool  # text lines run left-right (0/180) rather than up-down (90/270)
    paper: int  # grey level of the paper, to fill corners exposed by rotation
    upside_down: bool = False  # the layout suggests 180 (or 270 rather than 90) degrees


def reduced(image: Image.Image, dpi: int, target_dpi: int = 100) -> Image.Image:
    factor = max(1, round(dpi / target_dpi))
    small = image.reduce(factor) if factor > 1 else image
    return small.convert("L") if small.mode != "L" else small


def ink_mask(small: Image.Image) -> tuple[np.ndarray, int]:
    """Boolean ink mask of a reduced page (isolated specks removed) and the paper grey level."""
    pixels = np.asarray(small, dtype=np.int16)
    paper = int(np.percentile(pixels, 75))
    raw = pixels < paper - INK_CONTRAST
    # A speck of dust or noise is ink with at most one inked neighbour; strokes have more.
    padded = np.pad(raw, 1).astype(np.uint8)
    h, w = raw.shape
    neighbours = sum(
        padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
    mask = raw & (neighbours >= 2)
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
    # np.rot90 turns the mask a quarter counter-clockwise: the way a 90-degree scan is undone.
    hint = upside_down_hint(mask if across else np.rot90(mask))
    return Layout(False, ink, row_angle if across else 0.0, across, paper, hint > UPSIDE_DOWN_HINT)


def sensitive(image: Image.Image, dpi: int) -> Image.Image:
    """The page with faint ink stretched to black and paper, noise and show-through to white, margins included."""
    grey = image if image.mode == "L" else image.convert("L")
    block = max(2, dpi // 20)
    paper = (grey.reduce(block).filter(ImageFilter.MaxFilter(5))
             .resize(grey.size, Image.Resampling.BILINEAR))
    # 128 + how much darker than its paper each pixel is, clipped to 0..255: all in C.
    contrast = ImageChops.subtract(paper, grey, scale=1.0, offset=128)
    floor = max(float(FAINT_FLOOR), _noise_level(contrast.histogram()))
    lut = [255 - min(255, max(0, round((v - 128 - floor) * 255 / FAINT_SPAN))) for v in range(256)]
    return contrast.point(lut)


def _noise_level(histogram: list[int]) -> float:
    """Median plus NOISE_SIGMAS robust standard deviations of the contrast (offset 128) histogram."""
    counts = np.asarray(histogram, dtype=np.int64)
    cumulative = np.cumsum(counts)
    median = int(np.searchsorted(cumulative, cumulative[-1] / 2))
    deviation = np.abs(np.arange(256) - median)
    spread = np.bincount(deviation, weights=counts, minlength=256)
    mad = int(np.searchsorted(np.cumsum(spread), cumulative[-1] / 2))
    return (median - 128) + NOISE_SIGMAS * 1.4826 * max(mad, 0.5)


def level(image: Image.Image, skew: float, paper: int) -> Image.Image:
    """Turn a page that is `skew` degrees counter-clockwise back to level."""
    if abs(skew) < 0.1:
        return image
    # Bilinear: a third of bicubic's cost, and no visible difference on a 300 dpi scan.
    return image.rotate(-skew, resample=Image.Resampling.BILINEAR, fillcolor=paper)


def turn(image: Image.Image, rotation: int) -> Image.Image:
    """Undo a scan turned `rotation` degrees clockwise."""
    if rotation % 360 == 0:
        return image
    return image.rotate(rotation, expand=True)


def phash(image: Image.Image, dpi: int) -> str:
    return str(imagehash.phash(reduced(image, dpi, 50)))


def phash_distance(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def _peak_share(edges: np.ndarray, width: int) -> float:
    """Share of text lines whose edge falls within 2% of the page width of the commonest edge."""
    bins = np.bincount((edges * 50 // max(1, width)).astype(np.int64), minlength=51)
    near = bins + np.concatenate(([0], bins[:-1])) + np.concatenate((bins[1:], [0]))
    return float(near.max()) / max(1, len(edges))


def upside_down_hint(mask: np.ndarray) -> float:
    """How strongly the ink suggests the page is upside down: > 0 yes, < 0 no.

    Latin writing is aligned on the left and ragged on the right, and a card's date
    column and notes column are aligned on the left too; turned by 180 degrees the
    aligned edges move to the right. Ruled lines are ignored. Only a hint: it picks which
    way up to OCR first, and the OCR's confidence has the final word.
    """
    h, w = mask.shape
    ink = mask.copy()
    ink[ink.mean(axis=1) > 0.5, :] = False  # horizontal rules
    ink[:, ink.mean(axis=0) > 0.3] = False  # vertical rules
    rows = ink.any(axis=1)
    lefts, rights = [], []
    start = None
    for y in range(h + 1):
        inked = y < h and rows[y]
        if inked and start is None:
            start = y
        elif not inked and start is not None:
            if y - start >= 3:  # a text line, not a speck row
                cols = np.nonzero(ink[start:y].any(axis=0))[0]
                lefts.append(cols[0])
                rights.append(cols[-1])
            start = None
    if len(lefts) < 3:
        return 0.0
    return _peak_share(w - 1 - np.array(rights), w) - _peak_share(np.array(lefts), w)
