"""Operator base classes and the two pipelines: per sample and per batch.

A sample is a dict (see docs/contracts.md); an operator takes it, changes it in place and
returns it. A batch operator takes and returns a list of samples. ``BatchCompose`` also accepts
plain sample operators and maps them over the batch, so ``NormalizeImage``/``Permute`` may run
after a batch-level resize, as in PaddleDetection configs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Sample = dict


class BaseOperator:
    """A sample-level transform: ``op(sample) -> sample``."""

    is_batch_op = False

    def __call__(self, sample: Sample) -> Sample:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class BatchOperator(BaseOperator):
    """A batch-level transform: ``op(samples) -> samples`` (a list of sample dicts)."""

    is_batch_op = True

    def __call__(self, samples: list[Sample]) -> list[Sample]:  # type: ignore[override]
        raise NotImplementedError


class Compose:
    """Apply sample operators in order: ``Compose([Decode(), Resize(320)])(record)``."""

    def __init__(self, ops: Sequence[Callable[[Sample], Sample]]) -> None:
        self.ops = list(ops)

    def __call__(self, sample: Sample) -> Sample:
        for op in self.ops:
            sample = op(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.ops!r})"


class BatchCompose:
    """Apply batch operators in order; sample operators in the list run on every sample."""

    def __init__(self, ops: Sequence[Callable]) -> None:
        self.ops = list(ops)

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        for op in self.ops:
            if getattr(op, "is_batch_op", False):
                samples = op(samples)
            else:
                samples = [op(s) for s in samples]
        return samples

    def __repr__(self) -> str:
        return f"BatchCompose({self.ops!r})"
