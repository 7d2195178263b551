"""Our EfficientNet-B0 against PaddleDetection v0.5's own (the EfficientDet-D0 backbone of
release/0.5) on the fluid 1.8 engine: a fluid-era ImageNet tarball converts and loads into our
EfficientDet-D0 config as ``pretrain_weights``, and gives v0.5's C3-C5 features.

Two halves, two interpreters:

1. The oracle (the legacy oracle's Python 3.7 venv with paddlepaddle 1.8.5, see
   ``../shared/legacy_oracle/README.md``; ``PD05`` a ``git archive release/0.5 ppdet`` tree):

       $LEGACY_PEER_HOME/venv37/bin/python bench/compare_efficientnet_v05.py --make-oracle \\
           --pd05 $PD05 --out $ORACLE

   builds v0.5's ``EfficientNet('b0')`` plus an ImageNet classifier head named as the
   PaddleClas tarball names it (``_conv_head``, top-level ``_bn1``, ``_fc``), gives every
   parameter and BN statistic seeded random values, saves them with
   ``fluid.io.save_persistables`` as ``EfficientNetB0_pretrained.tar`` (one file per variable
   under a top folder, like the published download), its variable list
   (``EfficientNetB0_pretrained.vars.txt``: name, shape, dtype; the fixture
   ``tests/fixtures/legacy_v05/EfficientNetB0_pretrained.txt``) and ``efficientnet_b0_v05.npz``:
   the input (a photo at an odd size, so TensorFlow-"SAME" padding is asymmetric) and v0.5's
   three outputs.

2. The comparison (our environment):

       MKL_DEBUG_CPU_TYPE=5 python bench/compare_efficientnet_v05.py --oracle-dir $ORACLE

   loads the tarball into ``configs/efficientdet/efficientdet_d0_coco.yml``'s model the way
   training does (``-o pretrain_weights=<tar>``: converted by ``ppdet.zoo.legacy``), runs the
   backbone on v0.5's input and prints the largest differences. ``--write`` puts the result
   into BENCHMARK.md (section ``efficientnet_v05``).
"""

import argparse
import os
import sys
import tarfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "EfficientNetB0_pretrained"
NPZ = "efficientnet_b0_v05.npz"
HW = (257, 333)  # odd on purpose: SAME pads asymmetrically at every stride-2 layer


def _photo(images_dir):
    """[1, 3, H, W] float32: a photo resized to HW, ImageNet mean/std normalised."""
    import cv2

    img = cv2.imread(os.path.join(images_dir, "astronaut.png"))[:, :, ::-1]
    img = cv2.resize(img, (HW[1], HW[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    img = (img / 255.0 - mean) / std
    return img.transpose(2, 0, 1)[None].astype(np.float32)


def _random_value(name, shape, rng):
    """Seeded values that keep 16 random blocks' activations in a sane range."""
    if name.endswith("_mean"):
        return rng.normal(0.0, 0.1, shape)
    if name.endswith("_variance"):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith("_scale"):
        return rng.uniform(0.5, 1.2, shape)
    if name.endswith("_offset"):
        return rng.normal(0.0, 0.1, shape)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    if name == "_fc_weights":  # fc: [in, out]
        fan_in = shape[0]
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def make_oracle(pd05, out, images_dir, seed):
    """Run v0.5's EfficientNet on fluid 1.8 (Python 3.7): tarball, variable list, npz."""
    import paddle.fluid as fluid

    sys.path.insert(0, pd05)
    from ppdet.modeling.backbones import efficientnet as v05

    main, startup = fluid.Program(), fluid.Program()
    with fluid.program_guard(main, startup), fluid.unique_name.guard():
        image = fluid.data("image", [None, 3, None, None], "float32")
        feats = v05.EfficientNet("b0")(image)
        # PaddleClas's classifier head on C5 (present in the ImageNet tarball, unused by us)
        head = v05.conv2d(feats[-1], 1280, 1, name="_conv_head")
        head = fluid.layers.swish(v05.batch_norm(head, 0.99, 1e-3, name="_bn1"))
        pooled = fluid.layers.pool2d(head, pool_type="avg", global_pooling=True)
        fluid.layers.fc(
            pooled,
            1000,
            param_attr=fluid.ParamAttr(name="_fc_weights"),
            bias_attr=fluid.ParamAttr(name="_fc_offset"),
        )
    test = main.clone(for_test=True)
    place = fluid.CPUPlace()
    exe = fluid.Executor(place)
    exe.run(startup)
    rng = np.random.RandomState(seed)
    scope = fluid.global_scope()
    persistables = sorted(v.name for v in main.list_vars() if v.persistable)
    for name in persistables:
        tensor = scope.find_var(name).get_tensor()
        shape = np.array(tensor).shape
        tensor.set(_random_value(name, shape, rng).astype(np.float32), place)
    x = _photo(images_dir)
    outs = exe.run(test, feed={"image": x}, fetch_list=feats)
    folder = os.path.join(out, NAME)
    fluid.io.save_persistables(exe, folder, main)
    with tarfile.open(os.path.join(out, NAME + ".tar"), "w") as tar:
        tar.add(folder, arcname=NAME)
    with open(os.path.join(out, NAME + ".vars.txt"), "w") as f:
        for name in persistables:
            shape = np.array(scope.find_var(name).get_tensor()).shape
            dims = ", ".join(str(s) for s in shape)
            f.write(f"{name}\t[{dims}]\tfloat32\n")
    np.savez(os.path.join(out, NPZ), image=x, c3=outs[0], c4=outs[1], c5=outs[2])
    print(f"wrote {NAME}.tar ({len(persistables)} variables) and {NPZ} to {out}")


def compare(oracle_dir):
    """{level: (max |diff|, max |v0.5|)} of our backbone's C3-C5 vs v0.5's, plus the report."""
    sys.path.insert(0, REPO)
    import paddle

    import ppdet
    from ppdet.engine.cpu_math import configure_cpu_math
    from ppdet.zoo.weights import load_weights

    configure_cpu_math()
    cfg = ppdet.load_config(
        os.path.join(REPO, "configs", "efficientdet", "efficientdet_d0_coco.yml")
    )
    model = ppdet.build_model(cfg)
    model.eval()
    report = load_weights(model, os.path.join(oracle_dir, NAME + ".tar"), strict=False)
    ref = np.load(os.path.join(oracle_dir, NPZ))
    with paddle.no_grad():
        ours = model.backbone(paddle.to_tensor(ref["image"]))
    diffs = {}
    for level, out in zip(("c3", "c4", "c5"), ours):
        got = out.numpy()
        if got.shape != ref[level].shape:
            raise SystemExit(f"{level}: ours {got.shape} vs v0.5 {ref[level].shape}")
        diffs[level] = (float(np.abs(got - ref[level]).max()), float(np.abs(ref[level]).max()))
    return diffs, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-oracle", action="store_true", help="run v0.5 (fluid 1.8)")
    parser.add_argument("--pd05", help="a release/0.5 ppdet tree (with --make-oracle)")
    parser.add_argument("--out", help="oracle output folder (with --make-oracle)")
    parser.add_argument("--images", default=os.environ.get("LEGACY_PEER_HOME", "") + "/images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle-dir", help="the --make-oracle output to compare with")
    parser.add_argument("--write", action="store_true", help="write BENCHMARK.md's section")
    args = parser.parse_args()
    if args.make_oracle:
        os.makedirs(args.out, exist_ok=True)
        make_oracle(args.pd05, args.out, args.images, args.seed)
        return
    diffs, report = compare(args.oracle_dir)
    backbone = [n for n in report.missing if n.startswith("backbone.")]
    lines = [
        f"- loaded into the backbone: {len(report.loaded)} parameters; backbone parameters "
        f"left unfilled: {len(backbone)}; shape mismatches: {len(report.mismatched)}; unused: "
        f"{len(report.unused)} (the neck and head start from random values, as in training)"
    ]
    lines += [
        f"- {level.upper()}: {ref_shape_note(args.oracle_dir, level)}, max |ours - v0.5| "
        f"{d:.3g} (max |v0.5| {m:.3g}, relative {d / m:.2g})"
        for level, (d, m) in diffs.items()
    ]
    print("\n".join(lines))
    if args.write:
        write(lines)


def ref_shape_note(oracle_dir, level):
    shape = np.load(os.path.join(oracle_dir, NPZ))[level].shape
    return "x".join(str(s) for s in shape)


def write(lines):
    sys.path.insert(0, REPO)
    from bench.report import machine, write_section

    body = "\n".join(
        [
            "## EfficientNet-B0: a fluid-era ImageNet tarball vs PaddleDetection v0.5 itself",
            "",
            "`MKL_DEBUG_CPU_TYPE=5 python bench/compare_efficientnet_v05.py --oracle-dir "
            "<oracle>` on " + machine() + ". The oracle is v0.5's `EfficientNet('b0')` "
            "(release/0.5, the EfficientDet-D0 backbone) on paddlepaddle 1.8.5 with seeded "
            "random weights and BN statistics, saved by `fluid.io.save_persistables` as "
            f"`{NAME}.tar` with a PaddleClas-named classifier head (`--make-oracle`, see the "
            "script). The tarball is loaded into `configs/efficientdet/efficientdet_d0_coco.yml`'s "
            "model as `pretrain_weights` (converted by `ppdet.zoo.legacy`, classifier skipped); "
            f"input: a photo at {HW[0]}x{HW[1]} (odd: SAME padding is asymmetric).",
            "",
            *lines,
        ]
    )
    write_section("efficientnet_v05", body)


if __name__ == "__main__":
    main()
