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

from ppdet.modeling.postprocess.bbox import image_of_rows

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
        if not len(scores) == len(deltas) == len(anchors):
            raise ValueError(
                f"ProposalGenerator: {len(scores)} score, {len(deltas)} delta and "
                f"{len(anchors)} anchor levels"
            )
        per_level_top = self.pre_nms_top_n if self.topk_after_collect else self.post_nms_top_n
        rois, probs, nums = [], [], []
        for score, delta, anchor in zip(scores, deltas, anchors):
            hw = paddle.shape(score)[2:]  # (H, W), also when unknown until run time
            grid = anchor.reshape([hw[0], hw[1], score.shape[1], 4])  # [H, W, A, 4]
            level_rois, level_probs, level_num = vops.generate_proposals(
                score,  # [B, A, H, W]
                delta,  # [B, 4A, H, W]
                im_shape,  # [B, 2]
                grid,
                paddle.ones_like(grid),  # variances
                pre_nms_top_n=self.pre_nms_top_n,
                post_nms_top_n=per_level_top,
                nms_thresh=self.nms_thresh,
                min_size=self.min_size,
                eta=self.eta,
                pixel_offset=False,
                return_rois_num=True,
            )  # [R_l, 4] image by image, [R_l, 1], [B]
            rois.append(level_rois)
            probs.append(level_probs.flatten())
            nums.append(level_num.astype("int32"))
        if len(rois) == 1:  # one level (C4): its lists as they are
            return rois[0], nums[0]
        return self._collect(rois, probs, nums)

    def _collect(
        self,
        rois: Sequence[paddle.Tensor],
        probs: Sequence[paddle.Tensor],
        nums: Sequence[paddle.Tensor],
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Pool the levels' proposals (rois[l] [R_l, 4], probs[l] [R_l], nums[l] [B]) image by
        image, in level order, and keep each image's ``post_nms_top_n`` most probable (sorted
        by probability) when it has more, else all in level order. Batched: each image's
        probabilities are one row of a [B, max count] matrix (padded with -inf) for ``topk``;
        with one image that row is exactly its probabilities, so the kept RoIs are those of a
        per-image ``topk``."""
        limit = self.post_nms_top_n
        image = paddle.concat([image_of_rows(n) for n in nums])  # [R] image of each RoI
        order = paddle.argsort(image, stable=True)  # image by image, level order kept
        rois = paddle.gather(paddle.concat(rois), order)  # [R, 4]
        probs = paddle.gather(paddle.concat(probs), order)  # [R]
        image = paddle.gather(image, order)
        counts = paddle.add_n(list(nums))  # [B]
        starts = (paddle.cumsum(counts) - counts).astype("int64")  # [B] first row of each image
        rank = paddle.arange(paddle.shape(image)[0], dtype="int64") - paddle.gather(starts, image)
        width = paddle.clip(counts.max(), min=1).astype("int64")  # the row length
        padded = paddle.full([paddle.shape(counts)[0] * width], float("-inf"), probs.dtype)
        padded = paddle.scatter(padded, image * width + rank, probs).reshape([-1, width])
        k = paddle.minimum(width, paddle.full([], limit, "int64"))
        _, best = paddle.topk(padded, k, axis=1)  # [B, k] positions within each image
        slot = paddle.arange(k, dtype="int64").unsqueeze(0)  # [1, k]
        many = (counts > limit).unsqueeze(1)  # [B, 1] images that are cut to `limit`
        position = paddle.where(many, best, slot.expand_as(best))  # [B, k]
        kept = paddle.minimum(counts, paddle.full([], limit, counts.dtype))  # [B]
        valid = slot < kept.unsqueeze(1).astype("int64")  # [B, k]
        rows = paddle.masked_select(starts.unsqueeze(1) + position, valid)  # image by image
        return paddle.gather(rois, rows), kept
