"""Download Pascal VOC 2007 + 2012 and write the lists ppdet's VOCDataSet reads.

    python dataset/voc/download_voc.py                 # into dataset/voc

Result (what configs/datasets/voc.yml reads)::

    dataset/voc/VOCdevkit/VOC2007/{Annotations,JPEGImages,ImageSets}/...  2007 trainval + test
    dataset/voc/VOCdevkit/VOC2012/{Annotations,JPEGImages,ImageSets}/...  2012 trainval
    dataset/voc/trainval.txt     "<image> <xml>" per line: VOC2007 trainval, then VOC2012 trainval
    dataset/voc/test.txt         the same for VOC2007 test
    dataset/voc/label_list.txt   the 20 class names, class id = line index

(PaddleDetection's "07+12" layout; list paths are relative to dataset/voc.) Archives come from
the official host (host.robots.ox.ac.uk, then thor.robots.ox.ac.uk; pjreddie.com's copy as a
last mirror) through the model zoo's downloader: cached under $PPDET_HOME (``--cache``),
resumed after an interruption, checked against the published md5 and size, extracted with
every member checked. Re-running skips what is done; the archives (about 2.9 GB) are deleted
after unpacking unless ``--keep_archives``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

warnings.filterwarnings("ignore", message="No ccache found")  # Paddle's, on import
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ppdet.atomic_io import atomic_write_text  # noqa: E402
from ppdet.data.datasets.voc import VOC_CLASSES  # noqa: E402
from ppdet.zoo.archive import ArchiveError  # noqa: E402
from ppdet.zoo.datasets import DatasetArchive, fetch_archive  # noqa: E402
from ppdet.zoo.download import DownloadError  # noqa: E402


def _archive(year: str, name: str, md5: str, size: int, image_set: str) -> DatasetArchive:
    urls = (
        f"http://host.robots.ox.ac.uk/pascal/VOC/voc{year}/{name}",
        f"https://thor.robots.ox.ac.uk/pascal/VOC/voc{year}/{name}",
        f"https://pjreddie.com/media/files/{name}",
    )
    provides = (f"VOCdevkit/VOC{year}/ImageSets/Main/{image_set}.txt",)
    return DatasetArchive(name, urls, md5, size, provides)


# md5 and byte sizes as published for the official files (torchvision's and PaddleDetection's
# downloaders list the same md5)
SOURCES = (
    _archive("2007", "VOCtrainval_06-Nov-2007.tar", "c52e279531787c972589f7e41ab4ae64", 460032000, "trainval"),
    _archive("2007", "VOCtest_06-Nov-2007.tar", "b6e924de25625d8de591ea690078ad9f", 451020800, "test"),
    _archive("2012", "VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd", 1999639040, "trainval"),
)  # fmt: skip

# (list file we write, [(year, image set)]) in this order
LISTS = (
    ("trainval.txt", (("2007", "trainval"), ("2012", "trainval"))),
    ("test.txt", (("2007", "test"),)),
)


def write_lists(out: str) -> dict[str, int]:
    """Write trainval.txt, test.txt ("<image> <xml>" relative to ``out``) and label_list.txt
    from the VOCdevkit image sets; return the number of lines of each list."""
    counts = {}
    for list_name, sets in LISTS:
        lines = []
        for year, image_set in sets:
            ids_file = os.path.join(
                out, "VOCdevkit", f"VOC{year}", "ImageSets", "Main", f"{image_set}.txt"
            )
            with open(ids_file, encoding="utf-8") as f:
                ids = [line.split()[0] for line in f if line.strip()]
            folder = f"VOCdevkit/VOC{year}"
            lines += [f"{folder}/JPEGImages/{i}.jpg {folder}/Annotations/{i}.xml" for i in ids]
        atomic_write_text(os.path.join(out, list_name), "".join(f"{line}\n" for line in lines))
        counts[list_name] = len(lines)
    atomic_write_text(os.path.join(out, "label_list.txt"), "".join(f"{c}\n" for c in VOC_CLASSES))
    return counts


def download_voc(
    out: str,
    *,
    sources: tuple[DatasetArchive, ...] | None = None,
    cache: str | None = None,
    keep_archives: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Fetch VOC 2007 trainval + test and 2012 trainval into ``out`` and write the lists."""
    for item in sources or SOURCES:
        fetch_archive(item, out, root=cache, keep_archive=keep_archives, progress=progress)
    return write_lists(out)


def main(argv: list[str] | None = None, sources: tuple[DatasetArchive, ...] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download Pascal VOC 2007+2012 for ppdet.")
    parser.add_argument("--out", default=os.path.join("dataset", "voc"), help="dataset folder")
    parser.add_argument("--cache", default=None, help="download cache root (default $PPDET_HOME)")
    parser.add_argument(
        "--keep_archives", action="store_true", help="keep the downloaded archives in the cache"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        counts = download_voc(
            args.out,
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
    sizes = ", ".join(f"{name} {n} images" for name, n in counts.items())
    print(f"Pascal VOC 07+12 is in {args.out}: {sizes}, label_list.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
