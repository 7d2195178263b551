"""The training / evaluation loop. It knows no architecture and no metric: in training
``model.loss(model(batch), batch)`` gives named losses (the forward under autocast with
``--amp``, the loss in float32), in eval ``model.predict(batch)`` gives ``bbox``/``bbox_num``
(and ``mask``); the evaluator scores them.

One process or many (``python -m paddle.distributed.launch``): each process trains on its
share of every global batch (``data/sampler.py``), the gradients are averaged over the
processes before every optimizer step (``engine/distributed.py``), logs and checkpoints are
written by rank 0, and validation is sharded and gathered (``evaluation/distributed.py``).
A step is ``accumulate_steps`` micro-batches whose gradients add up before one optimizer
step; the schedule follows the total batch (``engine/schedule.py``); ``--amp`` is
``engine/amp.py``; hooks (``engine/hooks.py``, e.g. the Stitcher) see every batch and step.

Exact resume: the data of a step is a function of (seed, epoch, step) (sampler and
per-sample seeds), the model's own randomness (Paddle's generator) is reseeded from (seed,
iteration, rank) before every step, and a checkpoint holds the model, optimizer and LR
schedule, EMA, loss scaler and hook states: a run killed at any point and resumed from its
latest checkpoint continues with the losses of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time

import numpy as np
import paddle
from tqdm import tqdm

from ppdet import build_model
from ppdet.atomic_io import atomic_write_text
from ppdet.config import ConfigError, dump_config
from ppdet.data.sampler import derive_seed
from ppdet.engine import checkpoint, distributed
from ppdet.engine.amp import MixedPrecision, to_float32
from ppdet.engine.ema import ModelEMA
from ppdet.engine.history import TrainingHistory
from ppdet.engine.hooks import build_hooks
from ppdet.engine.logger import TrainLogger
from ppdet.engine.stop import StopRequest, TrainingStopped
from ppdet.errors import PpdetError
from ppdet.modeling.postprocess import original_size
from ppdet.zoo.weights import load_weights

logger = logging.getLogger(__name__)

_STEP_STREAM = 1  # derive_seed(seed, _STEP_STREAM, iteration, rank): the model's randomness


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

    Args:
        output_dir: checkpoints and logs (default ``<save_dir>/<config name>``).
        amp: mixed precision: False, True/"auto", "fp16" or "bf16" (``engine/amp.py``).
        use_vdl: log scalars to VisualDL.
        scale_schedule: scale LR and iterations by total batch / ``reference_batch_size``.
    """

    def __init__(
        self,
        cfg: dict,
        *,
        output_dir: str | None = None,
        amp: bool | str = False,
        use_vdl: bool = False,
        scale_schedule: bool = True,
    ) -> None:
        self.cfg = cfg
        distributed.setup()
        self.world_size = distributed.world_size()
        self.rank = distributed.rank()
        self.seed = int(cfg.get("seed") or 0)
        seed_everything(self.seed)  # the same initial weights in every process
        self.model = build_model(cfg)
        name = os.path.splitext(os.path.basename(getattr(cfg, "path", "") or "model"))[0]
        self.output_dir = output_dir or os.path.join(cfg.get("save_dir", "output"), name)
        self.amp = MixedPrecision(amp or cfg.get("amp", False))
        if self.amp.message and self.is_main:
            (logger.warning if not self.amp.enabled else logger.info)(self.amp.message)
        self.scale_schedule = scale_schedule
        self.use_vdl = bool(use_vdl or cfg.get("use_vdl", False))
        self.hooks = build_hooks(cfg)
        self._eval_data = None
        self.weights_source: str | None = None  # what eval_metrics.json says was evaluated
        self.iteration: int | None = None
        self.ema: ModelEMA | None = None
        self._stop: StopRequest | None = None  # set while train() runs
        self._stop_now = False  # some process asked to stop after this step

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
    def _accumulate_steps(self) -> int:
        steps = self.cfg.get("accumulate_steps", 1)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"accumulate_steps: expected an integer >= 1, got {steps!r}")
        return steps

    def _note_sync_bn(self) -> None:
        """One line on what ``sync_bn`` layers do in a multi-process run (never silent)."""
        from ppdet.modeling.layers.norms import SyncBatchNorm2D

        count = sum(isinstance(m, SyncBatchNorm2D) for m in self.model.sublayers())
        if not count or self.world_size == 1 or not self.is_main:
            return
        if SyncBatchNorm2D.syncs():
            logger.info(
                "note: sync_bn: %d norm layers share batch statistics across the %d processes",
                count,
                self.world_size,
            )
        else:
            logger.info(
                "note: sync_bn: Paddle has no CPU sync_batch_norm kernel; the %d SyncBN layers "
                "use each process's own batch statistics (BatchNorm per process)",
                count,
            )

    def _resume_prefix(self, resume: str | None) -> str | None:
        """The checkpoint prefix to resume from: ``resume`` itself, or with ``"auto"`` the
        latest complete checkpoint of the run folder (None when there is none yet)."""
        if not resume:
            return None
        folder = self.output_dir if resume == "auto" else resume
        if os.path.isdir(folder) and self.is_main:
            checkpoint.remove_partial_writes(folder)  # temp files of a killed run
        if resume != "auto":
            return checkpoint.resolve_resume(resume)
        prefix = checkpoint.latest_checkpoint(folder) if os.path.isdir(folder) else None
        if prefix is None and self.is_main:
            print(f"--resume auto: no complete checkpoint in {folder}; starting a new run")
        return prefix

    def train(self, validate: bool = False, resume: str | None = None) -> dict:
        """Train for the configured schedule; returns the last eval metrics (if validating).

        ``resume``: a checkpoint prefix or file, a run folder (its latest complete
        checkpoint), or ``"auto"`` (the latest complete checkpoint of ``output_dir`` if any).
        """
        from ppdet.data.loader import build_dataset, build_loader, set_loader_epoch
        from ppdet.engine.optim import build_lr, build_optimizer
        from ppdet.engine.schedule import plan_schedule

        cfg = self.cfg
        accumulate = self._accumulate_steps()
        dataset = build_dataset(cfg, "train")
        loader = build_loader(
            cfg, "train", dataset, distributed=self.world_size > 1, accumulate_steps=accumulate
        )
        steps_per_epoch = len(loader) // accumulate
        sampler = loader.batch_sampler
        if steps_per_epoch == 0:
            raise ConfigError(
                f"{cfg.source_of('TrainReader') if hasattr(cfg, 'source_of') else 'config'}: "
                f"TrainReader.batch_size: the training set ({len(dataset)} images) gives no "
                f"full batch of {sampler.global_batch_size} (batch_size x processes x "
                "accumulate_steps); lower batch_size or set drop_last: false"
            )
        plan = plan_schedule(
            cfg, sampler.batch_size, self.world_size, accumulate, self.scale_schedule
        )
        if self.is_main:
            print(plan.message, flush=True)
        if plan.max_iters:
            total, epoch_based = int(plan.max_iters), False
            epochs = math.ceil(total / steps_per_epoch)
        else:
            epochs, epoch_based = int(cfg.get("epoch") or 1), True
            total = epochs * steps_per_epoch
        lr = build_lr(plan.learning_rate, steps_per_epoch, epoch_based)
        optimizer = build_optimizer(cfg.get("OptimizerBuilder") or {}, lr, self.model)
        self._trainable = [p for p in self.model.parameters() if not p.stop_gradient]
        self._note_sync_bn()

        self.ema = (
            ModelEMA(self.model, float(cfg.get("ema_decay", 0.9998)))
            if cfg.get("use_ema")
            else None
        )
        start_iter, best = 0, -math.inf
        prefix = self._resume_prefix(resume)
        if prefix:
            state = checkpoint.load_checkpoint(prefix, self.model, optimizer, self.ema)
            start_iter = int(state["iteration"])
            extra = state.get("extra") or {}
            best = float(extra.get("best", -math.inf))
            self.amp.set_state_dict(extra.get("amp") or {})
            hook_states = extra.get("hooks") or {}
            for hook in self.hooks:
                hook.set_state_dict(hook_states.get(hook.name) or {})
            if self.is_main:
                print(
                    f"resumed from {prefix} at iteration {start_iter} (lr {optimizer.get_lr():.6g})"
                )
        elif cfg.get("pretrain_weights"):
            self._load_pretrained(cfg["pretrain_weights"])
            if self.ema is not None:
                self.ema = ModelEMA(self.model, self.ema.decay)

        distributed.broadcast_state(self.model)  # rank 0's weights everywhere
        logger_ = TrainLogger(
            total,
            int(cfg.get("log_iter", 20)),
            vdl_dir=cfg.get("vdl_log_dir", os.path.join(self.output_dir, "vdl"))
            if self.use_vdl and self.is_main
            else None,
            history=TrainingHistory(self.output_dir, resume_from=start_iter if prefix else None)
            if self.is_main
            else None,
        )
        config_text = dump_config(cfg)
        snapshot_epoch = int(cfg.get("snapshot_epoch", 1))
        snapshot_iter = plan.snapshot_iter or (None if epoch_based else max(1, total // 10))
        metrics, last_saved = {}, None

        iteration = start_iter
        start_epoch = start_iter // steps_per_epoch
        self.model.train()
        self._stop = StopRequest()  # SIGTERM / Ctrl-C: finish the step, save, exit
        self._stop_now = False
        with self._stop:
            for epoch in range(start_epoch, epochs):
                first = start_iter - epoch * steps_per_epoch if epoch == start_epoch else 0
                set_loader_epoch(loader, epoch, first)
                batches = iter(loader)
                tic = time.time()
                for step in range(first, steps_per_epoch):
                    micro_batches = [next(batches) for _ in range(accumulate)]
                    data_time = time.time() - tic
                    losses = self._train_step(micro_batches, optimizer, lr, iteration, last_saved)
                    iteration += 1
                    self.iteration = iteration
                    if self.is_main:
                        logger_.step(
                            epoch, epochs, iteration, optimizer.get_lr(), losses, data_time
                        )
                    ends_epoch = step + 1 == steps_per_epoch
                    due = snapshot_iter and iteration % snapshot_iter == 0
                    if (due and not (epoch_based and ends_epoch)) or (
                        not epoch_based and iteration == total
                    ):
                        metrics, best = self._maybe_validate(
                            validate, iteration, metrics, best, logger_
                        )
                        last_saved = self._save(
                            f"iter_{iteration}", optimizer, epoch, iteration, config_text, best
                        )
                    if self._stop_now:
                        self._stop_after(
                            iteration, total, last_saved, optimizer, epoch, config_text, best
                        )
                    tic = time.time()
                    if iteration >= total:
                        break
                del batches  # ends its worker processes before the next epoch's start
                if epoch_based and ((epoch + 1) % snapshot_epoch == 0 or epoch + 1 == epochs):
                    metrics, best = self._maybe_validate(
                        validate, iteration, metrics, best, logger_
                    )
                    last_saved = self._save(
                        f"epoch_{epoch + 1}", optimizer, epoch + 1, iteration, config_text, best
                    )
                if iteration >= total:
                    break
        if self.is_main:
            path = checkpoint.save_weights(
                self.model, os.path.join(self.output_dir, "model_final"), self.ema
            )
            curves = logger_.history.draw() if logger_.history is not None else None
            print(f"training done: {iteration} iterations; final weights {path}")
            if curves:
                print(f"training curves: {curves}")
        return metrics

    def _losses(self, batch: dict) -> dict:
        """The named losses of ``batch``: the forward under autocast, its raw outputs cast to
        float32, then ``model.loss`` in float32."""
        with self.amp.autocast():
            raw = self.model(batch)
        return self.model.loss(to_float32(raw), batch)

    def _train_step(
        self, micro_batches: list[dict], optimizer, lr, done: int, last_saved: str | None
    ) -> dict:
        """Optimizer step ``done + 1`` over the micro-batches; returns the loss values (mean
        over micro-batches and processes). ``lr`` is the per-iteration scheduler."""
        # the model's randomness (Paddle's generator: RoI sampling, dropout) is a function of
        # the step; NumPy's and Python's global generators belong to the data pipeline, whose
        # loader thread seeds them per sample (data/sampler.py), so they are left alone here
        paddle.seed(derive_seed(self.seed, _STEP_STREAM, done, self.rank))
        k = len(micro_batches)
        sums: dict[str, float] = {}
        for batch in micro_batches:
            for hook in self.hooks:
                batch = hook.before_batch(batch)
            outputs = self._losses(batch)
            self.amp.backward(outputs["loss"] / k)  # gradients add up over micro-batches
            for name, value in outputs.items():
                if name.startswith("loss"):
                    sums[name] = sums.get(name, 0.0) + float(value.item()) / k
            for hook in self.hooks:
                hook.after_batch(outputs)
        names = sorted(sums)
        # the stop request rides along: every process stops after the same step
        stop = float(self._stop is not None and self._stop.requested)
        *reduced, stops = distributed.all_reduce_sum([sums[n] for n in names] + [stop])
        self._stop_now = stops > 0
        values = {n: v / self.world_size for n, v in zip(names, reduced, strict=True)}
        if not all(math.isfinite(v) for v in values.values()):
            named = ", ".join(f"{k}={v}" for k, v in values.items())
            kept = (
                f"last good checkpoint: {last_saved}"
                if last_saved
                else "no checkpoint was saved yet"
            )
            raise TrainingDiverged(
                f"loss is not finite at iteration {done + 1} ({named}); {kept}; try a lower learning rate"
            )
        distributed.average_gradients(self._trainable)
        self.amp.step(optimizer)
        optimizer.clear_grad()
        lr.step()
        if self.ema is not None:
            self.ema.update(self.model)
        for hook in self.hooks:
            hook.after_step(done + 1)
        return values

    def _stop_after(
        self, iteration, total, last_saved, optimizer, epoch, config_text, best
    ) -> None:
        """A stop was requested (SIGTERM / Ctrl-C here or in another process): write the
        checkpoint of ``iteration`` unless it was just written, then raise TrainingStopped."""
        prefix = os.path.join(self.output_dir, f"iter_{iteration}")
        if last_saved != prefix:
            prefix = self._save(f"iter_{iteration}", optimizer, epoch, iteration, config_text, best)
        if self.world_size > 1:  # no process exits before rank 0 has written the checkpoint
            distributed.all_reduce_sum([0.0])
        raise TrainingStopped(
            f"training stopped on request after iteration {iteration}/{total}; checkpoint "
            f"{prefix}; continue with the same command and --resume auto",
            self._stop.exit_status,
        )

    def _save(
        self, name: str, optimizer, epoch: int, iteration: int, config_text: str, best: float
    ) -> str:
        """Write a resumable checkpoint (rank 0); ``best`` (the best eval metric so far), the
        loss scaler and the hooks' states go into it."""
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
                extra={
                    "best": best,
                    "amp": self.amp.state_dict(),
                    "hooks": {hook.name: hook.state_dict() for hook in self.hooks},
                },
            )
            print(f"saved checkpoint {prefix}")
        return prefix

    def _maybe_validate(
        self, validate: bool, iteration: int, metrics: dict, best: float, logger_
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
            logger_.scalars("eval", metrics, iteration)
            if value > best:
                checkpoint.save_weights(
                    self.model, os.path.join(self.output_dir, "best_model"), self.ema
                )
                print(
                    f"best {key} so far: {value:.4f}; saved {os.path.join(self.output_dir, 'best_model')}.pdparams"
                )
        return metrics, max(best, value)

    def _load_pretrained(self, path: str) -> None:
        if self.is_main:
            print(f"fine-tuning from {path} (parameters that do not fit are skipped)")
        load_weights(self.model, path, strict=False, quiet=not self.is_main)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, classwise: bool = False) -> dict:
        """Run the EvalDataset through the model and score it with ``metric``.

        In a multi-process run each process evaluates every world_size-th batch and rank 0
        scores the gathered detections: the numbers of a single process; every process
        returns them. classwise: also print one AP per class and draw each class's
        precision-recall curve into ``<output_dir>/pr_curves_<k>.png``.
        """
        from ppdet.data.loader import build_dataset, build_loader
        from ppdet.evaluation import build_evaluator
        from ppdet.evaluation.coco_eval import split_masks
        from ppdet.evaluation.distributed import merge_shards, share

        if self._eval_data is None:
            dataset = build_dataset(self.cfg, "eval")
            loader = build_loader(self.cfg, "eval", dataset, distributed=self.world_size > 1)
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
        metrics = {}
        if merge_shards(evaluator):
            metrics = evaluator.accumulate()
            metrics["primary_metric"] = evaluator.primary_metric
            self._report(metrics, evaluator, dataset, classwise)
        return share(metrics)

    def _report(self, metrics: dict, evaluator, dataset, classwise: bool) -> None:
        """Print the summary line, write eval_metrics.json and the PR curves (rank 0)."""
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
