"""Captioned pictures of coloured shapes, drawn procedurally: the demo model's whole training set.

A scene is 1-3 objects of one shape and one colour (circle, square, triangle, star; 12 named colours), of one size
class, at random non-overlapping places or, for a single object, in a named place ("in the top left corner"), on a
white or coloured background. Its caption comes from one of several templates ("a red circle", "two blue squares on
a white background", "a small green triangle in the top left corner", "a picture of three pink stars", ...).
Everything follows from (seed, index): `scene(seed, i)` is the same scene on every machine, and `render` draws a batch
of scenes with torch on any device (signed distances, one pixel of anti-aliasing).

The OUTLINED style (for the demo LoRA, train_lora.py): the same scenes with every object drawn as a ring, the band
of width `outline_width(radius)` just inside the shape's edge (from the same signed distances), and "outlined" in the
caption before the colour ("an outlined red circle", "two small outlined blue squares on a white background").
`scene(seed, i, outlined=True)` is scene i with the same attributes, layout and colours, drawn and captioned so; the
default (outlined=False) draws and captions exactly what it always did.

Run as a program to look at some:  python scenes.py --seed 1 --count 16 --out /tmp/scenes [--outlined]
"""
import argparse
import math
import pathlib
import random
from dataclasses import dataclass

import numpy as np
import torch

# Named colours (sRGB 0-255). The evaluator classifies a colour as the nearest of these.
PALETTE = {
    "red": (215, 35, 35), "orange": (245, 135, 20), "yellow": (240, 210, 30), "green": (40, 160, 60),
    "blue": (35, 75, 215), "purple": (130, 55, 185), "pink": (240, 120, 180), "brown": (125, 75, 35),
    "black": (25, 25, 25), "white": (245, 245, 245), "gray": (128, 128, 128), "cyan": (40, 195, 210),
}
COLORS = list(PALETTE)
SHAPES = ["circle", "square", "triangle", "star"]
# Nominal radius (fraction of the image side) of each size class; "" is the unnamed middle size.
SIZES = {"small": (0.065, 0.09), "": (0.11, 0.145), "large": (0.19, 0.24)}
SIZE_WORDS = {"small": ["small", "small", "tiny"], "": [""], "large": ["large", "large", "big"]}
# Radius of the circle that holds each shape, per unit of nominal radius (used to keep objects apart and inside).
EXTENT = {"circle": 1.0, "square": 1.2, "triangle": 1.25, "star": 1.3}
# Named places for a single object: (x range, y range) of its centre, y downwards, before fitting its extent.
PLACES = {
    "in the top left corner": ((0.0, 0.3), (0.0, 0.3)), "in the top right corner": ((0.7, 1.0), (0.0, 0.3)),
    "in the bottom left corner": ((0.0, 0.3), (0.7, 1.0)), "in the bottom right corner": ((0.7, 1.0), (0.7, 1.0)),
    "in the center": ((0.44, 0.56), (0.44, 0.56)), "at the top": ((0.4, 0.6), (0.0, 0.22)),
    "at the bottom": ((0.4, 0.6), (0.78, 1.0)), "on the left": ((0.0, 0.22), (0.4, 0.6)),
    "on the right": ((0.78, 1.0), (0.4, 0.6)),
}
PLACE_WORDS = {"in the center": ["in the center", "in the middle"]}
COUNT_WORDS = {1: ["a", "one", "a single"], 2: ["two", "two", "a pair of"], 3: ["three"]}
PREFIXES = ["a picture of ", "an image of ", "a drawing of ", "a photo of "]
MARGIN = 0.02          # between an object's extent and the border or another object
MIN_CONTRAST = 140.0   # least RGB distance between an object's colour and the background's
JITTER = 10            # ± per channel, uniform, on every drawn colour
MAX_OBJECTS = 3
OUTLINE_WORD = "outlined"
# Ring width of an outlined object, a fraction of the side: 0.3 of its nominal radius, kept within 2.8-4.5 pixels at
# 128 (wide enough for the ×8 autoencoder to keep the hole).
OUTLINE_WIDTH = (0.3, 0.022, 0.035)


def outline_width(radius):
    factor, low, high = OUTLINE_WIDTH
    return min(high, max(low, factor * radius))


@dataclass
class Scene:
    """What a caption says (the attributes) and where exactly things are (the layout)."""
    count: int
    size: str            # "small", "" or "large"
    color: str
    shape: str
    place: str | None    # a key of PLACES, only for a single object
    background: str      # a colour name; "white" is the plain background
    caption: str
    centers: list        # [(x, y)], fractions of the side, y downwards
    radius: float        # nominal radius, fraction of the side
    rotation: float      # radians, shared by the objects
    rgb: tuple           # the object colour drawn, jittered
    bg_rgb: tuple        # the background colour drawn, jittered
    outlined: bool = False  # drawn as rings (the outlined style), "outlined" in the caption

    def attributes(self):
        return (self.count, self.size, self.color, self.shape, self.place, self.background)


def contrast(a, b):
    return math.dist(PALETTE[a], PALETTE[b])


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def describe(count, size, color, shape, place, background, mention_plain, rng=None, outlined=False):
    """The caption of a scene; with `rng`, a random template, else the plain one (the evaluator's prompts).
    `outlined` puts OUTLINE_WORD before the colour and draws nothing more from `rng`."""
    pick = (lambda xs: rng.choice(xs)) if rng else (lambda xs: xs[0])
    adjectives = " ".join(w for w in [pick(SIZE_WORDS[size]), OUTLINE_WORD if outlined else "", color] if w)
    noun = shape + ("s" if count > 1 else "")
    number = pick(COUNT_WORDS[count])
    if number == "a":
        number = article(adjectives)
    thing = f"{number} {adjectives} {noun}"
    where = f" {pick(PLACE_WORDS.get(place, [place]))}" if place else ""
    ground = f" on {article(background)} {background} background" if background != "white" or mention_plain else ""
    if rng is None:
        return thing + where + ground
    style = rng.random()
    if style < 0.12 and ground:  # the background first
        return f"{article(background)} {background} background with {thing}{where}"
    prefix = rng.choice(PREFIXES) if style > 0.75 else ""
    return prefix + thing + where + ground


def sample_attributes(rng):
    count = rng.choices([1, 2, 3], weights=[0.4, 0.3, 0.3])[0]
    size = rng.choice(["small", "", "large"] if count < 3 else ["small", ""])
    shape = rng.choice(SHAPES)
    place = rng.choice(list(PLACES)) if count == 1 and rng.random() < 0.45 else None
    if place and place.endswith("corner") and size == "large":
        size = rng.choice(["small", ""])
    background = "white" if rng.random() < 0.5 else rng.choice(COLORS)
    color = rng.choice([c for c in COLORS if contrast(c, background) >= MIN_CONTRAST])
    return count, size, color, shape, place, background


def layout(rng, count, size, shape, place):
    """Centres and radius for the objects, or None when they did not fit after some tries."""
    radius = rng.uniform(*SIZES[size])
    reach = radius * EXTENT[shape] + MARGIN
    for _ in range(50):
        centers = []
        for _ in range(count):
            (x0, x1), (y0, y1) = PLACES[place] if place else ((0.0, 1.0), (0.0, 1.0))
            x0, y0 = max(x0, reach), max(y0, reach)
            x1, y1 = min(x1, 1 - reach), min(y1, 1 - reach)
            x, y = rng.uniform(x0, max(x0, x1)), rng.uniform(y0, max(y0, y1))
            if all(math.dist((x, y), c) >= 2 * reach for c in centers):
                centers.append((x, y))
        if len(centers) == count:
            return centers, radius
    return None


def jitter(rng, rgb):
    return tuple(min(255, max(0, v + rng.randint(-JITTER, JITTER))) for v in rgb)


def scene(seed, index, exclude=frozenset(), outlined=False):
    """Scene `index` of the set `seed`; attribute tuples in `exclude` (the held-out prompts) are never drawn.
    `outlined`: the same scene (attributes, layout, colours) in the outlined style."""
    rng = random.Random(seed * 1_000_003 + index)
    while True:
        attrs = sample_attributes(rng)
        if attrs in exclude:
            continue
        count, size, color, shape, place, background = attrs
        placed = layout(rng, count, size, shape, place)
        if placed is None:
            continue
        centers, radius = placed
        caption = describe(*attrs, mention_plain=rng.random() < 0.3, rng=rng, outlined=outlined)
        rotation = rng.uniform(-0.25, 0.25)
        return Scene(count, size, color, shape, place, background, caption, centers, radius, rotation,
                     jitter(rng, PALETTE[color]), jitter(rng, PALETTE[background]), outlined)


def heldout_prompts(n=96, seed=777):
    """The evaluator's prompts: plain-template captions of attribute tuples that training never draws."""
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        attrs = sample_attributes(rng)
        if attrs in seen:
            continue
        seen.add(attrs)
        # Mention a plain background in a third of them, as users do now and then.
        out.append((describe(*attrs, mention_plain=len(out) % 3 == 2), attrs))
    return out


def heldout_outlined(n=96, seed=777):
    """The held-out prompts in the outlined style: the same attribute tuples and templates, "outlined" added."""
    return [(describe(*attrs, mention_plain=i % 3 == 2, outlined=True), attrs)
            for i, (_, attrs) in enumerate(heldout_prompts(n, seed))]


def heldout_attributes():
    return frozenset(a for _, a in heldout_prompts())


# ---- drawing -------------------------------------------------------------------------------------------------------

def pack(scenes):
    """Scene list → tensors for `render`: bg (B,3), rgb (B,K,3) in 0…1, shape id, x, y, radius, rotation,
    active (B,K), K = MAX_OBJECTS; and, only when some scene is outlined, outline (B,K): ring width (0: filled)."""
    b = len(scenes)
    out = {"bg": np.zeros((b, 3), np.float32), "rgb": np.zeros((b, MAX_OBJECTS, 3), np.float32),
           "shape": np.zeros((b, MAX_OBJECTS), np.int64), "x": np.zeros((b, MAX_OBJECTS), np.float32),
           "y": np.zeros((b, MAX_OBJECTS), np.float32), "radius": np.zeros((b, MAX_OBJECTS), np.float32),
           "rotation": np.zeros((b, MAX_OBJECTS), np.float32), "active": np.zeros((b, MAX_OBJECTS), np.float32)}
    for i, s in enumerate(scenes):
        out["bg"][i] = np.array(s.bg_rgb) / 255
        for k, (x, y) in enumerate(s.centers):
            out["rgb"][i, k] = np.array(s.rgb) / 255
            out["shape"][i, k] = SHAPES.index(s.shape)
            out["x"][i, k], out["y"][i, k] = x, y
            out["radius"][i, k], out["rotation"][i, k], out["active"][i, k] = s.radius, s.rotation, 1
    if any(s.outlined for s in scenes):
        out["outline"] = np.array([[outline_width(s.radius) if s.outlined else 0.0] * MAX_OBJECTS for s in scenes],
                                  np.float32)
    return {k: torch.from_numpy(v) for k, v in out.items()}


def random_params(b, generator, device, shape_weights=None):
    """Captionless scenes for the autoencoder, drawn fast on `device`: 0-3 objects of any of the shapes (uniformly, or
    in proportion to `shape_weights`, one per entry of SHAPES), palette or random colours, overlaps allowed, sizes
    from tiny to large; same keys as `pack`."""
    def u(*shape):
        return torch.rand(*shape, generator=generator, device=device)
    palette = torch.tensor([PALETTE[c] for c in COLORS], device=device, dtype=torch.float32) / 255

    def colors(*shape):
        named = palette[torch.randint(len(COLORS), shape, generator=generator, device=device)]
        named = (named + (u(*shape, 3) - 0.5) * (2 * JITTER / 255)).clamp(0, 1)
        return torch.where(u(*shape, 1) < 0.2, u(*shape, 3), named)
    k = MAX_OBJECTS
    weights = torch.tensor(shape_weights or [1.0] * len(SHAPES), device=device, dtype=torch.float32)
    shapes = torch.multinomial(weights, b * k, replacement=True, generator=generator).view(b, k)
    radius = 0.05 + 0.2 * u(b, k) ** 1.5
    return {"bg": torch.where(u(b, 1) < 0.4, palette[COLORS.index("white")].expand(b, 3), colors(b)),
            "rgb": colors(b, k), "shape": shapes,
            "x": radius + (1 - 2 * radius) * u(b, k), "y": radius + (1 - 2 * radius) * u(b, k), "radius": radius,
            "rotation": (u(b, k) - 0.5) * 0.6,
            "active": (u(b, k) < torch.tensor([0.9, 0.55, 0.4], device=device)).float()}


def polygon_distance(px, py, vx, vy):
    """Signed distance to a simple polygon (negative inside): the nearest edge segment, signed by the crossing
    number. px, py: (B,H,W); vx, vy: (B,n) vertices in order around the polygon."""
    ax, ay = vx[:, None, None, :], vy[:, None, None, :]
    bx, by = torch.roll(vx, -1, 1)[:, None, None, :], torch.roll(vy, -1, 1)[:, None, None, :]
    qx, qy = px[..., None] - ax, py[..., None] - ay
    ex, ey = bx - ax, by - ay
    t = ((qx * ex + qy * ey) / (ex * ex + ey * ey).clamp_min(1e-12)).clamp(0, 1)
    distance = torch.sqrt((qx - t * ex) ** 2 + (qy - t * ey) ** 2).amin(-1)
    crosses = ((ay > py[..., None]) != (by > py[..., None])) & \
        (px[..., None] < ex * (py[..., None] - ay) / torch.where(ey == 0, torch.ones_like(ey), ey) + ax)
    inside = crosses.sum(-1) % 2 == 1
    return torch.where(inside, -distance, distance)


def regular(cx, cy, r, rotation, n, offset):
    """Vertices (B,n) of a regular polygon; the first at angle offset + rotation (y downwards: -π/2 points up)."""
    k = torch.arange(n, device=cx.device, dtype=cx.dtype)
    angle = offset + rotation[:, None] + 2 * math.pi * k[None] / n
    return cx[:, None] + r[:, None] * torch.cos(angle), cy[:, None] + r[:, None] * torch.sin(angle)


def shape_distance(shape, px, py, cx, cy, r, rotation):
    """(B,H,W) signed distance to one shape kind for every scene in the batch (all drawn as that kind)."""
    up = -math.pi / 2
    if shape == "circle":
        return torch.sqrt((px - cx[:, None, None]) ** 2 + (py - cy[:, None, None]) ** 2) - r[:, None, None]
    if shape == "square":  # half side 0.85 r
        return polygon_distance(px, py, *regular(cx, cy, 0.85 * math.sqrt(2) * r, rotation, 4, math.pi / 4))
    if shape == "triangle":  # circumradius 1.25 r, a vertex up
        return polygon_distance(px, py, *regular(cx, cy, 1.25 * r, rotation, 3, up))
    # Star: five points at radius 1.3 r, the inner corners at 0.45 of that, alternating.
    outer_x, outer_y = regular(cx, cy, 1.3 * r, rotation, 5, up)
    inner_x, inner_y = regular(cx, cy, 0.45 * 1.3 * r, rotation, 5, up + math.pi / 5)
    vx = torch.stack([outer_x, inner_x], 2).reshape(-1, 10)
    vy = torch.stack([outer_y, inner_y], 2).reshape(-1, 10)
    return polygon_distance(px, py, vx, vy)


def render(params, size=128):
    """Packed scenes → images (B,3,size,size) in -1…1 (the VAE's range), on the device of `params`."""
    bg = params["bg"]
    b, device = bg.shape[0], bg.device
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    px, py = px.expand(b, size, size), py.expand(b, size, size)
    image = bg[:, :, None, None].expand(b, 3, size, size).clone()
    for k in range(MAX_OBJECTS):
        distance = torch.full((b, size, size), 1.0, device=device)
        for s, name in enumerate(SHAPES):
            rows = params["shape"][:, k] == s
            if rows.any():
                distance[rows] = shape_distance(name, px[rows], py[rows], params["x"][rows, k],
                                                params["y"][rows, k], params["radius"][rows, k],
                                                params["rotation"][rows, k])
        if "outline" in params:  # a ring: the band -width < distance < 0 just inside the edge
            width = params["outline"][:, k, None, None]
            distance = torch.where(width > 0, (distance + width / 2).abs() - width / 2, distance)
        alpha = ((0.5 - distance * size).clamp(0, 1) * params["active"][:, k, None, None])[:, None]
        image = image * (1 - alpha) + params["rgb"][:, k, :, None, None] * alpha
    return image * 2 - 1


def to_uint8(images):
    """(B,3,H,W) in -1…1 → (B,H,W,3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--outlined", action="store_true", help="the outlined style")
    args = parser.parse_args()
    from PIL import Image
    args.out.mkdir(parents=True, exist_ok=True)
    exclude = heldout_attributes()
    scenes = [scene(args.seed, i, exclude, outlined=args.outlined) for i in range(args.count)]
    images = to_uint8(render(pack(scenes), args.size))
    lines = []
    for i, (s, image) in enumerate(zip(scenes, images)):
        Image.fromarray(image).save(args.out / f"{i:04d}.png")
        lines.append(f"{i:04d}.png\t{s.caption}")
    (args.out / "captions.tsv").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(scenes)} scenes to {args.out}")


if __name__ == "__main__":
    main()
