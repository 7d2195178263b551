"""Class names: the built-in COCO / VOC lists, label files, and where inference takes its names.

Inference needs only a model and images, no dataset. ``resolve_labels`` picks the class names
(class id order) from the first source that has them, with as many names as ``num_classes``:

1. the weights: ``label_list.txt`` in a published model folder (or beside the weights file,
   e.g. inside an extracted tarball);
2. the weights' zoo entry: its ``dataset`` (coco, voc) selects a built-in list;
3. the config's annotation file (``TestDataset.anno_path``: a COCO json or a label list),
   when it exists;
4. the config's dataset kind: ``metric: COCO`` with 80 classes is COCO, ``metric: VOC`` with 20
   classes is Pascal VOC (built-in lists);
5. otherwise ``class_0``, ``class_1``, ... with one warning.

A source with the wrong number of names is passed over with a warning (the model would be
labelled wrongly). The annotation file comes before the config's dataset kind, so a custom
dataset with 20 or 80 classes keeps its own names.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from ppdet.data.errors import DataNotFoundError, DatasetError

logger = logging.getLogger(__name__)

LABEL_FILE = "label_list.txt"  # one class name per line, as in published models and VOC sets

# The 80 COCO 2017 detection categories in class-id order, and their COCO category ids.
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
_COCO_UNUSED_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}  # ids 1-90 without a category
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in _COCO_UNUSED_IDS)

# The 20 Pascal VOC classes in class-id order.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

BUILTIN = {"coco": COCO_CLASSES, "voc": VOC_CLASSES}  # zoo ``dataset`` / metric -> names


def read_label_list(path: str) -> list[str]:
    """Class names from a label list file, one per non-empty line."""
    if not os.path.isfile(path):
        raise DataNotFoundError(f"label list not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_label_file(path: str) -> list[str]:
    """Class names from a COCO json (categories in ascending id order) or a label list."""
    if path.lower().endswith(".json"):
        from ppdet.data.datasets.coco import coco_categories, load_coco_json

        return coco_categories(load_coco_json(path), path)[2]
    return read_label_list(path)


@dataclasses.dataclass(frozen=True)
class Labels:
    """Class names in class-id order and where they came from (for the log line)."""

    names: tuple[str, ...]
    source: str


def placeholder_labels(num_classes: int) -> Labels:
    return Labels(tuple(f"class_{i}" for i in range(num_classes)), "placeholders")


def _weights_folder(weights_path: str | None) -> str | None:
    if not weights_path:
        return None
    return weights_path if os.path.isdir(weights_path) else os.path.dirname(weights_path)


def _zoo_dataset(weights_ref: str | None, index: Any = None) -> tuple[str, str] | None:
    """(zoo entry name, its dataset) for a zoo name or a URL listed in the zoo index."""
    if not weights_ref:
        return None
    from ppdet.zoo.fetch import expand_url, is_url
    from ppdet.zoo.index import ZooIndex, ZooIndexError, load_index

    try:
        zoo = index if isinstance(index, ZooIndex) else load_index(index)
    except ZooIndexError as e:
        logger.warning("class names: the zoo index is unreadable (%s)", e)
        return None
    entry = zoo.by_url(expand_url(weights_ref)) if is_url(weights_ref) else zoo.get(weights_ref)
    return (entry.name, entry.dataset) if entry is not None else None


def _annotation_file(cfg: dict) -> str | None:
    """The full path of ``TestDataset.anno_path`` (relative to its ``dataset_dir``)."""
    section = cfg.get("TestDataset")
    if not isinstance(section, dict) or not section.get("anno_path"):
        return None
    return os.path.join(str(section.get("dataset_dir") or ""), str(section["anno_path"]))


def _config_dataset(cfg: dict) -> str | None:
    metric = str(cfg.get("metric") or "").lower()
    return metric if metric in BUILTIN else None


def _candidates(cfg: dict, weights_ref: str | None, weights_path: str | None, index: Any):
    """(names or None, source) in the order of the module docstring, lazily."""
    folder = _weights_folder(weights_path)
    if folder is not None:
        path = os.path.join(folder, LABEL_FILE)
        if os.path.isfile(path):
            yield read_label_list(path), path
    zoo = _zoo_dataset(weights_ref, index)
    if zoo is not None and zoo[1] in BUILTIN:
        yield BUILTIN[zoo[1]], f"zoo entry {zoo[0]} (dataset: {zoo[1]})"
    anno = _annotation_file(cfg)
    if anno is not None and os.path.isfile(anno):
        try:
            yield read_label_file(anno), anno
        except (DatasetError, OSError) as e:
            logger.warning("class names: cannot use %s (%s)", anno, e)
    kind = _config_dataset(cfg)
    if kind is not None and cfg.get("num_classes") == len(BUILTIN[kind]):
        yield BUILTIN[kind], f"built-in {kind.upper()} list (metric: {cfg.get('metric')})"


def resolve_labels(
    cfg: dict,
    weights_ref: str | None = None,
    weights_path: str | None = None,
    index: Any = None,
) -> Labels:
    """The class names for a model of ``cfg`` with the weights ``weights_ref`` (as the user gave
    them: path, URL or zoo name), found locally at ``weights_path`` (file or folder).

    ``index``: the zoo index (path or object) for the zoo lookup; default the package's.
    Never raises for a missing source: the last resort is ``class_<id>`` (with one warning).
    """
    num_classes = cfg.get("num_classes")
    for names, source in _candidates(cfg, weights_ref, weights_path, index):
        if num_classes is None or len(names) == num_classes:
            return Labels(tuple(names), source)
        logger.warning(
            "class names: %s has %d names but the model has num_classes %d; not used",
            source,
            len(names),
            num_classes,
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        return Labels((), "none")
    logger.warning(
        "class names: none found (no %s with the weights, no annotation file, no COCO/VOC "
        "metric with a matching num_classes); detections are labelled class_0 .. class_%d",
        LABEL_FILE,
        num_classes - 1,
    )
    return placeholder_labels(num_classes)
