"""Cascade Mask R-CNN: CascadeRCNN with a mask head, i.e. the one two-stage detector with the
cascade RoI stage and the mask branch. Checkpoint names, losses, a few training steps, eval
with masks, tools (bbox and segm evaluation)."""

from pathlib import Path

import numpy as np
import paddle

import ppdet
from ppdet.evaluation.coco_eval import split_masks
from ppdet.modeling.architectures import CascadeRCNN
from ppdet.modeling.heads.cascade_head import CascadeHead
from tests.modeling.detector_checks import (
    assert_loss_drops,
    check_boxes_in_images,
    check_detections,
    check_no_detections,
    demo_overrides,
    eval_inputs,
    predict,
    rcnn_batch,
    run_tools,
    state_lines,
    tiny_detector,
    train_steps,
)

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "tests" / "fixtures" / "compat"
DEMO = str(REPO / "configs" / "cascade_rcnn" / "cascade_mask_rcnn_r18_fpn_demo.yml")
TINY = [
    "num_classes=3",
    "FPN.out_channel=32",
    "CascadeTwoFCHead.out_channel=64",
    "MaskFeat.out_channel=16",
    "MaskFeat.num_convs=2",
    "BBoxAssigner.batch_size_per_im=64",
]
SIZE = 96
STAGE_LOSSES = [f"loss_bbox_{kind}_stage{k}" for k in range(3) for kind in ("cls", "reg")]
NAMES = sorted(["loss", "loss_rpn_cls", "loss_rpn_reg", "loss_mask"] + STAGE_LOSSES)


def test_names_and_shapes_equal_paddledetection():
    config = REPO / "configs" / "cascade_rcnn" / "cascade_mask_rcnn_r50_fpn_1x_coco.yml"
    cfg = ppdet.load_config(str(config))
    assert cfg["TrainDataset"]["load_segm"] is True
    with paddle.LazyGuard():
        model = ppdet.build_model(cfg)
    assert isinstance(model, CascadeRCNN) and isinstance(model.bbox_head, CascadeHead)
    lines = state_lines(model)
    assert lines == (COMPAT / "cascade_mask_rcnn_r50_fpn.txt").read_text().splitlines()
    assert model.mask_head.mask_assigner.mask_resolution == 28
    assert model.bbox_post_process.decode.prior_box_var == [30, 30, 15, 15]


def tiny_model(seed=0, extra=()):
    return tiny_detector(DEMO, TINY + list(extra), seed)


def fixed_batch():
    batch = rcnn_batch(SIZE)
    batch["gt_poly"] = [
        [
            [np.array([10, 10, 50, 10, 30, 60], "float32")],
            [np.array([40, 30, 90, 30, 90, 90, 40, 90], "float32")],
        ],
        [[np.array([5, 70, 22, 50, 40, 70, 22, 90], "float32")]],
    ]
    return batch


def test_losses_and_the_mask_branch_learns_from_the_first_stage_sample():
    model = tiny_model()
    model.train()
    batch = fixed_batch()
    raw = model(batch)
    losses = model.loss(raw, batch)
    assert sorted(losses) == NAMES and all(np.isfinite(float(v)) for v in losses.values())
    np.testing.assert_allclose(
        float(losses["loss"]), sum(float(losses[k]) for k in NAMES if k != "loss"), rtol=1e-6
    )
    # the mask logits are those of stage 0's foreground RoIs (gt boxes are appended there)
    stage0 = raw["roi"]["stages"][0]
    labels = stage0["labels"].numpy()
    foreground = (labels >= 0) & (labels < 3)
    assert raw["mask"]["rois"].shape[0] == foreground.sum() > 0
    np.testing.assert_array_equal(raw["mask"]["rois"].numpy(), stage0["rois"].numpy()[foreground])
    assert float(losses["loss_mask"]) > 0
    batch["pad_gt_mask"] = paddle.zeros_like(batch["pad_gt_mask"])  # no real boxes: no target
    losses = model.losses(batch)
    assert float(losses["loss_mask"]) == 0
    losses["loss"].backward()


def test_training_steps_lower_the_loss_and_the_mask_loss():
    model = tiny_model(extra=["ResNet.freeze_at=-1"])
    history = train_steps(model, fixed_batch(), steps=6, lr=2e-3, keys=("loss", "loss_mask"))
    assert_loss_drops(history["loss"])
    assert history["loss_mask"][-1] < history["loss_mask"][0], history


def test_eval_boxes_and_masks_and_no_detections():
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.0"])  # untrained: keep all
    batch = eval_inputs(fixed_batch())
    out = predict(model, batch)
    bbox = check_detections(out, [100, 100], num_classes=3)
    check_boxes_in_images(bbox, SIZE, first=100)  # image 1 was downscaled by 2
    assert out["mask"].shape == [200, 2 * SIZE, 2 * SIZE] and out["mask"].dtype == paddle.uint8
    masks = split_masks(out["mask"], out["bbox_num"], [[SIZE, SIZE], [2 * SIZE, 2 * SIZE]])
    assert [m.shape for m in masks] == [(100, SIZE, SIZE), (100, 2 * SIZE, 2 * SIZE)]
    assert all(set(np.unique(m)) <= {0, 1} for m in masks) and masks[1].any()
    out = predict(tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.99"]), batch)
    check_no_detections(out, 2)
    assert out["mask"].shape == [0, 2 * SIZE, 2 * SIZE]


def test_tools_train_and_evaluate_boxes_and_masks(tiny_demo_data, tmp_path):
    opts = demo_overrides(tiny_demo_data, tmp_path / "out") + [
        "FPN.out_channel=16",
        "CascadeTwoFCHead.out_channel=32",
        "MaskFeat.out_channel=16",
        "MaskFeat.num_convs=1",
        "BBoxPostProcess.nms.score_threshold=0.0",
        "BBoxPostProcess.nms.keep_top_k=20",
    ]
    out = run_tools(DEMO, opts, tiny_demo_data, tmp_path, "cascade_mask_rcnn_r18_fpn_demo")
    assert "loss_mask" in out["train"] and "loss_bbox_reg_stage2" in out["train"]
    summary = [line for line in out["eval"].splitlines() if "eval summary" in line][-1]
    assert "AP@[.5:.95] = " in summary and "mask AP@[.5:.95] = " in summary
    assert (tmp_path / "out" / "cascade_mask_rcnn_r18_fpn_demo" / "mask.json").is_file()
