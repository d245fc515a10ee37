"""The torch Dataset of view lists, its collate function and a sampler that batches equal view counts.

A sample is a list of V view dicts (V = 4 x agents, see docs/views.md). Batching design: **bucketing, no
padding of views**: :class:`BucketBatchSampler` only puts samples with the same V in a batch, so every batch is
a plain list of V view dicts with a leading batch dimension, exactly what MapAnything consumes. The only padded
tensors are the per-sample boxes (``boxes_*``, padded to the largest box count of the batch; ``boxes_id`` = -1
and identity poses mark padding, ``boxes_count`` gives the real number).

Failures: a sample whose files are missing or malformed raises :class:`DataError` naming the file; any other
exception while loading it is re-raised as a DataError naming the sample (scenario, timestamp, ego, agents).
Loader workers must not raise them (torch re-raises a worker's exception as a multi-line RuntimeError), so the
loaders wrap the dataset in :class:`TolerantViews`, whose failures travel back as :class:`LoadFailure` data: the
training loop skips and records them, :func:`make_loader` stops with the DataError in the calling process. A
worker that dies (killed, segfault) is reported by :func:`worker_died_error` with the samples it may have held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from coopmap.data.index import DatasetIndex, build_index
from coopmap.data.samples import SampleKey, select_samples
from coopmap.data.views import BOX_KEYS, ViewOptions, build_views
from coopmap.errors import ConfigError, DataError

__all__ = ["ViewsDataset", "collate_views", "BucketBatchSampler", "make_loader", "SampleRecord", "LoadFailure",
           "TolerantViews", "collate_tolerant", "worker_died_error", "ViewsLoader"]


@dataclass(frozen=True)
class SampleRecord:
    """What ``ViewsDataset.keys[i]`` tells about sample i without loading it."""

    scenario: str
    timestamp: str
    ego_id: str
    mode: str
    agent_ids: tuple[str, ...]
    n_views: int


class ViewsDataset(Dataset):
    """Samples of one split of an OPV2V tree as lists of MapAnything view dicts.

    Args:
        data_cfg: a ``DataConfig`` (or the ``data`` node of a composed config).
        split: the split folder (default ``data_cfg.split``).
        index: a prebuilt :class:`~coopmap.data.index.DatasetIndex` (default: scanned / loaded from cache).
    """

    def __init__(self, data_cfg, split: str | None = None, index: DatasetIndex | None = None,
                 progress: bool = False):
        self.split = split or data_cfg.split
        self.options = ViewOptions.from_config(data_cfg)
        self.index = index if index is not None else build_index(
            data_cfg.root, use_cache=bool(getattr(data_cfg, "cache_index", True)), progress=progress)
        self._samples: list[SampleKey] = select_samples(self.index, self.split, data_cfg.mode,
                                                        data_cfg.ego_policy, data_cfg.com_range, data_cfg.max_cav)
        if not self._samples:
            found = ", ".join(self.index.splits) or "none"
            raise DataError(f"{self.index.root}/{self.split}", f"no usable sample in split '{self.split}' "
                                                               f"(splits with data: {found}; "
                                                               f"{len(self.index.problems)} problem(s) in the index)")
        self._scenarios = {(s.split, s.name): s for s in self.index.scenarios}
        self.keys = [SampleRecord(k.scenario, k.timestamp, k.ego_id, k.mode, k.agent_ids, k.n_views)
                     for k in self._samples]

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def n_views(self) -> list[int]:
        """Number of views of every sample (for bucketing)."""
        return [k.n_views for k in self._samples]

    def __getitem__(self, i: int) -> list[dict]:
        key = self._samples[i]
        scen = self._scenarios[(key.split, key.scenario)]
        try:
            return build_views(scen, key, self.options, idx=int(i))
        except (DataError, ConfigError):
            raise
        except Exception as err:  # an error no reader mapped to DataError: name the sample
            raise DataError(scen.path, f"sample {self.describe(i)}: {type(err).__name__}: {err}") from err

    def describe(self, i: int) -> str:
        """``<scenario>/<timestamp> ego <id> (<mode>, agents <ids>)``: the identifiers of sample i."""
        k = self._samples[i]
        return f"{k.scenario}/{k.timestamp} ego {k.ego_id} ({k.mode}, agents {','.join(k.agent_ids)})"


@dataclass(frozen=True)
class LoadFailure:
    """A sample that failed to load: its dataset index, the offending file (or sample folder) and the reason."""

    index: int
    path: str
    reason: str

    def error(self) -> DataError:
        return DataError(self.path, self.reason)


class TolerantViews(Dataset):
    """``dataset[i]``, or a :class:`LoadFailure` when that raises DataError (picklable, so it crosses workers)."""

    def __init__(self, dataset: ViewsDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> list[dict] | LoadFailure:
        try:
            return self.dataset[i]
        except DataError as err:
            return LoadFailure(int(i), err.path, err.reason)


def collate_tolerant(samples: Sequence[list[dict] | LoadFailure]) -> tuple[list[dict] | None, list[LoadFailure]]:
    """(collated views of the samples that loaded, or None if none did; the failures)."""
    failures = [s for s in samples if isinstance(s, LoadFailure)]
    good = [s for s in samples if not isinstance(s, LoadFailure)]
    return (collate_views(good) if good else None), failures


def worker_died_error(err: BaseException, dataset: ViewsDataset, pending: Sequence[Sequence[int]]) -> DataError | None:
    """The DataError to raise for a loader worker that died (None when ``err`` is something else).

    ``pending``: the batches (dataset indices) the loader had not delivered yet, in order; the dead worker held
    one of the first ``num_workers x prefetch_factor`` of them, which the message lists.
    """
    text = str(err)
    if "DataLoader worker (pid" not in text:
        return None
    names = [dataset.describe(i) for batch in pending for i in batch]
    shown = "; ".join(names[:8]) + (f"; ... ({len(names) - 8} more)" if len(names) > 8 else "")
    return DataError(f"{dataset.index.root}/{dataset.split}",
                     f"a data loader worker died ({text.splitlines()[0].strip()}) while loading one of these "
                     f"samples: {shown or 'unknown'}; rerun with data.num_workers=0 to see which fails")


def iterate_reporting_worker_death(loader, dataset: ViewsDataset,
                                   pending: Callable[[int], Sequence[Sequence[int]]]) -> Iterator:
    """Iterate ``loader``; if one of its worker processes dies, raise a DataError naming the samples it may have held.

    ``pending(done)``: the batches (dataset indices) not yet delivered after ``done`` batches, in order; only the
    first ``num_workers x prefetch_factor`` of them can have been in the dead worker's hands.
    """
    done = 0
    try:
        for item in loader:
            done += 1
            yield item
    except RuntimeError as err:
        ahead = max(1, loader.num_workers) * (loader.prefetch_factor or 1)
        died = worker_died_error(err, dataset, list(pending(done))[:ahead])
        if died is None:
            raise
        raise died from err


def views_to_device(views: Sequence[Mapping], device: torch.device | str) -> list[dict]:
    """Copies of the views with every tensor moved to ``device`` (strings and lists untouched)."""
    return [{k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in view.items()}
            for view in views]


def _pad_boxes(values: list[torch.Tensor], key: str, n_max: int) -> torch.Tensor:
    out = []
    for v in values:
        pad = n_max - v.shape[0]
        if pad:
            if key == "boxes_pose":
                filler = torch.eye(4, dtype=v.dtype).expand(pad, 4, 4)
            elif key == "boxes_id":
                filler = torch.full((pad,), -1, dtype=v.dtype)
            else:
                filler = torch.zeros((pad,) + tuple(v.shape[1:]), dtype=v.dtype)
            v = torch.cat([v, filler], 0)
        out.append(v)
    return torch.stack(out)


def collate_views(samples: Sequence[list[dict]]) -> list[dict]:
    """Stack B samples of V views into V batched view dicts (MapAnything's batch format).

    Tensors are stacked along a new first dim; str values become lists (``data_norm_type`` -> ``["dinov2", ...]``);
    ``boxes_*`` are padded to the batch's largest box count. All samples must have the same V.
    """
    if not samples:
        raise ValueError("collate_views: empty batch")
    counts = sorted({len(s) for s in samples})
    if len(counts) > 1:
        raise ValueError(f"collate_views: samples have different numbers of views {counts}; batch them with "
                         "BucketBatchSampler (equal view counts per batch)")
    n_max = max(int(s[0]["boxes_count"]) for s in samples) if "boxes_count" in samples[0][0] else 0
    batch = []
    for v in range(counts[0]):
        views = [s[v] for s in samples]
        out: dict[str, object] = {}
        for key, first in views[0].items():
            values = [view[key] for view in views]
            if key in BOX_KEYS:
                out[key] = _pad_boxes(values, key, n_max)
            elif isinstance(first, torch.Tensor):
                out[key] = torch.stack(values)
            else:
                out[key] = list(values)
        batch.append(out)
    return batch


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose samples have the same number of views.

    Deterministic given (seed, epoch): shuffling permutes within each view-count bucket, then the batch order.
    With ``world_size > 1`` the batch list is padded (repeating its start) to a multiple of ``world_size`` and
    rank r takes batches r, r + world_size, ... (every rank gets the same number of batches).
    """

    def __init__(self, n_views: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.n_views = list(n_views)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        buckets: dict[int, list[int]] = {}
        for i, v in enumerate(self.n_views):
            buckets.setdefault(v, []).append(i)
        batches = []
        for v in sorted(buckets):
            idx = np.asarray(buckets[v])
            if self.shuffle:
                idx = rng.permutation(idx)
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size].tolist()
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        else:
            batches.sort(key=lambda b: b[0])
        if self.world_size > 1 and batches:
            short = -len(batches) % self.world_size
            batches = (batches + batches[:short])[self.rank::self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class ViewsLoader:
    """Iterates a DataLoader of :func:`collate_tolerant` batches; the first failure is raised as its DataError
    in the calling process (one clear line), a dead worker as :func:`worker_died_error`. Other attributes
    (``dataset``, ``batch_sampler``, ...) are the DataLoader's."""

    def __init__(self, loader: DataLoader, dataset: ViewsDataset):
        self.loader, self.views_dataset = loader, dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["loader"], name)

    def __iter__(self) -> Iterator[list[dict]]:
        batches = list(self.loader.batch_sampler)
        done = 0
        try:
            for batch, failures in self.loader:
                if failures:
                    raise failures[0].error()
                done += 1
                yield batch
        except RuntimeError as err:
            ahead = max(1, self.loader.num_workers) * (self.loader.prefetch_factor or 1)
            died = worker_died_error(err, self.views_dataset, batches[done:done + ahead])
            if died is None:
                raise
            raise died from err


def init_loader_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one BLAS thread per loading process.

    Parallelism comes from the workers; numpy's OpenBLAS would otherwise start one thread per core in every worker,
    and those spin on each small (N, 3) @ (3, 3) transform of the view assembly, taking cores from the other
    workers and the training step (measured: 2 workers on 2 cores, coop 518x392: 15-23 views/s without, 25-30 with).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def make_loader(data_cfg, split: str | None = None, shuffle: bool = True, seed: int = 0,
                batch_size: int | None = None, num_workers: int | None = None, drop_last: bool = False,
                rank: int = 0, world_size: int = 1, dataset: ViewsDataset | None = None) -> ViewsLoader:
    """An iterable of collated view lists for ``split`` (bucketed by view count, see module doc); a sample that
    fails to load stops it with that sample's DataError (raised here, not in a worker)."""
    ds = dataset if dataset is not None else ViewsDataset(data_cfg, split)
    sampler = BucketBatchSampler(ds.n_views, batch_size or int(data_cfg.batch_size), shuffle, seed, drop_last,
                                 rank, world_size)
    workers = int(data_cfg.num_workers) if num_workers is None else int(num_workers)
    loader = DataLoader(TolerantViews(ds), batch_sampler=sampler, collate_fn=collate_tolerant, num_workers=workers,
                        persistent_workers=workers > 0, worker_init_fn=init_loader_worker if workers > 0 else None)
    return ViewsLoader(loader, ds)
