"""What one item wears: garments, colours, patterns, a front print, skin tone and hair.

Everything here is fixed per item id (sampled once from the item's generator), so every
view of an item shows the same clothes; only the front print and a jacket's open front
depend on the view (they are on the front of the torso).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORIES = {
    "MEN": ("Tees_Tanks", "Shirts_Polos", "Sweaters", "Sweatshirts_Hoodies", "Jackets_Vests",
            "Pants", "Denim", "Shorts", "Suiting"),
    "WOMEN": ("Blouses_Shirts", "Tees_Tanks", "Graphic_Tees", "Dresses", "Skirts", "Shorts",
              "Pants", "Denim", "Leggings", "Cardigans", "Jackets_Coats", "Sweaters",
              "Rompers_Jumpsuits"),
}

GARMENT_COLOURS = np.array([
    (32, 42, 82), (30, 30, 34), (238, 238, 234), (128, 128, 132), (62, 64, 70), (212, 194, 160),
    (172, 150, 102), (188, 32, 44), (112, 28, 44), (234, 150, 172), (238, 198, 190),
    (228, 118, 42), (214, 164, 42), (242, 212, 72), (104, 110, 52), (40, 120, 72), (22, 118, 124),
    (150, 190, 230), (42, 72, 172), (70, 96, 142), (180, 160, 214), (100, 52, 122), (112, 72, 46),
    (190, 140, 92), (244, 234, 208), (238, 120, 100), (160, 218, 190), (24, 60, 120),
], np.float32)
DENIM = np.array([(58, 82, 128), (40, 56, 92), (92, 120, 160), (30, 36, 56)], np.float32)
SKIN = np.array([(252, 222, 196), (240, 196, 162), (224, 174, 134), (200, 138, 100),
                 (164, 108, 74), (118, 76, 50), (92, 60, 42)], np.float32)
HAIR = np.array([(24, 20, 20), (56, 38, 28), (98, 64, 40), (128, 62, 32), (206, 176, 112),
                 (166, 162, 158), (146, 106, 70)], np.float32)
SHOES = np.array([(28, 26, 26), (240, 240, 238), (110, 70, 45), (60, 60, 64), (160, 40, 40),
                  (200, 180, 150)], np.float32)
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots", "block")
PRINTS = ("circle", "star", "triangle", "diamond", "bars", "ring", "square")


@dataclass(frozen=True)
class Look:
    gender: str
    category: str
    skin: tuple
    hair: tuple
    hair_style: str          # short | long | bun
    hair_len: float          # how far long hair falls (body units below the head centre)
    upper: tuple             # base colour of the upper garment
    upper2: tuple            # second colour of its pattern
    pattern: str
    period: float            # pattern period in body units
    duty: float
    sleeves: str             # none | short | long
    upper_hem: float         # y of the upper garment's hem
    lower_kind: str          # trousers | shorts | skirt | dress
    lower: tuple
    lower_hem: float         # y of the hem of shorts / skirts
    loose: float             # trouser width factor
    shoes: tuple
    print_shape: str | None  # front print (None: plain front)
    print_colour: tuple
    print_size: float
    jacket: bool             # open front showing an inner layer of print_colour
    collar: bool


def _colour(rng: np.random.Generator, table: np.ndarray, jitter: float = 10.0) -> tuple:
    c = table[rng.integers(len(table))] + rng.normal(0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))


def _contrasting(rng: np.random.Generator, base: tuple, min_dist: float = 110.0) -> tuple:
    for _ in range(20):
        c = _colour(rng, GARMENT_COLOURS)
        if np.linalg.norm(np.subtract(c, base)) >= min_dist:
            return c
    return (240.0, 240.0, 236.0) if np.mean(base) < 128 else (30.0, 30.0, 34.0)


def sample_look(rng: np.random.Generator) -> Look:
    gender = "WOMEN" if rng.random() < 0.6 else "MEN"
    category = str(rng.choice(CATEGORIES[gender]))
    u = rng.uniform
    female = gender == "WOMEN"
    upper = _colour(rng, GARMENT_COLOURS)
    pattern = str(rng.choice(PATTERNS, p=[0.42, 0.17, 0.08, 0.14, 0.1, 0.09]))
    upper2 = _contrasting(rng, upper, 90.0)
    sleeves = str(rng.choice(["none", "short", "long"], p=[0.2, 0.45, 0.35] if female else [0.1, 0.5, 0.4]))
    lower_kind = "trousers"
    if female and rng.random() < 0.3:
        lower_kind = "skirt"
    if category in ("Skirts",):
        lower_kind = "skirt"
    elif category == "Dresses":
        lower_kind = "dress"
    elif category == "Shorts" or (rng.random() < 0.12):
        lower_kind = "shorts"
    elif category in ("Pants", "Denim", "Leggings", "Suiting"):
        lower_kind = "trousers"
    jacket = category in ("Jackets_Vests", "Jackets_Coats", "Cardigans", "Suiting")
    if jacket or category in ("Sweaters", "Sweatshirts_Hoodies"):
        sleeves = "long"
    if category in ("Tees_Tanks", "Graphic_Tees") and sleeves == "long":
        sleeves = "short"
    lower = _colour(rng, DENIM if category == "Denim" or (lower_kind == "trousers" and rng.random() < 0.3)
                    else GARMENT_COLOURS)
    if lower_kind == "dress" or category == "Rompers_Jumpsuits":
        lower = upper
    if category == "Suiting":
        lower = upper
        pattern = "solid"
    if jacket:
        pattern = "solid" if rng.random() < 0.7 else pattern
    print_shape = None
    if jacket:
        print_shape = "panel"
    elif rng.random() < (0.95 if category == "Graphic_Tees" else 0.7):
        print_shape = str(rng.choice(PRINTS))
    long_hair = rng.random() < (0.75 if female else 0.08)
    hair_style = "long" if long_hair else ("bun" if female and rng.random() < 0.5 else "short")
    return Look(
        gender=gender, category=category, skin=_colour(rng, SKIN, 6), hair=_colour(rng, HAIR, 8),
        hair_style=hair_style, hair_len=u(0.12, 0.3), upper=upper, upper2=upper2, pattern=pattern,
        period=u(0.022, 0.05), duty=u(0.3, 0.6), sleeves=sleeves,
        upper_hem=u(0.47, 0.53) if not jacket else u(0.5, 0.6),
        lower_kind=lower_kind, lower=lower,
        lower_hem=u(0.6, 0.68) if lower_kind == "shorts" else u(0.66, 0.86),
        loose=u(1.05, 1.35) if category != "Leggings" else 0.95,
        shoes=_colour(rng, SHOES, 8), print_shape=print_shape,
        print_colour=_contrasting(rng, upper, 120.0), print_size=u(0.035, 0.06), jacket=jacket,
        collar=category in ("Shirts_Polos", "Blouses_Shirts") and rng.random() < 0.7,
    )


def texture(look: Look, shape: tuple[int, int], px_per_unit: float, phase: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) float32 image of the upper garment's pattern, in image coordinates."""
    h, w = shape
    c1 = np.asarray(look.upper, np.float32)
    c2 = np.asarray(look.upper2, np.float32)
    if look.pattern == "solid":
        return np.broadcast_to(c1, (h, w, 3))
    period = max(look.period * px_per_unit, 3.0)
    ys = (np.arange(h, dtype=np.float32)[:, None] + phase[1]) / period
    xs = (np.arange(w, dtype=np.float32)[None, :] + phase[0]) / period
    if look.pattern == "hstripes":
        on = np.broadcast_to((ys % 1.0) < look.duty, (h, w))
    elif look.pattern == "vstripes":
        on = np.broadcast_to((xs % 1.0) < look.duty, (h, w))
    elif look.pattern == "checks":
        on = ((ys % 1.0) < 0.5) ^ ((xs % 1.0) < 0.5)
    elif look.pattern == "dots":
        dy = (ys % 1.0) - 0.5
        dx = (xs % 1.0) - 0.5
        on = dy * dy + dx * dx < (0.22 * look.duty + 0.05)
    else:  # block: a band across the chest
        band = (np.arange(h, dtype=np.float32) + phase[1]) / px_per_unit
        on = np.broadcast_to(((band > 0.27) & (band < 0.27 + 2.5 * look.period))[:, None], (h, w))
    return np.where(on[..., None], c2, c1)
