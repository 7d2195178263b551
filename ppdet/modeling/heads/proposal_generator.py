"""RPN proposals: decode the anchors of every level, NMS, keep the best.

Per image and level (Paddle's ``generate_proposals`` kernel, no "+1" pixel convention): the
``pre_nms_top_n`` anchors with the highest objectness are decoded with their deltas (weights
1, dw/dh clipped at log(1000/16)), clipped to the image (``im_shape``), boxes smaller than
``min_size`` dropped, NMS at ``nms_thresh``, and the best ``post_nms_top_n`` kept -- or
``pre_nms_top_n`` with ``topk_after_collect``. With several levels the survivors of all levels
are pooled and the ``post_nms_top_n`` best kept (sorted by score); a single level keeps its
list as it is. 2.x FPN: 2000/1000 (topk after collect) in training, 1000/1000 in eval; C4:
12000/2000 and 6000/1000.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
from paddle.vision import ops as vops

__all__ = ["ProposalGenerator"]


class ProposalGenerator:
    """``generator(scores, deltas, anchors, im_shape)`` -> (rois [R, 4] x1y1x2y2 input pixels,
    the RoIs of image b after those of images 0..b-1, rois_num [B] int32), no gradient.

    scores[i]: [B, A, H_i, W_i] objectness logits; deltas[i]: [B, 4A, H_i, W_i] (channel
    4a + k); anchors[i]: [H_i * W_i * A, 4]; im_shape: [B, 2] (h, w).
    """

    def __init__(
        self,
        pre_nms_top_n: int = 12000,
        post_nms_top_n: int = 2000,
        nms_thresh: float = 0.5,
        min_size: float = 0.1,
        eta: float = 1.0,
        topk_after_collect: bool = False,
    ) -> None:
        self.pre_nms_top_n = int(pre_nms_top_n)
        self.post_nms_top_n = int(post_nms_top_n)
        self.nms_thresh = float(nms_thresh)
        self.min_size = float(min_size)
        self.eta = float(eta)
        self.topk_after_collect = bool(topk_after_collect)

    @paddle.no_grad()
    def __call__(
        self,
        scores: Sequence[paddle.Tensor],
        deltas: Sequence[paddle.Tensor],
        anchors: Sequence[paddle.Tensor],
        im_shape: paddle.Tensor,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        per_level_top = self.pre_nms_top_n if self.topk_after_collect else self.post_nms_top_n
        batch = im_shape.shape[0]
        out = []
        for b in range(batch):
            boxes, probs = [], []
            for score, delta, anchor in zip(scores, deltas, anchors, strict=True):
                h, w = score.shape[2:]
                a = score.shape[1]
                grid = anchor.reshape([h, w, a, 4])  # [H, W, A, 4]
                rois, prob, _ = vops.generate_proposals(
                    score[b : b + 1],  # [1, A, H, W]
                    delta[b : b + 1],  # [1, 4A, H, W]
                    im_shape[b : b + 1],  # [1, 2]
                    grid,
                    paddle.ones_like(grid),  # variances
                    pre_nms_top_n=self.pre_nms_top_n,
                    post_nms_top_n=per_level_top,
                    nms_thresh=self.nms_thresh,
                    min_size=self.min_size,
                    eta=self.eta,
                    pixel_offset=False,
                    return_rois_num=True,
                )  # [R, 4], [R, 1]
                boxes.append(rois)
                probs.append(prob.flatten())
            if len(boxes) == 1:
                out.append(boxes[0])
                continue
            rois = paddle.concat(boxes)  # [R, 4]
            prob = paddle.concat(probs)  # [R]
            if rois.shape[0] > self.post_nms_top_n:
                _, keep = paddle.topk(prob, self.post_nms_top_n)
                rois = paddle.gather(rois, keep)
            out.append(rois)
        rois_num = paddle.to_tensor([r.shape[0] for r in out], "int32")
        return paddle.concat(out), rois_num
