"""Data pipeline: datasets -> sample transforms -> batch transforms -> paddle DataLoader.

Importing ``ppdet.data`` registers every dataset and transform class.
"""

from . import datasets, transforms
from .errors import DataError, DataNotFoundError, DataPipelineError, DatasetError, ImageDecodeError
from .loader import build_dataset, build_loader, require_annotations, set_loader_epoch

__all__ = [
    "DataError",
    "DataNotFoundError",
    "DataPipelineError",
    "DatasetError",
    "ImageDecodeError",
    "build_dataset",
    "build_loader",
    "require_annotations",
    "datasets",
    "set_loader_epoch",
    "transforms",
]
