"""Run an exported model (tools/export_model.py) on images or a video, without the training code.

    python deploy/python/infer.py --model_dir output_inference/NAME --image_file x.jpg
    python deploy/python/infer.py --model_dir D --image_dir photos/ --threads 2 --run_benchmark
    python deploy/python/infer.py --model_dir D --video_file clip.mp4 --backend onnx
    python deploy/python/infer.py --model_dir D --image_dir photos/ --precision bf16

Images: drawn results and bbox.json go to --output_dir (as tools/infer.py writes them); images
that cannot be read are skipped with a warning. Video: the drawn frames go to
<output_dir>/<video name>.mp4. Per-stage timings (preprocess, inference, postprocess) are printed
in milliseconds per batch: the median over --repeats passes after --warmup runs with
--run_benchmark, else the median of the single pass. Exit status 0 when something was processed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppdet.engine.cli import run  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="folder written by export_model.py")
    parser.add_argument("--image_file", default=None, help="one image")
    parser.add_argument("--image_dir", default=None, help="a folder of images")
    parser.add_argument("--video_file", default=None, help="a video (read with OpenCV)")
    parser.add_argument("--backend", default="paddle", help="paddle (default) or onnx")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--device", default="auto", help="auto, cpu or gpu (paddle backend)")
    parser.add_argument("--use_tensorrt", action="store_true", help="TensorRT on GPU (paddle)")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="bf16: oneDNN bfloat16 kernels on CPUs with AVX512-BF16/AMX (paddle backend)",
    )
    parser.add_argument(
        "--draw_threshold", type=float, default=None, help="default: infer_cfg.yml's"
    )
    parser.add_argument("--output_dir", default="output", help="where drawn results go")
    parser.add_argument(
        "--run_benchmark", action="store_true", help="time after warm-up, over --repeats passes"
    )
    parser.add_argument("--warmup", type=int, default=2, help="warm-up runs (--run_benchmark)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (--run_benchmark)")
    args = parser.parse_args()
    sources = [a for a in (args.image_file or args.image_dir, args.video_file) if a]
    if len(sources) != 1:
        parser.error("give --image_file and/or --image_dir, or --video_file")
    return args


def print_timings(predictor, label: str) -> None:
    """One line: median milliseconds per batch of each stage."""
    parts = []
    for stage, seconds in predictor.timings.items():
        if seconds:
            parts.append(f"{stage} {1000 * statistics.median(seconds):.2f} ms")
    print(f"timings ({label}, median per batch over {len(predictor.timings['inference'])}): "
          + ", ".join(parts))  # fmt: skip


def run_images(predictor, args: argparse.Namespace, threshold: float) -> int:
    from ppdet.data import DataError
    from ppdet.engine.predictor import list_images, save_visualizations
    from ppdet.visualize import write_detections_json

    images = list_images(args.image_file, args.image_dir, ("--image_file", "--image_dir"))
    if args.run_benchmark:
        for _ in range(max(args.warmup, 0)):
            predictor(images[:1])
        predictor.reset_timings()
        for _ in range(max(args.repeats, 1) - 1):
            predictor(images)
    results = predictor(images)
    if not results:
        from ppdet.data.image_io import IMAGE_EXTS

        names = ", ".join(predictor.skipped[:3]) + (", ..." if len(predictor.skipped) > 3 else "")
        raise DataError(
            f"{names}: cannot be read as an image (the warning above says why); pass image files "
            f"({' '.join(IMAGE_EXTS)})"
        )
    labels = predictor.labels
    drawn = save_visualizations(results, labels, args.output_dir, threshold, predictor.max_pixels)
    json_path = os.path.join(args.output_dir, "bbox.json")
    write_detections_json(json_path, results, labels)
    total = sum(int((r["bbox"][:, 1] >= threshold).sum()) for r in results)
    skipped = f" ({len(predictor.skipped)} skipped: unreadable)" if predictor.skipped else ""
    print(
        f"{len(results)} images{skipped}, {total} detections with score >= {threshold}; drawn "
        f"images in {args.output_dir}/ ({len(drawn)} files), all detections in {json_path}"
    )
    print_timings(predictor, "benchmark" if args.run_benchmark else "one pass")
    return 0


def run_video(predictor, args: argparse.Namespace, threshold: float) -> int:
    import cv2

    from ppdet.data import DataError
    from ppdet.visualize import draw_detections

    if not os.path.isfile(args.video_file):
        raise DataError(f"--video_file: no such file: {args.video_file}")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr lines: quiet
    capture = cv2.VideoCapture(args.video_file)
    if not capture.isOpened():
        raise DataError(
            f"--video_file: OpenCV cannot open {args.video_file} as a video: pass a video file "
            "(e.g. .mp4, .avi) that OpenCV's FFmpeg backend decodes"
        )
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    name = os.path.splitext(os.path.basename(args.video_file))[0] + ".mp4"
    os.makedirs(args.output_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".video.", dir=args.output_dir)
    writer, frames, boxes = None, 0, 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if args.run_benchmark and frames == max(args.warmup, 0):
                predictor.reset_timings()  # the first frames warm up
            (result,) = predictor([frame])
            boxes += int((result["bbox"][:, 1] >= threshold).sum())
            drawn = draw_detections(
                frame, result["bbox"], predictor.labels, threshold, result.get("mask")
            )
            if writer is None:
                h, w = drawn.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(os.path.join(tmp_dir, name), fourcc, fps, (w, h))
            writer.write(drawn)
            frames += 1
        if writer is not None:
            writer.release()
            os.replace(os.path.join(tmp_dir, name), os.path.join(args.output_dir, name))
    finally:
        capture.release()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if frames == 0:
        raise DataError(f"--video_file: no frame could be read from {args.video_file}")
    out = os.path.join(args.output_dir, name)
    print(f"{frames} frames, {boxes} detections with score >= {threshold}; drawn video: {out}")
    print_timings(predictor, "benchmark" if args.run_benchmark else "one pass")
    return 0


def main() -> int:
    args = parse_args()
    from ppdet.export import Predictor

    predictor = Predictor(
        args.model_dir,
        backend=args.backend,
        threads=args.threads,
        device=args.device,
        use_tensorrt=args.use_tensorrt,
        precision=args.precision,
    )
    threshold = predictor.draw_threshold if args.draw_threshold is None else args.draw_threshold
    if args.video_file:
        return run_video(predictor, args, threshold)
    return run_images(predictor, args, threshold)


if __name__ == "__main__":
    run(main)
