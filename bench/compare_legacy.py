"""Compare our v0.1 configs + converted v0.1 tarballs with PaddleDetection v0.1 itself.

The reference is the legacy oracle (PaddleDetection v0.1 on fluid 1.8.5, run by its own
harness outside this repository): per model ``<model>.tar`` (a genuine v0.1 checkpoint with
seeded, calibrated weights) and ``<model>.npz`` (v0.1's network inputs and outputs on three
photos, plus intermediate tensors). For every model found in ``--oracle-dir`` this script

1. converts the tarball with ``ppdet.zoo.legacy.convert`` and loads it strictly into the
   model of our v0.1 config (``configs/<model>.yml``; see ``CASES``);
2. feeds v0.1's own network input (``<p>/image``; ``im_info`` / ``im_size`` / ``im_shape``
   mapped to our ``im_shape`` / ``scale_factor``, see ``network_input``) and matches our
   detections with v0.1's: same label, IoU >= 0.99, |score difference| <= 1e-3 (``match``);
3. compares the intermediate tensors the npz holds (``rois``, ``nms_in.*``, ``det_in.*``)
   with ours, captured by forward hooks, to localise a difference;
4. also runs our config's TestReader on the photo and reports how far its input is from
   v0.1's and how many detections still match (``--no-pipeline`` skips this).

It prints one table and writes it into BENCHMARK.md between its own markers:

    MKL_DEBUG_CPU_TYPE=5 python bench/compare_legacy.py --oracle-dir /path/to/oracle/out

Target per architecture: >= 98 % of v0.1's detections matched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from legacy_diagnosis import (  # noqa: E402
    RcnnDiagnosis,
    RetinaDiagnosis,
    compare_intermediates,
    run_model,
    ssd_relu_extra_blocks,
    to_numpy,
)
from legacy_match import (  # noqa: E402
    IOU_MIN,
    SCORE_TOL,
    MatchResult,
    match,
    network_input,
    photo_stems,
    reference_detections,
)

MARK_BEGIN = "<!-- legacy:begin -->"
MARK_END = "<!-- legacy:end -->"


TARGET = 0.98


# ---------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One v0.1 model: its family (input mapping, intermediates), our v0.1 config, and the
    closest 2.x config plus overrides used while the v0.1 config does not exist yet."""

    family: str  # yolov3 | ssd | rcnn | retinanet
    config: str
    fallback: str
    overrides: tuple[str, ...] = ()


_YOLO_FALLBACK = ("BBoxPostProcess.decode.conf_thresh=0.01",)
CASES: dict[str, Case] = {
    "yolov3_darknet": Case(
        "yolov3",
        "configs/yolov3_darknet.yml",
        "configs/yolov3/yolov3_darknet53_270e_coco.yml",
        _YOLO_FALLBACK,
    ),
    "yolov3_mobilenet_v1": Case(
        "yolov3",
        "configs/yolov3_mobilenet_v1.yml",
        "configs/yolov3/yolov3_mobilenet_v1_270e_coco.yml",
        _YOLO_FALLBACK,
    ),
    "yolov3_r34": Case(
        "yolov3",
        "configs/yolov3_r34.yml",
        "configs/yolov3/yolov3_r34_270e_coco.yml",
        _YOLO_FALLBACK,
    ),
    "ssd_mobilenet_v1_voc": Case(
        "ssd",
        "configs/ssd/ssd_mobilenet_v1_voc.yml",
        "configs/ssd/ssd_mobilenet_v1_300_120e_voc.yml",
        ("SSDHead.anchor_generator.clip=false",),
    ),
    "faster_rcnn_r50_1x": Case(
        "rcnn", "configs/faster_rcnn_r50_1x.yml", "configs/faster_rcnn/faster_rcnn_r50_1x_coco.yml"
    ),
    "faster_rcnn_r50_vd_1x": Case(
        "rcnn",
        "configs/faster_rcnn_r50_vd_1x.yml",
        "configs/faster_rcnn/faster_rcnn_r50_vd_1x_coco.yml",
    ),
    "faster_rcnn_r50_fpn_1x": Case(
        "rcnn",
        "configs/faster_rcnn_r50_fpn_1x.yml",
        "configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yml",
    ),
    "faster_rcnn_x101_vd_64x4d_fpn_1x": Case(
        "rcnn",
        "configs/faster_rcnn_x101_vd_64x4d_fpn_1x.yml",
        "configs/faster_rcnn/faster_rcnn_x101_vd_64x4d_fpn_1x_coco.yml",
    ),
    "faster_rcnn_se154_vd_fpn_s1x": Case(
        "rcnn", "configs/faster_rcnn_se154_vd_fpn_s1x.yml", "", ()
    ),
    "mask_rcnn_r50_1x": Case(
        "rcnn", "configs/mask_rcnn_r50_1x.yml", "configs/mask_rcnn/mask_rcnn_r50_1x_coco.yml"
    ),
    "mask_rcnn_r50_fpn_1x": Case(
        "rcnn",
        "configs/mask_rcnn_r50_fpn_1x.yml",
        "configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml",
    ),
    "cascade_rcnn_r50_fpn_1x": Case(
        "rcnn",
        "configs/cascade_rcnn_r50_fpn_1x.yml",
        "configs/cascade_rcnn/cascade_rcnn_r50_fpn_1x_coco.yml",
    ),
    "retinanet_r50_fpn_1x": Case(
        "retinanet",
        "configs/retinanet_r50_fpn_1x.yml",
        "configs/retinanet/retinanet_r50_fpn_1x_coco.yml",
        ("FPN.use_c5=true",),
    ),
}


def config_for(model: str) -> tuple[str, tuple[str, ...]]:
    """(config path, overrides): the v0.1 config when it exists, else the 2.x fallback."""
    case = CASES[model]
    if (REPO / case.config).is_file():
        return case.config, ()
    if not case.fallback:
        raise FileNotFoundError(f"{case.config} does not exist and {model} has no 2.x config")
    return case.fallback, case.overrides


# ---------------------------------------------------------------- running


def build(model_key: str, tar: str):
    """(model with the converted tarball loaded strictly, config path, overrides, report)."""
    import ppdet
    from ppdet.zoo.legacy import convert
    from ppdet.zoo.weights import load_state_dict

    config, overrides = config_for(model_key)
    cfg = ppdet.load_config(str(REPO / config), list(overrides))
    model = ppdet.build_model(cfg)
    state, report = convert(tar, model=model_key)
    load_state_dict(model, state, tar, strict=True, quiet=True)
    model.eval()
    return model, cfg, config, overrides, report


def pipeline_inputs(cfg: dict, photos: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Our TestReader's batch for each photo: {stem: {image, im_shape, scale_factor}}."""
    from ppdet.data.loader import build_dataset, build_loader

    cfg = dict(cfg, TestDataset={**cfg["TestDataset"], "anno_path": None})  # no label file needed
    dataset = build_dataset(cfg, "test")
    dataset.set_images(photos)
    loader = build_loader(cfg, "test", dataset)
    files = {int(r["im_id"][0]): r["im_file"] for r in dataset.records}
    out = {}
    for batch in loader:
        for b, im_id in enumerate(to_numpy(batch["im_id"]).reshape(-1)):
            stem = os.path.splitext(os.path.basename(files[int(im_id)]))[0]
            out[stem] = {
                k: to_numpy(batch[k])[b : b + 1] for k in ("image", "im_shape", "scale_factor")
            }
    return out


def input_diff(ref: dict, ours: dict) -> float:
    """max |difference| of the two network inputs over their common area (inf if the sizes
    differ by more than padding)."""
    a, b = ref["image"], ours["image"]
    h, w = min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3])
    if abs(a.shape[2] - b.shape[2]) > 127 or abs(a.shape[3] - b.shape[3]) > 127:
        return float("inf")
    return float(np.abs(a[:, :, :h, :w] - b[:, :, :h, :w]).max())


@dataclasses.dataclass
class Row:
    model: str
    family: str
    config: str
    result: MatchResult
    per_photo: dict
    intermediates: dict
    pipeline: MatchResult | None = None
    input_diff: float | None = None
    seconds: float = 0.0
    diagnosis: dict = dataclasses.field(default_factory=dict)  # replays (R-CNN): name -> text
    ablation: dict = dataclasses.field(default_factory=dict)  # behaviour left out -> result

    @property
    def share(self) -> float:
        return self.result.matched / max(self.result.reference, 1)


def compare_model(
    model_key: str, oracle: Path, images: Path | None, ablate: bool = False, replay: bool = True
) -> Row:
    tic = time.perf_counter()
    family = CASES[model_key].family
    tar, npz = oracle / f"{model_key}.tar", oracle / f"{model_key}.npz"
    model, cfg, config, overrides, _ = build(model_key, str(tar))
    z = np.load(npz)
    meta = json.loads(str(z["meta"]))
    stems = photo_stems(z)
    total = MatchResult(0, 0, 0)
    per_photo, inter = {}, {}
    diag = retina = None
    if family == "rcnn":
        from ppdet.zoo.legacy import LEGACY_MODELS

        behaviour = LEGACY_MODELS[model_key].behaviour
        diag = RcnnDiagnosis(model, "fpn" in model_key, meta["nms"], ablate, behaviour, replay)
    if family == "retinanet":
        retina = RetinaDiagnosis(meta)
    for p in stems:
        net = network_input(family, z, p)
        if diag:
            diag.reset()
        ours, seen = run_model(model, net)
        res = match(reference_detections(family, z, p), ours)
        total = total + res
        per_photo[p] = res
        inter[p] = compare_intermediates(family, z, p, seen, net)
        if diag:
            diag.photo(z, p, net, seen.get("output"))
        if retina:
            retina.photo(z, p, seen)
        print(
            f"  {model_key} {p}: {res.matched}/{res.reference} matched (ours {res.ours}); "
            + "; ".join(f"{k} {v}" for k, v in inter[p].items()),
            flush=True,
        )
    row = Row(
        model_key, family, config + "".join(f" -o {o}" for o in overrides), total, per_photo, inter
    )
    if diag:
        diag.close()
        row.diagnosis, row.ablation = diag.summary(), diag.ablation
    if retina:
        row.diagnosis = retina.summary()
    if family == "ssd":
        row.diagnosis = ssd_relu_extra_blocks(model, z, stems)
    if row.diagnosis:
        for k, v in row.diagnosis.items():
            print(f"  {model_key} {k}: {v}", flush=True)
    if images is not None:
        files = [str(images / str(n)) for n in z["images"]]
        ours_in = pipeline_inputs(cfg, files)
        pipe = MatchResult(0, 0, 0)
        worst = 0.0
        for p in stems:
            ref_in = network_input(family, z, p)
            worst = max(worst, input_diff(ref_in, ours_in[p]))
            det, _ = run_model(model, ours_in[p])
            pipe = pipe + match(reference_detections(family, z, p), det)
        row.pipeline, row.input_diff = pipe, worst
        print(
            f"  {model_key} our pipeline: input max|d| {worst:.3g}, "
            f"{pipe.matched}/{pipe.reference} matched",
            flush=True,
        )
    row.seconds = time.perf_counter() - tic
    return row


# ---------------------------------------------------------------- report


def record(r: Row) -> dict:
    """A row as plain JSON data (the results store of ``--json``)."""
    return {
        "model": r.model,
        "family": r.family,
        "config": r.config,
        "result": dataclasses.asdict(r.result),
        "per_photo": {p: dataclasses.asdict(v) for p, v in r.per_photo.items()},
        "intermediates": r.intermediates,
        "pipeline": dataclasses.asdict(r.pipeline) if r.pipeline else None,
        "input_diff": r.input_diff,
        "diagnosis": r.diagnosis,
        "ablation": {k: dataclasses.asdict(v) for k, v in r.ablation.items()},
        "seconds": round(r.seconds, 1),
    }


def _replayed(r: dict) -> str:
    """The end-to-end result of the family's fluid-era replay, if the record has one."""
    for key in ("both stages replayed", "the same replay on our head outputs"):
        if key in r["diagnosis"]:
            return r["diagnosis"][key]
    relu = [v for k, v in r["diagnosis"].items() if k.startswith("extra blocks with ReLU")]
    return relu[0] + " (ReLU extra blocks)" if relu else "-"


def _share(res: dict) -> float:
    return res["matched"] / max(res["reference"], 1)


def table(records: list[dict]) -> list[str]:
    """The BENCHMARK.md section body: results, then where the differences are."""
    lines = [
        "| model | config | v0.1 detections | matched | share | our rows | our TestReader vs "
        "v0.1's input (max abs diff) | target | fluid-era replay on our tensors |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in records:
        res = r["result"]
        diff = "-" if r["input_diff"] is None else f"{r['input_diff']:.2g}"
        ok = "pass" if _share(res) >= TARGET else "fail"
        lines.append(
            f"| {r['model']} | `{r['config']}` | {res['reference']} | {res['matched']} | "
            f"{100 * _share(res):.1f}% | {res['ours']} | {diff} | {ok} | {_replayed(r)} |"
        )
    lines += [
        "",
        "Where they differ: our intermediate tensors against the npz's (first photo), and "
        "replays that recompute a stage the fluid way from our model's own tensors "
        "(`bench/legacy_replay.py`):",
        "",
        "| model | ours vs v0.1 (first photo) | fluid-era replays on our tensors |",
        "|---|---|---|",
    ]
    for r in records:
        first = next(iter(r["intermediates"].values()), {})
        inter = "; ".join(f"{k}: {v}" for k, v in first.items()) or "-"
        diag = "; ".join(f"{k}: {v}" for k, v in r["diagnosis"].items()) or "-"
        lines.append(f"| {r['model']} | {inter} | {diag} |".replace("|d|", "\\|d\\|"))
    ablated = [r for r in records if r["ablation"]]
    if ablated:
        keys = list(ablated[0]["ablation"])
        lines += [
            "",
            "R-CNN second stage on v0.1's own proposals, fluid-era replay with ONE behaviour "
            "put back to the 2.x way (`--ablate`): v0.1 detections still matched.",
            "",
            "| behaviour left out | " + " | ".join(r["model"] for r in ablated) + " |",
            "|---|" + "---:|" * len(ablated),
        ]
        for key in keys:
            cells = []
            for r in ablated:
                v = r["ablation"].get(key)
                cells.append(f"{v['matched']}/{v['reference']}" if v else "-")
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def write_section(path: str, text: str) -> None:
    """Replace (or append) this script's section of BENCHMARK.md, atomically."""
    from ppdet.atomic_io import atomic_write_text

    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    section = f"{MARK_BEGIN}\n{text.rstrip()}\n{MARK_END}"
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        new = head + section + rest.split(MARK_END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    atomic_write_text(path, new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--oracle-dir",
        default=os.environ.get("LEGACY_PEER_OUT", ""),
        help="folder with <model>.tar/.npz from the v0.1 oracle ($LEGACY_PEER_OUT)",
    )
    parser.add_argument("--images", default="", help="the photos (default: <oracle-dir>/../images)")
    parser.add_argument("--models", nargs="*", help=f"subset of: {', '.join(CASES)}")
    parser.add_argument("--no-pipeline", action="store_true", help="skip our TestReader run")
    parser.add_argument(
        "--ablate", action="store_true", help="R-CNN: replay stage 2 without each behaviour"
    )
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help="R-CNN: skip the fluid-era replays (they re-run the box head; masks still compared)",
    )
    parser.add_argument(
        "--json", default="", help="results store: read, updated with the models run, written"
    )
    parser.add_argument("--out", default=str(REPO / "BENCHMARK.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--render", action="store_true", help="run nothing: write the table of the --json store"
    )
    args = parser.parse_args()
    if args.render:
        if not args.json or not os.path.isfile(args.json):
            parser.error("--render needs --json, the results store of earlier runs")
        return report(args, [])
    if not args.oracle_dir or not os.path.isdir(args.oracle_dir):
        parser.error("--oracle-dir: the folder holding the oracle's <model>.tar and <model>.npz")
    oracle = Path(args.oracle_dir)
    images = None
    if not args.no_pipeline:
        images = Path(args.images) if args.images else oracle.parent / "images"
        if not images.is_dir():
            parser.error(f"--images: no such folder {images} (or pass --no-pipeline)")

    import paddle

    paddle.set_device("cpu")
    wanted = args.models or list(CASES)
    for m in wanted:
        if m not in CASES:
            parser.error(f"unknown model {m}; one of {', '.join(CASES)}")
    present = [
        m for m in wanted if (oracle / f"{m}.tar").is_file() and (oracle / f"{m}.npz").is_file()
    ]
    rows = []
    for m in present:
        print(f"{m}:", flush=True)
        rows.append(compare_model(m, oracle, images, args.ablate, not args.no_replay))
    return report(args, rows)


def report(args: argparse.Namespace, rows: list[Row]) -> int:
    """Merge ``rows`` into the ``--json`` store, print the table, write BENCHMARK.md."""
    records = {}
    if args.json and os.path.isfile(args.json):
        records = {r["model"]: r for r in json.loads(Path(args.json).read_text())}
    records.update({r.model: record(r) for r in rows})
    if args.json:
        from ppdet.atomic_io import atomic_write_text

        atomic_write_text(args.json, json.dumps(list(records.values()), indent=1))
    ordered = [records[m] for m in CASES if m in records]
    lines = table(ordered)
    print("\n".join(lines))
    if not args.no_write:
        command = (
            "MKL_DEBUG_CPU_TYPE=5 python bench/compare_legacy.py --oracle-dir <oracle out> "
            "--json <results.json> [--models ...] [--ablate]; then --json <results.json> --render"
        )
        text = [
            "## PaddleDetection v0.1 checkpoints: our configs vs v0.1 itself",
            "",
            f"`{command}` (models run one set at a time, collected in the json). The reference is "
            "PaddleDetection v0.1 (release/0.1) on fluid 1.8.5 with seeded, calibrated random "
            "weights saved as genuine v0.1 tarballs, and v0.1's own detections on 3 photos "
            "(astronaut, chelsea, coffee). Each tarball is converted by `ppdet.zoo.legacy`, "
            "loaded strictly into the model of the config shown and fed v0.1's own network "
            "input. A v0.1 detection is matched by one of ours with the same label, IoU >= "
            f"{IOU_MIN} and |score difference| <= {SCORE_TOL}. Target: >= {TARGET:.0%} "
            "matched. Random weights make scores hypersensitive: our TestReader's input is "
            "shown as its largest difference from v0.1's (OpenCV 5 vs 4.1 interpolations differ "
            "by one grey level on a few percent of pixels, enough to move random-weight "
            "detections).",
            "",
            *lines,
        ]
        write_section(args.out, "\n".join(text))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
