"""Generate the bundled demo detection set: coloured shapes on busy backgrounds.

    python dataset/generate_demo.py --out dataset/demo [--train 400 --val 80 --samples 6 --seed 0]

Writes the same images in two layouts, plus a few unannotated images for inference:

    <out>/coco/train/*.jpg, coco/val/*.jpg, coco/annotations/instances_{train,val}.json
    <out>/voc/JPEGImages/*.jpg, voc/Annotations/*.xml, voc/ImageSets/Main/{train,val}.txt,
    <out>/voc/label_list.txt
    <out>/samples/*.jpg

Classes (COCO category id): circle (1), square (3), triangle (7), cross (10): the ids are not
contiguous on purpose. Boxes are the exact pixel extent of each drawn shape, in integers:
COCO [x, y, w, h] = VOC (xmin, ymin, xmax - xmin, ymax - ymin). Some val images hold a
cluster of tiny circles annotated as one ``iscrowd`` box; VOC marks those, and shapes under
24 px, ``difficult``. The COCO view also has each shape's outline as ``segmentation``
polygons (continuous pixel coordinates: the drawn vertices' pixel centres; a circle as a
32-gon; a cross as its two bars) and the crowd's exact mask as uncompressed RLE. Each image depends only on (seed, split, index), so the output is the same
on every run. An identical existing set is kept (``--force`` remakes it); one made with other
settings is replaced. Needs only numpy and OpenCV.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from xml.sax.saxutils import escape

import cv2
import numpy as np

CLASSES = (("circle", 1), ("square", 3), ("triangle", 7), ("cross", 10))
SPLITS = {"train": 0, "val": 1, "samples": 2}
DIFFICULT_BELOW = 24  # px: shapes whose longer side is shorter than this are VOC-difficult
STAMP = ".complete.json"
VERSION = 4  # 4: texture backgrounds without OpenCV float resize (the same on every CPU)
MIN_SIZE = 20  # px: smallest shape side (smaller ones are hard for a model trained for minutes)


# ---------------------------------------------------------------- drawing
def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random saturated RGB colour (float [3], 0-255)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(110, 255)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """[n, 4] cubic convolution weights of the samples at offsets -1, 0, 1, 2 for fractional
    positions ``t`` [n] (OpenCV's bicubic kernel)."""
    d = np.abs(t[:, None] - np.arange(-1, 3)[None, :])  # [n, 4] distances
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _upsample_cubic(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """float32 [h, w]: ``grid`` [gh, gw] resized bicubically (pixel centres aligned, edges
    replicated), clipped to [0, 1] - what cv2.resize(INTER_CUBIC) does, in plain numpy on
    purpose: OpenCV's float resize takes CPU-specific SIMD paths whose last bits differ
    between CPUs, and the demo set must be the same on every machine."""

    def axis(n: int, g: int) -> tuple[np.ndarray, np.ndarray]:
        pos = (np.arange(n) + 0.5) * g / n - 0.5  # output pixel centres in grid units
        first = np.floor(pos).astype(np.int64)
        taps = np.clip(first[:, None] + np.arange(-1, 3)[None, :], 0, g - 1)  # [n, 4]
        return taps, _cubic_weights(pos - first)

    ys, wy = axis(h, grid.shape[0])
    xs, wx = axis(w, grid.shape[1])
    rows = sum(grid[ys[:, k]] * wy[:, k, None] for k in range(4))  # [h, gw], fixed order
    out = sum(rows[:, xs[:, k]] * wx[None, :, k] for k in range(4))  # [h, w]
    return np.ascontiguousarray(out.clip(0, 1), dtype=np.float32)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A float32 [h, w, 3] background: gradient, noise, blotchy texture, stripes or flat."""
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    kind = rng.choice(
        ["gradient", "noise", "texture", "stripes", "flat"], p=[0.3, 0.2, 0.25, 0.15, 0.1]
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    elif kind == "texture":
        t = _upsample_cubic(rng.uniform(0, 1, (rng.integers(3, 9), rng.integers(3, 9))), h, w)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 40)
        t = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    else:
        t = np.zeros((h, w), np.float32)
    image = c1 + t[..., None] * (c2 - c1)
    if kind == "noise":
        image = image + rng.normal(0, rng.uniform(10, 30), (h, w, 3))
    for _ in range(rng.integers(0, 4) if rng.uniform() < 0.3 else 0):  # thin clutter lines
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(image, p1, p2, rng.uniform(0, 255, 3).tolist(), 1, cv2.LINE_AA)
    return image.astype(np.float32)


def _rotate(points: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return (points - centre) @ np.array([[c, s], [-s, c]]) + centre


CIRCLE_VERTICES = 32


def _circle_polygon(cx: int, cy: int, r: int) -> np.ndarray:
    """The outline of cv2.circle((cx, cy), r) in continuous pixel coordinates, [2 * 32]."""
    t = np.arange(CIRCLE_VERTICES) * 2 * np.pi / CIRCLE_VERTICES
    return np.stack([cx + 0.5 + r * np.cos(t), cy + 0.5 + r * np.sin(t)], 1).reshape(-1)


def shape_mask(
    rng: np.random.Generator, name: str, h: int, w: int, x: int, y: int, size: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """uint8 [h, w] mask of one shape drawn inside the square (x, y, size), and its outline
    polygons (float [2K] each: x1, y1, ... in continuous pixels, i.e. drawn pixel centres)."""
    mask = np.zeros((h, w), np.uint8)
    centre = np.array([x + size / 2, y + size / 2])
    if name == "circle":
        cx, cy, r = int(centre[0]), int(centre[1]), max(size // 2, 2)
        cv2.circle(mask, (cx, cy), r, 255, -1)
        return mask, [_circle_polygon(cx, cy, r)]
    angle = rng.uniform(-0.3, 0.3)
    if name == "square":
        half = size / 2 / (abs(np.cos(angle)) + abs(np.sin(angle)))  # stays inside the square
        pts = centre + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        polys = [_rotate(pts, angle, centre)]
    elif name == "triangle":
        turn = rng.uniform(0, 2 * np.pi)
        angles = turn + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.15, 0.15, 3)
        pts = centre + size / 2 * np.stack([np.cos(angles), np.sin(angles)], 1)
        polys = [pts]
    else:  # cross: two bars
        arm = size / 2 / (abs(np.cos(angle)) + abs(np.sin(angle)))
        bar = max(arm / 3, 2)
        horizontal = centre + np.array([[-arm, -bar], [arm, -bar], [arm, bar], [-arm, bar]])
        vertical = centre + np.array([[-bar, -arm], [bar, -arm], [bar, arm], [-bar, arm]])
        polys = [_rotate(horizontal, angle, centre), _rotate(vertical, angle, centre)]
    outlines = []
    for poly in polys:  # one call each: fillPoly would XOR overlapping polygons
        vertices = np.round(poly).astype(np.int32)
        cv2.fillPoly(mask, [vertices], 255)
        outlines.append((vertices + 0.5).reshape(-1))
    return mask, outlines


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE of a binary mask [h, w]: column-major run lengths, zeros first."""
    flat = (mask.T.reshape(-1) > 0).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [len(flat)]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _extent(mask: np.ndarray) -> list[int] | None:
    """Integer box [x1, y1, x2, y2] of the mask's pixels (x2, y2 exclusive)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _overlap_ok(box: list[int], boxes: list[list[int]]) -> bool:
    """Partial overlaps only: IoU < 0.3 and no box hidden by more than half."""
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        a1 = (box[2] - box[0]) * (box[3] - box[1])
        a2 = (other[2] - other[0]) * (other[3] - other[1])
        if inter / (a1 + a2 - inter) > 0.3 or inter > 0.5 * min(a1, a2):
            return False
    return True


def _paint(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Fill the mask with a colour that stands out from the background under it."""
    under = image[mask > 0].mean(axis=0)
    colour = _colour(rng)
    for _ in range(10):
        if np.abs(colour - under).sum() > 150:
            break
        colour = _colour(rng)
    shade = 1 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, image.shape[1])  # [W], gentle
    fill = np.broadcast_to(colour[None, None, :] * shade[None, :, None], image.shape)  # [H, W, 3]
    region = mask > 0
    image[region] = fill[region]


def make_image(seed: int, split: str, index: int) -> tuple[np.ndarray, list[dict]]:
    """One RGB uint8 image and its objects [{box [x1,y1,x2,y2], class, crowd, area, segm}]
    (``segm``: COCO polygons, or uncompressed RLE for the crowd)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    h, w = (int(v) for v in rng.integers(160, 321, 2))
    if rng.uniform() < 0.25:
        w = h
    image = background(rng, h, w)
    objects: list[dict] = []
    if split == "val" and rng.uniform() < 0.12:  # a crowd: a cluster of tiny circles
        cw, ch = int(rng.integers(36, 60)), int(rng.integers(36, 60))
        x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        mask = np.zeros((h, w), np.uint8)
        for _ in range(rng.integers(5, 9)):
            r = int(rng.integers(3, 6))
            cv2.circle(
                mask,
                (int(rng.integers(x0 + r, x0 + cw - r)), int(rng.integers(y0 + r, y0 + ch - r))),
                r,
                255,
                -1,
            )
        _paint(image, mask, rng)
        box = _extent(mask)
        area = (box[2] - box[0]) * (box[3] - box[1])
        objects.append(
            {"box": box, "class": 0, "crowd": 1, "area": area, "segm": uncompressed_rle(mask)}
        )
    n_objects = 0 if rng.uniform() < 0.08 else int(rng.integers(1, 7))
    for _ in range(n_objects * 5):  # attempts
        if sum(1 - o["crowd"] for o in objects) == n_objects:
            break
        size = int(np.exp(rng.uniform(np.log(MIN_SIZE), np.log(min(120, 0.7 * min(h, w))))))
        x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
        cls = int(rng.integers(len(CLASSES)))
        mask, outlines = shape_mask(rng, CLASSES[cls][0], h, w, x, y, size)
        box = _extent(mask)
        if box is None or not _overlap_ok(box, [o["box"] for o in objects]):
            continue
        _paint(image, mask, rng)
        segm = [[round(float(v), 2) for v in poly] for poly in outlines]
        objects.append(
            {"box": box, "class": cls, "crowd": 0, "area": int((mask > 0).sum()), "segm": segm}
        )
    image += rng.normal(0, rng.uniform(0, 8), image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), objects


# ---------------------------------------------------------------- writing
def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    assert ok
    return data.tobytes()


def _write(path: str, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(
        path,
        "wb" if isinstance(data, bytes) else "w",
        encoding=None if isinstance(data, bytes) else "utf-8",
    ) as f:
        f.write(data)


def _voc_xml(file_name: str, h: int, w: int, objects: list[dict]) -> str:
    lines = [
        "<annotation>",
        "  <folder>JPEGImages</folder>",
        f"  <filename>{escape(file_name)}</filename>",
        f"  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>",
    ]
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        small = max(x2 - x1, y2 - y1) < DIFFICULT_BELOW
        lines += [
            "  <object>",
            f"    <name>{CLASSES[obj['class']][0]}</name>",
            f"    <difficult>{int(obj['crowd'] or small)}</difficult>",
            f"    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>",
            "  </object>",
        ]
    return "\n".join(lines + ["</annotation>", ""])


def _write_split(out: str, split: str, count: int, first_id: int, seed: int) -> None:
    images, annotations, ids = [], [], []
    for index in range(count):
        image, objects = make_image(seed, split, index)
        h, w = image.shape[:2]
        im_id = first_id + index
        name = f"{im_id:06d}.jpg"
        data = _jpeg(image)
        _write(os.path.join(out, "coco", split, name), data)
        _write(os.path.join(out, "voc", "JPEGImages", name), data)
        _write(
            os.path.join(out, "voc", "Annotations", f"{im_id:06d}.xml"),
            _voc_xml(name, h, w, objects),
        )
        images.append({"id": im_id, "file_name": name, "width": w, "height": h})
        for k, obj in enumerate(objects):
            x1, y1, x2, y2 = obj["box"]
            annotations.append({
                "id": im_id * 100 + k,
                "image_id": im_id,
                "category_id": CLASSES[obj["class"]][1],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": obj["area"],
                "iscrowd": obj["crowd"],
                "segmentation": obj["segm"],
            })  # fmt: skip
        ids.append(f"{im_id:06d}")
    coco = {
        "info": {"description": "ppdet demo shapes", "version": str(VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": cid, "name": name, "supercategory": "shape"} for name, cid in CLASSES
        ],
    }
    _write(os.path.join(out, "coco", "annotations", f"instances_{split}.json"), json.dumps(coco))
    _write(os.path.join(out, "voc", "ImageSets", "Main", f"{split}.txt"), "\n".join(ids) + "\n")


def generate(
    out: str,
    n_train: int = 400,
    n_val: int = 80,
    n_samples: int = 6,
    seed: int = 0,
    force: bool = False,
) -> bool:
    """Write the demo set to ``out``; returns False (and writes nothing) if the same set is
    already there. A set made with other settings is replaced (it is generated data)."""
    settings = {
        "version": VERSION,
        "train": n_train,
        "val": n_val,
        "samples": n_samples,
        "seed": seed,
    }
    stamp = os.path.join(out, STAMP)
    if os.path.isfile(stamp) and not force:
        with open(stamp, encoding="utf-8") as f:
            if json.load(f) == settings:
                return False
        print(f"{out}: was generated with other settings (or an older generator); regenerating")
    tmp = f"{out.rstrip(os.sep)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    _write_split(tmp, "train", n_train, 1, seed)
    _write_split(tmp, "val", n_val, n_train + 1, seed)
    _write(os.path.join(tmp, "voc", "label_list.txt"), "".join(f"{name}\n" for name, _ in CLASSES))
    for index in range(n_samples):
        image, _ = make_image(seed, "samples", index)
        _write(os.path.join(tmp, "samples", f"sample_{index:02d}.jpg"), _jpeg(image))
    _write(os.path.join(tmp, STAMP), json.dumps(settings))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")
    )
    parser.add_argument("--train", type=int, default=400, help="train images (default 400)")
    parser.add_argument("--val", type=int, default=80, help="val images (default 80)")
    parser.add_argument(
        "--samples", type=int, default=6, help="unannotated sample images (default 6)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    start = time.time()
    if generate(args.out, args.train, args.val, args.samples, args.seed, args.force):
        counts = f"{args.train} train, {args.val} val, {args.samples} sample images"
        print(f"wrote {counts} to {args.out} in {time.time() - start:.1f}s")
    else:
        print(f"{args.out}: already generated (use --force to regenerate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
