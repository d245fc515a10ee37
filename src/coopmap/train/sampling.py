"""A deterministic, resumable, sharded batch order with bucketing by number of views.

The order of an epoch depends only on ``(seed, epoch)``: samples are shuffled, grouped into *global* batches of
``batch_size * world_size`` samples that share a bucket (the number of views, so each batch collates without
padding views), and the global batches are shuffled. Rank r takes slice ``[r*batch_size, (r+1)*batch_size)`` of
every global batch, so N ranks with batch b see exactly what one process with batch N*b sees, and every rank takes
the same number of steps (DDP stays in lockstep). The position (epoch, batch) is part of the checkpoint, so a
resumed run continues with the very next batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class ResumableBatchSampler:
    """Batches of dataset indices for one rank.

    Args:
        buckets: per dataset index, its bucket key (e.g. the number of views of that sample).
        batch_size: samples per batch on this rank.
        seed: the run seed; epoch e uses ``seed + e``.
        shuffle: shuffle within buckets and the batch order (False: dataset order, for evaluation).
        rank, world_size: this process and the number of processes.
        drop_last: drop incomplete global batches (default); otherwise they are kept when complete per rank.
    """

    def __init__(
        self,
        buckets: Sequence[int],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad sampler setup: batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.buckets = np.asarray(buckets, dtype=np.int64)
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start_batch = 0, 0

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """Every global batch of ``epoch`` (batch_size * world_size indices each, one bucket each)."""
        rng = np.random.default_rng(self.seed + epoch)
        size = self.batch_size * self.world_size
        batches: list[np.ndarray] = []
        for key in np.unique(self.buckets):
            idx = np.flatnonzero(self.buckets == key)
            if self.shuffle:
                idx = rng.permutation(idx)
            for start in range(0, len(idx), size):
                chunk = idx[start:start + size]
                if len(chunk) == size or not self.drop_last and len(chunk) % self.world_size == 0:
                    batches.append(chunk)
        if self.shuffle:
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    def __len__(self) -> int:
        return len(self.global_batches(self.epoch))

    def set_position(self, epoch: int, start_batch: int) -> None:
        """Continue at global batch ``start_batch`` of ``epoch`` (from a checkpoint)."""
        self.epoch, self.start_batch = epoch, start_batch

    def rank_batches(self, epoch: int, start: int = 0) -> list[list[int]]:
        """This rank's batches of ``epoch`` from global batch ``start`` on."""
        out = []
        for batch in self.global_batches(epoch)[start:]:
            per_rank = len(batch) // self.world_size
            out.append(batch[self.rank * per_rank:(self.rank + 1) * per_rank].tolist())
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches(self.epoch, self.start_batch)
        self.start_batch = 0
