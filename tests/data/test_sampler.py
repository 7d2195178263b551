"""Batch samplers and per-sample seeding: a step's data does not depend on how the total
batch is split over processes and accumulation steps, nor on where a pass starts."""

from __future__ import annotations

import numpy as np
import pytest

from ppdet.data import build_dataset, build_loader, set_loader_epoch
from ppdet.data.sampler import EvalBatchSampler, TrainBatchSampler, derive_seed

from .conftest import coco_cfg


def steps(size, batch, world=1, accumulate=1, epoch=0, start=0, **kw):
    """Per optimizer step: the set of indices over all ranks and micro-batches, in a sorted
    tuple, and the micro-batches of each rank."""
    per_rank = []
    for rank in range(world):
        sampler = TrainBatchSampler(
            size, batch, world_size=world, rank=rank, accumulate_steps=accumulate, seed=7, **kw
        )
        sampler.set_epoch(epoch, start)
        per_rank.append(list(sampler))
        assert len(per_rank[-1]) == len(sampler) - start * accumulate
    n_steps = len(per_rank[0]) // accumulate
    assert all(len(r) == len(per_rank[0]) for r in per_rank)  # same steps on every rank
    merged = []
    for s in range(n_steps):
        items = [i for r in per_rank for b in r[s * accumulate : (s + 1) * accumulate] for i in b]
        merged.append(tuple(sorted(items)))
    return merged, per_rank


def test_a_step_holds_the_same_images_for_any_split_of_the_total_batch():
    one, _ = steps(24, 8)
    two, per_rank = steps(24, 4, world=2)
    accumulated, _ = steps(24, 2, world=2, accumulate=2)
    assert one == two == accumulated and len(one) == 3
    assert all(len(b) == 4 for r in per_rank for b in r)
    assert sorted(i for s in one for i in s) == list(range(24))  # each image once per epoch


def test_order_is_seeded_per_epoch():
    first, _ = steps(20, 4)
    again, _ = steps(20, 4)
    other, _ = steps(20, 4, epoch=1)
    assert first == again and first != other
    plain, _ = steps(8, 2, shuffle=False)
    assert plain == [(0, 1), (2, 3), (4, 5), (6, 7)]


def test_resume_starts_at_the_global_batch():
    full, _ = steps(30, 3, world=2)
    later, _ = steps(30, 3, world=2, start=2)
    assert later == full[2:]


@pytest.mark.parametrize("drop_last", [True, False])
def test_a_short_last_batch_is_dropped_or_padded_evenly(drop_last):
    merged, per_rank = steps(11, 2, world=2, drop_last=drop_last)  # global batch 4
    if drop_last:
        assert len(merged) == 2 and all(len(b) == 2 for r in per_rank for b in r)
    else:
        assert len(merged) == 3  # the 3 images left are padded to 4: 2 per rank
        assert [len(r[-1]) for r in per_rank] == [2, 2]
        seen = {i for s in merged for i in s}
        assert seen == set(range(11))


def test_aspect_ratio_grouping_keeps_orientations_apart():
    landscape = [i % 3 != 0 for i in range(24)]  # 16 landscape, 8 portrait
    merged, _ = steps(24, 2, world=2, landscape=landscape, drop_last=True)
    assert len(merged) == 6
    for step in merged:
        assert len({landscape[i] for i in step}) == 1


def test_eval_batches_are_dealt_round_robin_in_order():
    samplers = [EvalBatchSampler(7, 2, world_size=2, rank=r) for r in range(2)]
    batches = [list(s) for s in samplers]
    assert batches == [[[0, 1], [4, 5]], [[2, 3], [6]]]
    assert [samplers[1].batch_index(k) for k in range(len(samplers[1]))] == [1, 3]
    assert len(samplers[0]) == 2 and len(EvalBatchSampler(7, 2, world_size=3, rank=2)) == 1


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, e, i) for e in range(3) for i in range(50)}) == 150


def images_of(loader, epoch, start=0):
    set_loader_epoch(loader, epoch, start)
    return [b["image"].numpy() for b in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_augmentation_is_a_function_of_seed_epoch_and_index(tiny_coco, num_workers):
    """RandomFlip + a random batch resize: the same batches whether the pass starts at the
    beginning or mid-epoch, whatever ran before; another epoch differs."""
    reader = {
        "batch_size": 2,
        "num_workers": num_workers,
        "batch_transforms": [
            {"BatchRandomResize": {"target_size": [48, 64, 80], "keep_ratio": False}}
        ],
    }
    cfg = coco_cfg(tiny_coco, **reader)
    loader = build_loader(cfg, "train", build_dataset(cfg, "train"))
    full = images_of(loader, 0)
    np.random.seed(123)  # whatever the global generators did before
    assert all(np.array_equal(a, b) for a, b in zip(images_of(loader, 0, start=1), full[1:]))
    second_epoch = images_of(loader, 1)
    assert len(second_epoch) == 3
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(second_epoch, full))
