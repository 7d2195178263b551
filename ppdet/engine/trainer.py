"""The training / evaluation loop. It knows no architecture and no metric: in training
``model.loss(model(batch), batch)`` gives named losses, in eval ``model.predict(batch)`` gives
``bbox``/``bbox_num`` (and ``mask``); the evaluator scores them.
"""

from __future__ import annotations

import json
import math
import os
import random
import time

import numpy as np
import paddle
import paddle.distributed as dist
from tqdm import tqdm

from ppdet import build_model
from ppdet.atomic_io import atomic_write_text
from ppdet.config import ConfigError, dump_config
from ppdet.engine import checkpoint
from ppdet.engine.ema import ModelEMA
from ppdet.engine.history import TrainingHistory
from ppdet.engine.logger import TrainLogger
from ppdet.errors import PpdetError
from ppdet.modeling.postprocess import original_size
from ppdet.zoo.weights import load_weights


class TrainingDiverged(PpdetError, RuntimeError):
    """The loss became NaN or Inf; the message names the iteration and the losses."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    paddle.seed(seed)


def _to_numpy(outputs: dict) -> dict:
    return {k: v.numpy() if isinstance(v, paddle.Tensor) else v for k, v in outputs.items()}


def _original_sizes(batch: dict) -> np.ndarray:
    """[B, 2] (h, w) original image sizes of a batch, which crop its masks."""
    return original_size(batch["im_shape"], batch["scale_factor"]).numpy()


class Trainer:
    """Builds the model from ``cfg`` and trains, evaluates or predicts with it.

    ``output_dir`` holds checkpoints (default ``<save_dir>/<config name>``).
    """

    def __init__(
        self, cfg: dict, *, output_dir: str | None = None, amp: bool = False, use_vdl: bool = False
    ) -> None:
        self.cfg = cfg
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_parallel_env()
        self.seed = int(cfg.get("seed") or 0)
        seed_everything(self.seed)
        self.model = build_model(cfg)
        name = os.path.splitext(os.path.basename(getattr(cfg, "path", "") or "model"))[0]
        self.output_dir = output_dir or os.path.join(cfg.get("save_dir", "output"), name)
        self.amp = bool(amp or cfg.get("amp", False))
        if self.amp and not paddle.is_compiled_with_cuda():
            print("--amp: mixed precision needs a GPU; training in float32 on this CPU")
            self.amp = False
        self.use_vdl = bool(use_vdl or cfg.get("use_vdl", False))
        self._eval_data = None
        self.weights_source: str | None = None  # what eval_metrics.json says was evaluated
        self.iteration: int | None = None
        self.ema: ModelEMA | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- weights
    def load_weights(self, path: str, strict: bool = True):
        """Load ``path`` (file, prefix, URL or zoo name) into the model (strict: every parameter must fit)."""
        report = load_weights(self.model, path, strict=strict, quiet=not self.is_main)
        self.weights_source = report.path
        return report

    # ---------------------------------------------------------------- training
    def _schedule(self, steps_per_epoch: int) -> tuple[int, int, bool]:
        """(total iterations, epochs, epoch_based) from ``epoch`` or ``max_iters``."""
        if self.cfg.get("max_iters"):
            total = int(self.cfg["max_iters"])
            return total, math.ceil(total / steps_per_epoch), False
        epochs = int(self.cfg.get("epoch") or 1)
        return epochs * steps_per_epoch, epochs, True

    def train(self, validate: bool = False, resume: str | None = None) -> dict:
        """Train for the configured schedule; returns the last eval metrics (if validating)."""
        from ppdet.data.loader import build_dataset, build_loader, set_loader_epoch
        from ppdet.engine.optim import build_lr, build_optimizer

        cfg = self.cfg
        dataset = build_dataset(cfg, "train")
        loader = build_loader(cfg, "train", dataset, distributed=self.world_size > 1)
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise ConfigError(
                f"{cfg.source_of('TrainReader') if hasattr(cfg, 'source_of') else 'config'}: TrainReader.batch_size: "
                f"the training set ({len(dataset)} images) gives no full batch; lower batch_size or drop_last"
            )
        total, epochs, epoch_based = self._schedule(steps_per_epoch)
        lr = build_lr(cfg["LearningRate"], steps_per_epoch, epoch_based)
        optimizer = build_optimizer(cfg.get("OptimizerBuilder") or {}, lr, self.model)

        self.ema = (
            ModelEMA(self.model, float(cfg.get("ema_decay", 0.9998)))
            if cfg.get("use_ema")
            else None
        )
        start_iter, best = 0, -math.inf
        if resume:
            state = checkpoint.load_checkpoint(resume, self.model, optimizer, self.ema)
            start_iter = int(state["iteration"])
            best = float(state["extra"].get("best", -math.inf))
            if self.is_main:
                print(
                    f"resumed from {resume} at iteration {start_iter} (lr {optimizer.get_lr():.6f})"
                )
        elif cfg.get("pretrain_weights"):
            self._load_pretrained(cfg["pretrain_weights"])
            if self.ema is not None:
                self.ema = ModelEMA(self.model, self.ema.decay)

        model = paddle.DataParallel(self.model) if self.world_size > 1 else self.model
        scaler = paddle.amp.GradScaler(init_loss_scaling=1024) if self.amp else None
        logger = TrainLogger(
            total,
            int(cfg.get("log_iter", 20)),
            vdl_dir=cfg.get("vdl_log_dir", os.path.join(self.output_dir, "vdl"))
            if self.use_vdl and self.is_main
            else None,
            history=TrainingHistory(self.output_dir, resume_from=start_iter if resume else None)
            if self.is_main
            else None,
        )
        config_text = dump_config(cfg)
        snapshot_epoch = int(cfg.get("snapshot_epoch", 1))
        snapshot_iter = int(cfg.get("snapshot_iter") or max(1, total // 10))
        metrics, last_saved = {}, None

        iteration = start_iter
        start_epoch = start_iter // steps_per_epoch
        skip = start_iter % steps_per_epoch
        model.train()
        for epoch in range(start_epoch, epochs):
            seed_everything(self.seed + epoch)
            set_loader_epoch(loader, epoch)
            tic = time.time()
            for step, batch in enumerate(loader):
                if epoch == start_epoch and step < skip:
                    continue
                data_time = time.time() - tic
                losses = self._train_step(
                    model, batch, optimizer, lr, scaler, iteration + 1, last_saved
                )
                iteration += 1
                self.iteration = iteration
                if self.is_main:
                    logger.step(epoch, epochs, iteration, optimizer.get_lr(), losses, data_time)
                if not epoch_based and (iteration % snapshot_iter == 0 or iteration == total):
                    metrics, best = self._maybe_validate(validate, iteration, metrics, best, logger)
                    last_saved = self._save(
                        f"iter_{iteration}", optimizer, epoch, iteration, config_text, best
                    )
                tic = time.time()
                if iteration >= total:
                    break
            if epoch_based and ((epoch + 1) % snapshot_epoch == 0 or epoch + 1 == epochs):
                metrics, best = self._maybe_validate(validate, iteration, metrics, best, logger)
                last_saved = self._save(
                    f"epoch_{epoch + 1}", optimizer, epoch + 1, iteration, config_text, best
                )
            if iteration >= total:
                break
        if self.is_main:
            path = checkpoint.save_weights(
                self.model, os.path.join(self.output_dir, "model_final"), self.ema
            )
            curves = logger.history.draw() if logger.history is not None else None
            print(f"training done: {iteration} iterations; final weights {path}")
            if curves:
                print(f"training curves: {curves}")
        return metrics

    def _train_step(
        self, model, batch, optimizer, lr, scaler, iteration: int, last_saved: str | None
    ) -> dict:
        """One optimizer step; ``lr`` is the per-iteration scheduler. Returns the loss values."""
        with paddle.amp.auto_cast(enable=self.amp):
            outputs = self.model.loss(model(batch), batch)  # model: maybe DataParallel
        loss = outputs["loss"]
        values = {k: float(v.item()) for k, v in outputs.items() if k.startswith("loss")}
        if not all(math.isfinite(v) for v in values.values()):
            named = ", ".join(f"{k}={v}" for k, v in values.items())
            kept = (
                f"last good checkpoint: {last_saved}"
                if last_saved
                else "no checkpoint was saved yet"
            )
            raise TrainingDiverged(
                f"loss is not finite at iteration {iteration} ({named}); {kept}; try a lower learning rate"
            )
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.minimize(optimizer, loss)
        else:
            loss.backward()
            optimizer.step()
        optimizer.clear_grad()
        lr.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return values

    def _save(
        self, name: str, optimizer, epoch: int, iteration: int, config_text: str, best: float
    ) -> str:
        """Write a resumable checkpoint; ``best`` (the best eval metric so far) goes into it."""
        prefix = os.path.join(self.output_dir, name)
        if self.is_main:
            checkpoint.save_checkpoint(
                prefix,
                self.model,
                optimizer,
                epoch=epoch,
                iteration=iteration,
                config_text=config_text,
                ema=self.ema,
                extra={"best": best},
            )
            print(f"saved checkpoint {prefix}")
        return prefix

    def _maybe_validate(
        self, validate: bool, iteration: int, metrics: dict, best: float, logger
    ) -> tuple[dict, float]:
        if not validate:
            return metrics, best
        if self.ema is not None:
            with self.ema.applied(self.model):
                metrics = self.evaluate()
        else:
            metrics = self.evaluate()
        self.model.train()
        key = metrics.get("primary_metric")
        value = metrics.get(key, -math.inf) if key else -math.inf
        if self.is_main:
            logger.scalars("eval", metrics, iteration)
            if value > best:
                best = value
                checkpoint.save_weights(
                    self.model, os.path.join(self.output_dir, "best_model"), self.ema
                )
                print(
                    f"best {key} so far: {value:.4f}; saved {os.path.join(self.output_dir, 'best_model')}.pdparams"
                )
        return metrics, best

    def _load_pretrained(self, path: str) -> None:
        if self.is_main:
            print(f"fine-tuning from {path} (parameters that do not fit are skipped)")
        load_weights(self.model, path, strict=False, quiet=not self.is_main)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, classwise: bool = False) -> dict:
        """Run the EvalDataset through the model and score it with ``metric``.

        classwise: also print one AP per class and draw each class's precision-recall curve
        into ``<output_dir>/pr_curves_<k>.png``.
        """
        from ppdet.data.loader import build_dataset, build_loader
        from ppdet.evaluation import build_evaluator
        from ppdet.evaluation.coco_eval import split_masks

        if self._eval_data is None:
            dataset = build_dataset(self.cfg, "eval")
            loader = build_loader(self.cfg, "eval", dataset)
            self._eval_data = (dataset, loader)
        dataset, loader = self._eval_data
        evaluator = build_evaluator(
            self.cfg.get("metric", "COCO"),
            dataset,
            map_type=self.cfg.get("map_type"),
            output_dir=self.output_dir,
            classwise=classwise,
        )
        evaluator.reset()
        self.model.eval()
        with paddle.no_grad():
            for batch in tqdm(
                loader, desc="eval", unit="batch", disable=not self.is_main, leave=False
            ):
                out = _to_numpy(self.model.predict(batch))
                masks = {}
                if out.get("mask") is not None and getattr(evaluator, "supports_masks", False):
                    masks["mask"] = split_masks(
                        out["mask"], out["bbox_num"], _original_sizes(batch)
                    )
                evaluator.update(
                    batch["im_id"].numpy().reshape(-1), out["bbox"], out["bbox_num"], **masks
                )
        metrics = evaluator.accumulate()
        metrics["primary_metric"] = evaluator.primary_metric
        if self.is_main:
            labels = {
                "AP": "AP@[.5:.95]",
                "AP50": "mAP@0.5",
                "mAP_11point": "VOC mAP 11-point",
                "mAP_area": "VOC mAP area",
                "mask_AP": "mask AP@[.5:.95]",
                "mask_AP50": "mask mAP@0.5",
            }
            shown = [f"{label} = {metrics[k]:.4f}" for k, label in labels.items() if k in metrics]
            print("eval summary: " + ", ".join(shown), flush=True)
            self._record_metrics(metrics, dataset.get_anno())
            if classwise and evaluator.pr_curves:
                from ppdet.evaluation.pr_curves import write_pr_curves

                for path in write_pr_curves(evaluator.pr_curves, self.output_dir):
                    print(f"precision-recall curves: {path}")
        return metrics

    def _record_metrics(self, metrics: dict, annotations: str | None) -> None:
        """Write ``<output_dir>/eval_metrics.json`` (what was evaluated and the numbers), for publishing."""
        record = {
            "weights": self.weights_source or "(weights being trained)",
            "iteration": self.iteration,
            "dataset": annotations,
            "metrics": {
                k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating))
            },
        }
        os.makedirs(self.output_dir, exist_ok=True)
        atomic_write_text(
            os.path.join(self.output_dir, "eval_metrics.json"), json.dumps(record, indent=1) + "\n"
        )
