"""The model zoo on the command line.

    python -m ppdet.zoo list [--family yolov3]        names, AP, format, status
    python -m ppdet.zoo info NAME                      one entry, and where it is cached
    python -m ppdet.zoo fetch REF [--offline]          download/extract; prints the local path
    python -m ppdet.zoo verify NAME|FILE               recompute the checksum, compare with the index
    python -m ppdet.zoo verify NAME --behaviour        re-run the weights on the sample images and
                                                       compare with their fingerprint
    python -m ppdet.zoo publish -c CFG --weights W --output_dir DIR [--name N] [--url_base U]

Every error is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

warnings.filterwarnings("ignore", message="No ccache found")


def _ap(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return "/".join(f"{value[s]:.1f}" for s in sorted(value, reverse=True))
    return f"{value:.1f}"


def _cached(entry, root: str | None) -> str | None:
    from ppdet.zoo.download import cache_path

    for url in entry.urls:
        path = cache_path(url, root)
        if os.path.isfile(path):
            return path
    return None


def cmd_list(args) -> int:
    from ppdet.zoo.index import load_index

    index = load_index(args.index)
    rows = [e for e in index if args.family in (None, e.family)]
    if not rows:
        raise _Fail(
            f"no zoo entries in family {args.family!r} (families: {', '.join(index.families())})"
        )
    header = ("name", "family", "schedule", "dataset", "box AP", "mask AP", "format", "status")
    table = [header]
    for e in rows:
        status = "planned" if e.planned else ("cached" if _cached(e, args.root) else "")
        table.append(
            (
                e.name,
                e.family,
                e.schedule or "-",
                e.dataset,
                _ap(e.metrics.get("box_ap")),
                _ap(e.metrics.get("mask_ap")),
                e.format,
                status,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_info(args) -> int:
    import yaml

    from ppdet.zoo.index import entry_to_dict, load_index

    entry = load_index(args.index).require(args.name)
    print(
        yaml.safe_dump(entry_to_dict(entry), sort_keys=False, allow_unicode=True, width=100), end=""
    )
    cached = _cached(entry, args.root)
    print(f"cached: {cached or 'no (python -m ppdet.zoo fetch ' + entry.name + ')'}")
    return 0


def cmd_fetch(args) -> int:
    from ppdet.zoo.fetch import fetch

    offline = True if args.offline else None
    print(
        fetch(args.ref, offline=offline, root=args.root, progress=not args.quiet, index=args.index)
    )
    return 0


def cmd_verify(args) -> int:
    if args.behaviour:
        return _verify_behaviour(args)
    from ppdet.zoo.download import file_sums
    from ppdet.zoo.index import load_index

    index = load_index(args.index)
    entry = index.get(args.ref)
    if entry is not None:
        path = _cached(entry, args.root)
        if path is None:
            raise _Fail(f"{entry.name} is not downloaded: python -m ppdet.zoo fetch {entry.name}")
        candidates = [entry]
    else:
        path = os.path.expanduser(args.ref)
        if not os.path.isfile(path):
            close = index.suggest(args.ref)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise _Fail(f"{args.ref!r} is neither a zoo name nor a file{hint}")
        candidates = list(index)
    sums = file_sums(path)
    for e in candidates:
        for algo in ("sha256", "md5"):
            if getattr(e, algo) and getattr(e, algo) == sums[algo]:
                print(f"ok: {path} matches {e.name} ({algo} {sums[algo]})")
                return 0
    if entry is None:  # a file: is it a known file with the wrong content?
        base = os.path.basename(path)
        named = [e for e in candidates if any(u.rsplit("/", 1)[-1] == base for u in e.urls)]
        candidates = [e for e in named if e.sha256 or e.md5]
        if not candidates:
            raise _Fail(
                f"cannot verify {path}: no index entry records its checksum (sha256 {sums['sha256']})"
            )
    e = candidates[0]
    if not (e.sha256 or e.md5):
        raise _Fail(
            f"cannot verify {e.name}: the index records no checksum (sha256 of {path} is {sums['sha256']})"
        )
    algo = "sha256" if e.sha256 else "md5"
    raise _Fail(
        f"checksum mismatch: {path} has {algo} {sums[algo]}, the index says {getattr(e, algo)} for {e.name}; "
        "delete the file and fetch it again"
    )


def _verify_behaviour(args) -> int:
    from ppdet.zoo.fingerprint import verify_entry

    drift, checked = verify_entry(
        args.ref,
        index=args.index,
        root=args.root,
        score_tol=args.score_tol,
        box_tol=args.box_tol,
        progress=not args.quiet,
    )
    tol = f"score within {args.score_tol:g}, box sides within {args.box_tol:g} px"
    if not drift:
        print(f"ok: {args.ref} gives its {checked} recorded detections on the samples ({tol})")
        return 0
    for line in drift:
        print(f"drift: {line}")
    raise _Fail(
        f"{args.ref} drifted from its behaviour fingerprint: {len(drift)} difference"
        f"{'s' if len(drift) > 1 else ''} beyond tolerance ({tol}); first: {drift[0]}"
    )


def cmd_publish(args) -> int:
    from ppdet.zoo.publish import publish

    publish(
        args.config,
        args.weights,
        args.output_dir,
        name=args.name,
        url_base=args.url_base,
        index_path=args.index,
        model_zoo_md=args.model_zoo_md,
        overrides=args.opt,
        dataset=args.dataset,
        label_list=args.label_list,
        update=not args.no_index,
        fingerprint=not args.no_fingerprint,
    )
    return 0


class _Fail(Exception):
    """A one-line command failure."""


def build_parser() -> argparse.ArgumentParser:
    from ppdet.zoo.fingerprint import BOX_TOL, SCORE_TOL

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--index", default=None, help="zoo index file (default: ppdet/zoo/models.yml)"
    )
    common.add_argument(
        "--root", default=None, help="cache root (default: $PPDET_HOME or ~/.cache/ppdet)"
    )
    parser = argparse.ArgumentParser(prog="python -m ppdet.zoo", description="The ppdet model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the zoo", parents=[common])
    p.add_argument("--family", default=None, help="e.g. yolov3, faster_rcnn, backbone")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("info", help="show one entry", parents=[common])
    p.add_argument("name")
    p.set_defaults(run=cmd_info)
    p = sub.add_parser(
        "fetch", help="download (and extract) weights; print the local path", parents=[common]
    )
    p.add_argument("ref", help="zoo name, URL, ppdet://path or local path")
    p.add_argument(
        "--offline", action="store_true", help="use the cache only (also: PPDET_OFFLINE=1)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_fetch)
    p = sub.add_parser(
        "verify", help="recompute a checksum and compare it with the index", parents=[common]
    )
    p.add_argument("ref", help="zoo name (its cached download) or a file")
    p.add_argument(
        "--behaviour",
        action="store_true",
        help="fetch NAME, run it on the bundled sample images and compare the detections with "
        "its fingerprint",
    )
    p.add_argument(
        "--score_tol",
        type=float,
        default=SCORE_TOL,
        help=f"allowed score difference (default {SCORE_TOL:g})",
    )
    p.add_argument(
        "--box_tol",
        type=float,
        default=BOX_TOL,
        help=f"allowed shift of a box side in pixels (default {BOX_TOL:g})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_verify)
    p = sub.add_parser(
        "publish", help="pack a trained model as <name>.tar.gz and index it", parents=[common]
    )
    add_publish_args(p)
    p.set_defaults(run=cmd_publish)
    return parser


def add_publish_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="the config the model was trained with")
    p.add_argument(
        "-o",
        "--opt",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides, e.g. weights=output/x/model_final",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="checkpoint (.pdparams file or prefix); default: the config's weights",
    )
    p.add_argument(
        "--output_dir", "--output-dir", default="output/published", help="where the tarball goes"
    )
    p.add_argument("--name", default=None, help="zoo name (default: the config file name)")
    p.add_argument(
        "--url_base", "--url-base", default=None, help="where the tarball will be served"
    )
    p.add_argument(
        "--model_zoo_md", "--model-zoo-md", default=None, help="MODEL_ZOO.md to regenerate"
    )
    p.add_argument(
        "--dataset", default=None, help="dataset name for the index (default: EvalDataset folder)"
    )
    p.add_argument(
        "--label_list",
        "--label-list",
        default=None,
        help="class names file (default: from EvalDataset)",
    )
    p.add_argument("--no_index", "--no-index", action="store_true", help="only write the tarball")
    p.add_argument(
        "--no_fingerprint",
        "--no-fingerprint",
        action="store_true",
        help="do not compute the behaviour fingerprint on the sample images",
    )


def main(argv: list[str] | None = None) -> int:
    from ppdet.config import ConfigError
    from ppdet.data.errors import DataError
    from ppdet.zoo.archive import ArchiveError
    from ppdet.zoo.download import DownloadError
    from ppdet.zoo.fetch import FetchError
    from ppdet.zoo.fingerprint import FingerprintError
    from ppdet.zoo.index import ZooIndexError
    from ppdet.zoo.legacy import LegacyError
    from ppdet.zoo.publish import PublishError
    from ppdet.zoo.weights import WeightsError

    args = build_parser().parse_args(argv)
    errors = (
        _Fail,
        ZooIndexError,
        DownloadError,
        ArchiveError,
        LegacyError,
        PublishError,
        ConfigError,
        WeightsError,
        DataError,
        FingerprintError,
        FetchError,
        FileNotFoundError,
    )
    try:
        return args.run(args)
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
