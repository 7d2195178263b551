"""Batch samplers: which dataset indices make each batch of each process.

Training (``TrainBatchSampler``): the order of a run is a function of (seed, epoch) only,
not of the number of processes. Each step consumes one *global batch* of
``T = batch_size * world_size * accumulate_steps`` consecutive indices of the epoch's
permutation; process ``rank`` trains on ``accumulate_steps`` micro-batches of it:

    global batch j = perm[j*T : (j+1)*T]
    micro-batch m of rank r = global[(m*world_size + r)*batch_size : ... + batch_size]

so 1 process with batch 8, 2 processes with batch 4 and 1 process with batch 4 x 2
accumulation steps see the same 8 images in every step. Together with per-sample seeding
(``DetDataset.set_seed``: the augmentation of sample i in epoch e depends on (seed, e, i) only)
a step's data is the same for any split of the total batch, and a resumed run starts
mid-epoch at the exact global batch (``set_epoch(epoch, start)``) without loading the ones
before it.

With ``drop_last`` false the epoch's last, short global batch is padded from the start of
the permutation to a multiple of world_size * accumulate_steps and split evenly, so every
process makes the same number of steps (each step all-reduces the gradients).

``aspect_ratio_grouping``: global batches hold only landscape (w >= h) or only portrait
images (less padding with PadBatch): each group is cut into global batches separately, and
the batches of both groups are shuffled together.

Evaluation (``EvalBatchSampler``): the single-process batches, in order, dealt round-robin
(batch j to rank j % world_size), so every batch and therefore every detection is the one a
single process makes; ``batch_index(k)`` gives the global position of this rank's k-th batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["EvalBatchSampler", "TrainBatchSampler", "derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed from non-negative integers (e.g. seed, epoch, sample index); distinct
    tuples give independent streams (numpy's SeedSequence)."""
    entropy = [int(p) % 2**63 for p in parts]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class TrainBatchSampler:
    """Per-process micro-batches of the epoch's global batches (see the module docstring).

    Args:
        size: number of samples in the dataset.
        batch_size: images per micro-batch per process.
        world_size, rank: processes of the run and this one's index.
        accumulate_steps: micro-batches per optimizer step.
        shuffle: permute per epoch (seeded by ``seed`` and the epoch) or keep dataset order.
        drop_last: leave out the epoch's last short global batch.
        seed: the run's seed.
        landscape: per sample, True when w >= h; enables aspect-ratio grouping.

    ``len()`` = micro-batches per epoch for this process = global batches * accumulate_steps.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        accumulate_steps: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        landscape: Sequence[bool] | None = None,
    ) -> None:
        if batch_size < 1 or world_size < 1 or accumulate_steps < 1:
            raise ValueError("batch_size, world_size and accumulate_steps must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.accumulate_steps = int(accumulate_steps)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.landscape = None if landscape is None else np.asarray(landscape, bool)
        if self.landscape is not None and len(self.landscape) != self.size:
            raise ValueError("landscape needs one flag per sample")
        self.epoch = 0
        self.start = 0

    @property
    def global_batch_size(self) -> int:
        """Images per optimizer step over all processes."""
        return self.batch_size * self.world_size * self.accumulate_steps

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its global batch ``start`` (resume mid-epoch)."""
        self.epoch = int(epoch)
        self.start = int(start)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.RandomState(derive_seed(self.seed, self.epoch)).permutation(self.size)

    def global_batches(self) -> list[np.ndarray]:
        """The epoch's global batches (index arrays of T, the last maybe padded)."""
        order = self._order()
        if self.landscape is None:
            return self._cut(order, order)
        batches = []
        for flag in (True, False):
            group = order[self.landscape[order] == flag]
            batches += self._cut(group, order)
        if self.shuffle and len(batches) > 1:  # both groups' batches interleaved
            rng = np.random.RandomState(derive_seed(self.seed, self.epoch, 1))
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _cut(self, indices: np.ndarray, fill_from: np.ndarray) -> list[np.ndarray]:
        total = self.global_batch_size
        full = len(indices) // total
        batches = [indices[j * total : (j + 1) * total] for j in range(full)]
        rest = indices[full * total :]
        if len(rest) and not self.drop_last:
            parts = self.world_size * self.accumulate_steps
            missing = -len(rest) % parts
            pad = np.resize(fill_from, missing) if missing else rest[:0]  # wraps around
            batches.append(np.concatenate([rest, pad]))
        return batches

    def __len__(self) -> int:
        if self.landscape is None:
            groups = [self.size]
        else:
            groups = [int(self.landscape.sum()), int((~self.landscape).sum())]
        total = self.global_batch_size
        count = sum(n // total if self.drop_last else math.ceil(n / total) for n in groups)
        return count * self.accumulate_steps

    def __iter__(self) -> Iterator[list[int]]:
        parts = self.world_size * self.accumulate_steps
        for batch in self.global_batches()[self.start :]:
            per = len(batch) // parts  # images per micro-batch (batch_size except at the end)
            for m in range(self.accumulate_steps):
                first = (m * self.world_size + self.rank) * per
                yield batch[first : first + per].tolist()


class EvalBatchSampler:
    """The single-process batches of the dataset order, batch j to rank j % world_size."""

    def __init__(self, size: int, batch_size: int, *, world_size: int = 1, rank: int = 0):
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.shuffle = False
        self.drop_last = False

    def num_batches(self) -> int:
        """Batches over all processes."""
        return math.ceil(self.size / self.batch_size)

    def batch_index(self, k: int) -> int:
        """Global position of this rank's k-th batch."""
        return k * self.world_size + self.rank

    def __len__(self) -> int:
        return len(range(self.rank, self.num_batches(), self.world_size))

    def __iter__(self) -> Iterator[list[int]]:
        for j in range(self.rank, self.num_batches(), self.world_size):
            yield list(range(j * self.batch_size, min((j + 1) * self.batch_size, self.size)))
