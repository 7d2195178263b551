"""Inference on image files: run the TestReader pipeline and the model, draw and save results.

No dataset is needed: the class names come from ``ppdet.data.labels.resolve_labels`` (the
weights, their zoo entry, an annotation file if present, the config's dataset kind, else
``class_<id>``), and images that cannot be read are skipped with one warning each.
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import paddle
from tqdm import tqdm

from ppdet import build_model
from ppdet.data.errors import DataNotFoundError, ImageDecodeError
from ppdet.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_EXTS, list_image_files, read_image
from ppdet.data.labels import Labels, resolve_labels
from ppdet.zoo.weights import load_weights

logger = logging.getLogger(__name__)

ENCODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # cv2.imencode formats


def list_images(infer_img: str | None = None, infer_dir: str | None = None) -> list[str]:
    """Image paths from ``--infer_img`` (one file) and/or ``--infer_dir`` (a folder: its entries
    named like images, ``image_io.IMAGE_EXTS``, in name order). DataNotFoundError if there are
    none; files that turn out unreadable are skipped later, one warning each."""
    images = []
    if infer_img:
        if not os.path.lexists(infer_img):
            raise DataNotFoundError(f"--infer_img: no such file: {infer_img}")
        images.append(infer_img)
    if infer_dir:
        if not os.path.isdir(infer_dir):
            raise DataNotFoundError(f"--infer_dir: no such folder: {infer_dir}")
        found = list_image_files(infer_dir)
        if not found:
            raise DataNotFoundError(
                f"--infer_dir: no images ({', '.join(IMAGE_EXTS)}) in {infer_dir}"
            )
        images.extend(found)
    if not images:
        raise DataNotFoundError("no input images: pass --infer_img FILE or --infer_dir FOLDER")
    return images


class Predictor:
    """A model in eval mode with strictly loaded weights, the config's test pipeline and the
    class names that go with the weights.

    Args:
        cfg: the loaded config (``TestReader``; ``TestDataset`` optional, default ImageFolder).
        weights: a path, URL or zoo name ("" when ``model`` already holds its weights).
        model: a built model to use instead of building one from ``cfg``.
    Attributes:
        labels: ``Labels`` (names in class-id order and where they came from).
        max_pixels: the pixel limit of the TestReader's ``Decode`` (for drawing the results).
        skipped: after ``predict``, the images that could not be read.
    """

    def __init__(self, cfg: dict, weights: str, model: paddle.nn.Layer | None = None) -> None:
        self.cfg = cfg
        self.model = model if model is not None else build_model(cfg)
        weights_path = None
        if weights:
            weights_path = load_weights(self.model, weights, strict=True).path
        self.model.eval()
        self.labels: Labels = resolve_labels(cfg, weights or None, weights_path)
        if self.labels.names:
            logger.info("class names: %s", self.labels.source)
        self.max_pixels = _decode_limit(cfg)
        self.skipped: list[str] = []

    def predict(self, images: list[str]) -> tuple[list[dict], list[str]]:
        """Detections for the image files ``images`` (e.g. from ``list_images``), one entry per
        readable image: ``[{"im_file", "im_id", "bbox": [n, 6]}]`` (class,
        score, x1, y1, x2, y2 in pixels of the image as shown: EXIF rotation applied) and the
        label list. Unreadable images are left out (``self.skipped``).

        When the model returns ``mask`` ([N, H_max, W_max], see ``Detector.postprocess``) each
        entry also has ``"mask"``: uint8 [n, H, W] in the image's original size.
        """
        from ppdet.data.datasets import ImageFolder
        from ppdet.data.loader import build_dataset, build_loader
        from ppdet.evaluation.coco_eval import split_masks
        from ppdet.modeling.postprocess import original_size

        has_section = self.cfg.get("TestDataset") is not None
        dataset = build_dataset(self.cfg, "test") if has_section else ImageFolder()
        dataset.set_mode("test")
        dataset.set_files(images)
        loader = build_loader(self.cfg, "test", dataset)
        id_to_file = {int(r["im_id"][0]): r["im_file"] for r in dataset.records}
        results = []
        with paddle.no_grad():
            for batch in tqdm(loader, desc="infer", unit="batch", leave=False):
                out = self.model.predict(batch)
                bbox = out["bbox"].numpy().reshape(-1, 6)
                counts = out["bbox_num"].numpy().reshape(-1)
                masks = None
                if out.get("mask") is not None:
                    sizes = original_size(batch["im_shape"], batch["scale_factor"])
                    masks = split_masks(out["mask"], counts, sizes)
                start = 0
                for b, (im_id, n) in enumerate(zip(batch["im_id"].numpy().reshape(-1), counts)):
                    rows = bbox[start : start + int(n)]
                    start += int(n)
                    result = {"im_file": id_to_file[int(im_id)], "im_id": int(im_id), "bbox": rows}
                    if masks is not None:
                        result["mask"] = masks[b]
                    results.append(result)
        self.skipped = list(loader.skipped_in_pass)
        return results, list(self.labels.names)


def _decode_limit(cfg: dict) -> int:
    from ppdet.config.readers import reader_spec

    for op in reader_spec(cfg, "TestReader").sample_transforms:
        if op.name == "Decode":
            return int(op.kwargs.get("max_pixels", DEFAULT_MAX_PIXELS))
    return DEFAULT_MAX_PIXELS


def save_visualizations(
    results: list[dict],
    label_list: list[str],
    output_dir: str,
    threshold: float,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[str]:
    """Write ``<output_dir>/<image name>`` with boxes (and masks, if any) drawn on the image as
    shown (EXIF rotation applied, like the boxes); returns the written paths. An image whose
    format OpenCV cannot write (e.g. GIF) is written as ``<image name>.png``."""
    from ppdet.atomic_io import atomic_path
    from ppdet.visualize import draw_detections

    os.makedirs(output_dir, exist_ok=True)
    written = []
    for result in results:
        try:
            image = read_image(result["im_file"], max_pixels)
        except ImageDecodeError as e:  # changed since it was read for the model
            logger.warning("%s; not drawn", e)
            continue
        drawn = draw_detections(
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            np.asarray(result["bbox"]),
            label_list,
            threshold,
            result.get("mask"),
        )
        name = os.path.basename(result["im_file"])
        ext = os.path.splitext(name)[1].lower()
        if ext not in ENCODABLE:
            name, ext = f"{name}.png", ".png"
        ok, encoded = cv2.imencode(ext, drawn)
        if not ok:
            logger.warning("%s: cannot encode the drawn image as %s; not written", name, ext)
            continue
        path = os.path.join(output_dir, name)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(encoded.tobytes())
        written.append(path)
    return written
