"""What a picture of shapes shows, told by simple geometry: the yardstick's classifier (numpy only).

1. Background: the per-channel median of the 2-pixel border ring.
2. Objects: pixels farther than 60 (RGB distance, 0-255 scale) from the background, split into 4-connected
   components; components under 30 pixels are dropped as specks. Count = the components left.
3. Colour of an object: the per-channel median of its pixels, named as the nearest palette colour (RGB distance).
4. Shape of an object, from its pixel set (area A, centroid, R = farthest pixel centre from the centroid + 0.5,
   solidity = A / area of the convex hull of the pixels' corners):
   solidity < 0.75 → star; else fill = A / (π R²) > 0.79 → circle, > 0.53 → square, else triangle.
   On 600 drawn scenes: circle fill 0.87-0.97, square 0.59-0.71, triangle 0.39-0.48 (solidity 0.84-0.95),
   star solidity 0.56-0.63; every colour, shape, count, background and place right.
A prompt's colour is right when the largest object has its colour, its shape likewise, its count when the number of
objects equals it; position when the largest object's centre lies in the named place (a third of the image for
corners and sides, the middle third for "in the center"). Tests/FluxModelTests/DemoQualityTests.swift
does the same in Swift.

Outlined (the demo LoRA's style, scenes.py's outlined=True), added beside the above without changing it:
5. hole = of an object's filled area (its pixels plus every pixel its outer contour encloses: not reachable from the
   image border through pixels outside the object, 4-connected), the fraction that is background-coloured (not
   foreground) yet enclosed. A filled shape gives 0, a ring much more. outlined = hole > OUTLINE_HOLE.
   filled_shape = step 4 on the filled area (the shape an outline draws). `python classify.py` checks both on
   drawn scenes, outlined and filled (OUTLINE_HOLE chosen from that run: see `validate_outlined`).
"""
import numpy as np

from scenes import PALETTE

NAMES = list(PALETTE)
RGB = np.array([PALETTE[n] for n in NAMES], np.float64)
FOREGROUND = 60.0
MIN_AREA = 30
STAR_SOLIDITY = 0.75
CIRCLE_FILL = 0.79
SQUARE_FILL = 0.53
OUTLINE_HOLE = 0.04


def nearest_color(rgb):
    return NAMES[int(np.argmin(((RGB - np.asarray(rgb, np.float64)) ** 2).sum(1)))]


def components(mask):
    """4-connected components of a boolean (H,W) mask → list of (ys, xs) index arrays, largest first."""
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        label = len(out) + 1
        labels[y0, x0] = label
        stack, ys, xs = [(y0, x0)], [], []
        while stack:
            y, x = stack.pop()
            ys.append(y)
            xs.append(x)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = label
                    stack.append((ny, nx))
        out.append((np.array(ys), np.array(xs)))
    return sorted(out, key=lambda c: -len(c[0]))


def hull_area(points):
    """Area of the convex hull of (N,2) points (Andrew's monotone chain)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def half(seq):
        chain = []
        for p in seq:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    hull = half(pts)[:-1] + half(reversed(pts))[:-1]
    x = np.array([p[0] for p in hull], np.float64)
    y = np.array([p[1] for p in hull], np.float64)
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def shape_of(ys, xs):
    area = len(ys)
    cy, cx = ys.mean(), xs.mean()
    radius = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2).max() + 0.5
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    solidity = area / max(hull_area(corners), 1.0)
    fill = area / (np.pi * radius ** 2)
    if solidity < STAR_SOLIDITY:
        return "star", fill, solidity
    if fill > CIRCLE_FILL:
        return "circle", fill, solidity
    return ("square" if fill > SQUARE_FILL else "triangle"), fill, solidity


def enclosed(inside):
    """(H,W) bool: the pixels outside `inside` that cannot reach the border through pixels outside it (4-connected)."""
    free = ~inside
    reach = np.zeros_like(free)
    reach[0], reach[-1], reach[:, 0], reach[:, -1] = free[0], free[-1], free[:, 0], free[:, -1]
    while True:
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= free
        if (grown == reach).all():
            return free & ~reach
        reach = grown


def outline_of(ys, xs, foreground):
    """(hole fraction, filled_shape) of one object (pixel indices) given the image's foreground mask."""
    inside = np.zeros(foreground.shape, bool)
    inside[ys, xs] = True
    holes = enclosed(inside)
    hole = (holes & ~foreground).sum() / (len(ys) + holes.sum())
    fy, fx = np.nonzero(inside | holes)
    return float(hole), shape_of(fy, fx)[0]


def analyse(image):
    """(H,W,3) uint8 → {"background", "objects": [{"color", "shape", "area", "x", "y", "fill", "solidity", "hole",
    "outlined", "filled_shape"}]} (x, y: centre as fractions of the side; objects largest first)."""
    img = image.astype(np.float64)
    h, w, _ = img.shape
    ring = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3), img[:, :2].reshape(-1, 3),
                           img[:, -2:].reshape(-1, 3)])
    background = np.median(ring, 0)
    mask = np.sqrt(((img - background) ** 2).sum(-1)) > FOREGROUND
    objects = []
    for ys, xs in components(mask):
        if len(ys) < MIN_AREA:
            break
        shape, fill, solidity = shape_of(ys, xs)
        hole, filled_shape = outline_of(ys, xs, mask)
        objects.append({"color": nearest_color(np.median(img[ys, xs], 0)), "shape": shape, "area": len(ys),
                        "x": (xs.mean() + 0.5) / w, "y": (ys.mean() + 0.5) / h, "fill": fill, "solidity": solidity,
                        "hole": hole, "outlined": hole > OUTLINE_HOLE, "filled_shape": filled_shape})
    return {"background": nearest_color(background), "objects": objects}


def in_place(place, x, y):
    lo, hi = 1 / 3, 2 / 3
    return {"in the top left corner": x < lo and y < lo, "in the top right corner": x > hi and y < lo,
            "in the bottom left corner": x < lo and y > hi, "in the bottom right corner": x > hi and y > hi,
            "in the center": lo < x < hi and lo < y < hi, "at the top": y < lo, "at the bottom": y > hi,
            "on the left": x < lo, "on the right": x > hi}[place]


def score(image, attributes):
    """Adherence of one image to its prompt's attributes (count, size, color, shape, place, background)."""
    count, _size, color, shape, place, background = attributes
    seen = analyse(image)
    objects = seen["objects"]
    first = objects[0] if objects else None
    return {"color": bool(first and first["color"] == color), "shape": bool(first and first["shape"] == shape),
            "count": len(objects) == count, "background": seen["background"] == background,
            "place": None if place is None else bool(first and in_place(place, first["x"], first["y"])),
            "outlined": bool(first and first["outlined"]), "filled_shape": bool(first and first["filled_shape"] == shape),
            "seen": seen}


def validate_outlined(n=300, seed=4):
    """Drawn scenes n outlined and the same n filled (scenes.scene(seed, i[, outlined=True])): accuracy of
    `outlined`, the hole fractions per shape and size, and filled_shape right on the outlined ones."""
    import scenes
    out = {"n": n, "threshold": OUTLINE_HOLE}
    for outlined in (False, True):
        batch = [scenes.scene(seed, i, outlined=outlined) for i in range(n)]
        images = scenes.to_uint8(scenes.render(scenes.pack(batch)))
        holes, right, shapes, per = [], 0, 0, {}
        for s, image in zip(batch, images):
            first = analyse(image)["objects"][0]
            holes.append(first["hole"])
            right += first["outlined"] == outlined
            shapes += first["filled_shape"] == s.shape
            key = f"{s.size or 'medium'} {s.shape}"
            per.setdefault(key, []).append(first["hole"])
        name = "outlined" if outlined else "filled"
        out[name] = {"accuracy": right / n, "hole_min": min(holes), "hole_max": max(holes),
                     "filled_shape_right": shapes / n,
                     "hole_range_per_kind": {k: (round(min(v), 3), round(max(v), 3)) for k, v in sorted(per.items())}}
    return out


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(validate_outlined(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=1))
