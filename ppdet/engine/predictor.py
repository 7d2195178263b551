"""Inference on image files: run the TestReader pipeline and the model, draw and save results."""

from __future__ import annotations

import glob
import os

import cv2
import numpy as np
import paddle
from tqdm import tqdm

from ppdet import build_model
from ppdet.zoo.weights import load_weights

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(infer_img: str | None = None, infer_dir: str | None = None) -> list[str]:
    """Image paths from ``--infer_img`` (one file) and/or ``--infer_dir`` (a folder, sorted)."""
    images = []
    if infer_img:
        if not os.path.isfile(infer_img):
            raise FileNotFoundError(f"--infer_img: no such file: {infer_img}")
        images.append(infer_img)
    if infer_dir:
        if not os.path.isdir(infer_dir):
            raise FileNotFoundError(f"--infer_dir: no such folder: {infer_dir}")
        found = sorted(
            p for p in glob.glob(os.path.join(infer_dir, "*")) if p.lower().endswith(IMAGE_EXTS)
        )
        if not found:
            raise FileNotFoundError(
                f"--infer_dir: no images ({', '.join(IMAGE_EXTS)}) in {infer_dir}"
            )
        images.extend(found)
    if not images:
        raise FileNotFoundError("no input images: pass --infer_img FILE or --infer_dir FOLDER")
    return images


class Predictor:
    """A model in eval mode with strictly loaded weights and the config's test pipeline."""

    def __init__(self, cfg: dict, weights: str, model: paddle.nn.Layer | None = None) -> None:
        self.cfg = cfg
        self.model = model if model is not None else build_model(cfg)
        if weights:
            load_weights(self.model, weights, strict=True)
        self.model.eval()

    def predict(self, images: list[str]) -> tuple[list[dict], list[str]]:
        """Detections per image: ``[{"im_file", "im_id", "bbox": [n, 6]}]`` and the label list.

        When the model returns ``mask`` ([N, H_max, W_max], see ``Detector.postprocess``) each
        entry also has ``"mask"``: uint8 [n, H, W] in the image's original size.
        """
        from ppdet.data.loader import build_dataset, build_loader
        from ppdet.evaluation.coco_eval import split_masks
        from ppdet.modeling.postprocess import original_size

        dataset = build_dataset(self.cfg, "test")
        dataset.set_images(images)
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
        return results, list(dataset.label_list)


def save_visualizations(
    results: list[dict], label_list: list[str], output_dir: str, threshold: float
) -> list[str]:
    """Write ``<output_dir>/<image name>`` with boxes (and masks, if any) drawn; returns the
    written paths."""
    from ppdet.atomic_io import atomic_path
    from ppdet.visualize import draw_detections

    os.makedirs(output_dir, exist_ok=True)
    written = []
    for result in results:
        image = cv2.imread(result["im_file"], cv2.IMREAD_COLOR)
        if image is None:
            continue
        drawn = draw_detections(
            image, np.asarray(result["bbox"]), label_list, threshold, result.get("mask")
        )
        name = os.path.basename(result["im_file"])
        path = os.path.join(output_dir, name)
        ext = os.path.splitext(name)[1] or ".jpg"
        ok, encoded = cv2.imencode(ext, drawn)
        if not ok:
            continue
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(encoded.tobytes())
        written.append(path)
    return written
