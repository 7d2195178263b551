"""Download COCO 2017 detection (images and annotations) into PaddleDetection's layout.

    python dataset/coco/download_coco.py                       # everything into dataset/coco
    python dataset/coco/download_coco.py --parts val annotations   # enough to evaluate (~1 GB)

Result (what configs/datasets/coco_detection.yml reads)::

    dataset/coco/train2017/*.jpg        118287 images  (train2017.zip, 18 GB)
    dataset/coco/val2017/*.jpg          5000 images    (val2017.zip, 778 MB)
    dataset/coco/annotations/instances_{train,val}2017.json, ...  (annotations_trainval2017.zip)

Archives come from the official site (images.cocodataset.org; the S3 bucket behind it as a
second mirror) through the model zoo's downloader: cached under $PPDET_HOME (``--cache``),
resumed after an interruption, checked against the md5 and size published for them, and
extracted with every member checked (no absolute paths, ``..`` or links). Re-running skips
what is done. Needs free space for an archive and its contents at once (about 2x 19 GB for
train2017); the archive is deleted after unpacking unless ``--keep_archives``.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ppdet.zoo.archive import ArchiveError  # noqa: E402
from ppdet.zoo.datasets import DatasetArchive, fetch_archive  # noqa: E402
from ppdet.zoo.download import DownloadError  # noqa: E402

_MIRRORS = ("http://images.cocodataset.org/", "https://s3.amazonaws.com/images.cocodataset.org/")


def _archive(path: str, md5: str, size: int, provides: tuple[str, ...]) -> DatasetArchive:
    name = path.rsplit("/", 1)[-1]
    return DatasetArchive(name, tuple(m + path for m in _MIRRORS), md5, size, provides)


# md5 and byte sizes as published for the official files (PaddleDetection's downloader and
# other public scripts list the same values)
SOURCES = {
    "train": _archive("zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2", 19336861798, ("train2017",)),
    "val": _archive("zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80", 815585330, ("val2017",)),
    "annotations": _archive(
        "annotations/annotations_trainval2017.zip",
        "f4bbac642086de4f52a3fdda2de5fa2c",
        252907541,
        ("annotations/instances_train2017.json", "annotations/instances_val2017.json"),
    ),
}  # fmt: skip


def download_coco(
    out: str,
    parts=("train", "val", "annotations"),
    *,
    sources: dict[str, DatasetArchive] | None = None,
    cache: str | None = None,
    keep_archives: bool = False,
    progress: bool = True,
) -> str:
    """Fetch the named ``parts`` of COCO 2017 into ``out``; return ``out``."""
    sources = sources or SOURCES
    for part in parts:
        fetch_archive(sources[part], out, root=cache, keep_archive=keep_archives, progress=progress)
    return out


def main(argv: list[str] | None = None, sources: dict[str, DatasetArchive] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download COCO 2017 detection.")
    parser.add_argument("--out", default=os.path.join("dataset", "coco"), help="dataset folder")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=sorted(SOURCES),
        default=["train", "val", "annotations"],
        help="what to fetch (default: all)",
    )
    parser.add_argument("--cache", default=None, help="download cache root (default $PPDET_HOME)")
    parser.add_argument(
        "--keep_archives", action="store_true", help="keep the downloaded archives in the cache"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        out = download_coco(
            args.out,
            args.parts,
            sources=sources,
            cache=args.cache,
            keep_archives=args.keep_archives,
            progress=not args.quiet,
        )
    except (DownloadError, ArchiveError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (run again to resume)", file=sys.stderr)
        return 130
    print(f"COCO 2017 ({', '.join(args.parts)}) is in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
