"""PaddleDetection v0.1's training settings as config options (defaults stay 2.x's): smooth L1
with fluid's sigma (``loss_bbox_beta``: RPN sigma 3, R-CNN sigma 1), the RPN losses averaged over
the sampled anchors (``loss_norm: sampled``), RetinaNet's losses divided by fluid's fg_num (each
image's positives + 1, ``num_pos_plus_one``), and v0.1's per-parameter learning rates
(``OptimizerBuilder.param_rules``). Hand-computed values."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppdet.modeling.heads.bbox_head import rcnn_box_loss
from ppdet.modeling.heads.rpn_head import RPNHead
from ppdet.modeling.losses import smooth_l1
from tests.modeling.test_retina_head_options import batch, tiny_model


def t(values, dtype="float32"):
    return paddle.to_tensor(np.array(values, dtype))


def test_smooth_l1_hand_values_and_finite_gradient_at_zero():
    x = t([-0.05, 0.05, 0.5, -2.0, 0.0])
    x.stop_gradient = False
    y = smooth_l1(x, 0.1)
    np.testing.assert_allclose(y.numpy(), [0.0125, 0.0125, 0.45, 1.95, 0.0], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-0.5, 0.5, 1.0, -1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(smooth_l1(x, 0.0).numpy(), np.abs(x.numpy()))


def test_rcnn_box_loss_smooth_l1_beta_one():
    # two sampled RoIs: one of class 0 whose RoI equals its gt box (target deltas 0), one
    # background; deltas of class 0 are [0.5, -0.2, 0, 2.0]
    rois = t([[0, 0, 10, 10], [5, 5, 20, 20]])
    gt = t([[0, 0, 10, 10], [5, 5, 20, 20]])
    labels = t([0, 2], "int32")  # 2 classes: label 2 is background
    scores = t([[0.0, 0.0, 0.0]] * 2)
    deltas = t([[0.5, -0.2, 0.0, 2.0, 9, 9, 9, 9], [9] * 8])
    weights = (10.0, 10.0, 5.0, 5.0)
    _, l1 = rcnn_box_loss(scores, deltas, rois, labels, gt, 2, weights)
    _, smooth = rcnn_box_loss(scores, deltas, rois, labels, gt, 2, weights, beta=1.0)
    assert float(l1) == pytest.approx((0.5 + 0.2 + 0 + 2.0) / 2)  # / the 2 sampled RoIs
    assert float(smooth) == pytest.approx((0.125 + 0.02 + 0 + 1.5) / 2)


def _rpn(**loss):
    paddle.seed(0)
    return RPNHead(
        anchor_generator={"anchor_sizes": [[16.0]], "strides": [16.0], "aspect_ratios": [1.0]},
        rpn_target_assign={"use_random": False},
        in_channels=[4],
        **loss,
    )


def _rpn_raw(pred):
    """4 anchors of 16 px in a row (one level, 1 x 4 grid), zero logits, deltas ``pred`` on
    anchor 0 and 0 elsewhere."""
    anchors = t([[0, 0, 16, 16], [16, 0, 32, 16], [32, 0, 48, 16], [48, 0, 64, 16]])
    deltas = np.zeros((1, 4, 1, 4), "float32")
    deltas[0, :, 0, 0] = pred
    return {"scores": [paddle.zeros([1, 1, 1, 4])], "deltas": [t(deltas)], "anchors": [anchors]}


def test_rpn_v01_loss_smooth_l1_sigma_3_averaged_over_the_sampled_anchors():
    gt = [t([[0, 0, 16, 16]])]  # anchor 0 exactly: positive, target deltas 0; 3 negatives
    raw = _rpn_raw([0.05, -0.5, 0.0, 0.0])
    two_x = _rpn().get_loss(raw, gt)
    head = _rpn(loss_bbox_beta=1 / 9, loss_norm="sampled")
    v01 = head.get_loss(raw, gt)
    assert head.conventions["rpn_loss_norm"] == "sampled"
    # 2.x: BCE log 2 on the 4 sampled anchors and L1, both / 256 (batch_size_per_im x 1 image)
    assert float(two_x["loss_rpn_cls"]) == pytest.approx(4 * np.log(2) / 256, rel=1e-5)
    assert float(two_x["loss_rpn_reg"]) == pytest.approx(0.55 / 256, rel=1e-5)
    # v0.1: mean over the 4 sampled anchors; smooth L1 beta 1/9: 0.5 * 0.05^2 * 9 + 0.5 - 1/18
    assert float(v01["loss_rpn_cls"]) == pytest.approx(np.log(2), rel=1e-5)
    assert float(v01["loss_rpn_reg"]) == pytest.approx((0.01125 + 0.5 - 1 / 18) / 4, rel=1e-5)


def test_bad_loss_options_are_one_line_errors():
    with pytest.raises(ValueError, match="RPNHead.loss_norm: 'mean' is not one of batch, sampled"):
        _rpn(loss_norm="mean")
    with pytest.raises(ValueError, match="RPNHead.loss_bbox_beta must be >= 0"):
        _rpn(loss_bbox_beta=-1.0)


def test_retinanet_fg_num_plus_one_per_image():
    plain = tiny_model()
    fluid = tiny_model(["RetinaHead.num_pos_plus_one=true"])
    assert fluid.head.conventions["retina_num_pos_plus_one"] is True
    plain.train()
    raw = plain(batch())
    a = plain.loss(raw, batch())
    b = fluid.head.get_loss(raw, batch())  # the same outputs, the other normaliser
    labels = plain.head._targets(paddle.concat(raw["anchors"]), batch(), 2)[2]
    num_pos = float((labels == 1).astype("float32").sum())
    assert num_pos > 0
    ratio = num_pos / (num_pos + 2)  # 2 images: fluid's fg_num adds one per image
    for key in ("loss_cls", "loss_reg"):
        assert float(b[key]) == pytest.approx(float(a[key]) * ratio, rel=1e-5)


# ---------------------------------------------------------------- v0.1's per-parameter LRs


def _settings(config: str) -> dict[str, tuple[float, bool]]:
    """{trainable parameter: (LR multiplier, weight decay on)} as the config's optimizer sets."""
    from pathlib import Path

    import ppdet
    from ppdet.engine.optim import _param_rules, param_groups

    cfg = ppdet.load_config(str(Path(__file__).resolve().parents[2] / "configs" / config))
    model = ppdet.build_model(cfg)
    rules = _param_rules(cfg["OptimizerBuilder"]["param_rules"], "OptimizerBuilder")
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: (g["learning_rate"], "weight_decay" not in g)
        for g in param_groups(model, rules, set())
        for p in g["params"]
    }


@pytest.mark.parametrize(
    "config, doubled",
    [
        ("faster_rcnn_r50_fpn_1x.yml", 15),  # 8 FPN, 3 RPN, fc6/fc7/score/delta
        ("faster_rcnn_r50_1x.yml", 5),  # C4: 3 RPN, score/delta (res5 is frozen)
        ("mask_rcnn_r50_fpn_1x.yml", 21),  # + 4 mask convs, deconv, logits
        ("retinanet_r50_fpn_1x.yml", 18),  # 8 FPN (P6 on C5, P7), 8 tower convs, 2 outputs
    ],
)
def test_v01_biases_learn_at_twice_the_lr_without_decay(config, doubled):
    settings = _settings(config)
    biases = {n: s for n, s in settings.items() if s != (1.0, True)}
    assert len(biases) == doubled and set(biases.values()) == {(2.0, False)}
    assert all(n.endswith(".bias") for n in biases)
    assert all(s == (1.0, True) for n, s in settings.items() if n.startswith("backbone."))


def test_v01_cascade_stage_heads_learn_at_one_over_their_loss_weight():
    settings = _settings("cascade_rcnn_r50_fpn_1x.yml")
    for k, scale in enumerate((1.0, 2.0, 4.0)):  # 1 / [1, 0.5, 0.25]
        assert settings[f"bbox_head.head.{k}.fc6.weight"] == (scale, True)
        assert settings[f"bbox_head.bbox_score_stage{k}.weight"] == (scale, True)
        assert settings[f"bbox_head.bbox_delta_stage{k}.bias"] == (2 * scale, False)
        assert settings[f"bbox_head.head.{k}.fc7.bias"] == (2 * scale, False)
    assert settings["neck.fpn_res2_sum.bias"] == (2.0, False)
    assert settings["rpn_head.rpn_rois_score.weight"] == (1.0, True)
