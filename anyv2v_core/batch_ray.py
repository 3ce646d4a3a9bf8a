"""``anyv2v batch --ray``: the items of a manifest spread over the workers of a Ray cluster.

One worker **actor** per worker (``num_gpus=gpus_per_worker``, ``num_cpus=cpus_per_worker``)
runs items one at a time through :class:`anyv2v_core.batch.ItemRunner`, the code of the
serial run: it keeps one loaded backbone (its current ``(backbone, model, backbone options)`` group, dropped
when it moves to another group) and its editors. The driver alone reads and appends
``results.jsonl`` (the serial run's records plus ``"worker"``), so outputs, records and the
resume rule are those of :func:`anyv2v_core.batch.run_batch`. Items are handed out one at a
time, sorted by group: a free worker takes the next item of its own group, else of the first
group with items left. A failing item, or a worker process dying under one, is recorded as
failed and the others go on (a dead worker is replaced). ``KeyboardInterrupt`` kills the
workers and propagates.

Paths are sent as absolute paths: on several machines, sources, outputs, models and the
inversion cache must be on a shared filesystem.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .batch import (BatchItem, BatchSummary, Group, ItemRunner, Reporter, finish_item, group_items, holds_run_lock,
                    make_record, start_run)
from .errors import InputError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from .protocols import MemoryOptions
    from .video_metrics import MetricSpec

_ADDRESS = re.compile(r"^(local|auto|[a-z][a-z0-9+.-]*://\S+|[^\s/:]+:\d+)$")
#: Workers started on a cluster without GPUs when ``workers`` is not given (at most).
CPU_WORKERS = 2


def is_address(value: str) -> bool:
    """Whether ``value`` is a Ray address ``--ray`` accepts: ``local``, ``auto``,
    ``ray://HOST:PORT`` (any ``scheme://...``) or ``HOST:PORT``."""
    return bool(_ADDRESS.match(value))


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why ``HOST:PORT`` (or ``scheme://HOST:PORT``) accepts no TCP connection, or ``None``
    (also for ``local``/``auto`` and addresses without a port): checked before Ray, which
    would otherwise retry for tens of seconds."""
    import socket

    match = re.match(r"^(?:[a-z][a-z0-9+.-]*://)?\[?([^\s/\]]+?)\]?:(\d+)$", address)
    if address in ("local", "auto") or match is None:
        return None
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


_AUTH_HINT = ("if the cluster uses token authentication (`ray start` enables it), set RAY_AUTH_MODE=token "
              "and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token); on a node of the cluster, --ray auto finds it")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError('Ray is not installed: pip install "anyv2v[ray]"') from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster; shut it down afterwards only if
    this call started or connected it. ``None``/``"local"``: a new local instance (or the
    one this process already uses); ``"auto"``, ``"ray://HOST:PORT"``, ``"HOST:PORT"``: an
    existing cluster. ``num_cpus`` only applies to a new local instance."""
    ray = _import_ray()
    address = address or "local"
    if not is_address(address):
        raise InputError(f"not a Ray address: {address!r} (use local, auto, ray://HOST:PORT or HOST:PORT)")
    if ray.is_initialized():
        yield ray
        return
    reason = _unreachable(address)
    if reason is not None:
        raise InputError(f"cannot reach Ray at {address}: {reason} (is the cluster running? `ray status` on its "
                         f"head node shows its address)")
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == "local":
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ... from Ray
        hint = f"; {_AUTH_HINT}" if address not in ("local", "auto") and "://" not in address else ""
        raise InputError(f"cannot start or reach Ray at {address}: {one_line(exc)}{hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class _Worker:
    """The body of one worker actor (wrapped by ``ray.remote`` at run time)."""

    def __init__(self, index: int, device: str, dtype: str, cache: bool | str, force: bool,
                 clip_model: "MetricSpec | None", memory: "MemoryOptions | None") -> None:
        self.index = index
        self.clip_model = clip_model
        self.clip_error: str | None = None
        self.logs: list[str] = []
        self.runner = ItemRunner(device=device, dtype=dtype, cache=cache, force=force, scorer=None,
                                 memory=memory, log=self.logs.append)

    def ready(self) -> str:
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"

    def _load_clip(self) -> None:
        if self.clip_model is None or self.runner.scorer is not None or self.clip_error is not None:
            return
        from .video_metrics import load_suite

        t0 = time.perf_counter()
        try:
            self.runner.scorer = load_suite(self.clip_model, self.runner.device)
        except Exception as exc:  # noqa: BLE001 - recorded as metrics_error of each ok item
            self.clip_error = f"loading the metric models: {one_line(exc)}"
        else:
            self.logs.append(f"loaded the metric models ({self.runner.scorer.name}) in {time.perf_counter() - t0:.1f}s")

    def run(self, item: BatchItem) -> tuple[dict[str, Any], list[str]]:
        """The item's record and the log lines of this call."""
        self.logs.clear()
        self._load_clip()
        record = self.runner.run(item, progress=lambda stage, done, total: None)
        if self.clip_error and record["status"] == "ok":
            record["metrics_error"] = self.clip_error
        return record, list(self.logs)


def _resolve_cache(cache: "bool | str | os.PathLike") -> bool | str:
    """The serial run's cache argument as workers must see it: ``False`` or an absolute folder."""
    from .cache import default_cache_dir

    if cache is False:
        return False
    folder = default_cache_dir() if cache is True else Path(cache).expanduser()
    return str(folder.resolve())


def _plan_workers(resources: dict[str, float], workers: int | None, gpus: float | None, cpus: float,
                  pending: int) -> tuple[int, float]:
    """``(workers, gpus per worker)`` fitting the cluster's totals (one-line error if not)."""
    have_gpus, have_cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    if gpus is None:
        gpus = 1.0 if have_gpus else 0.0
    if gpus < 0 or cpus < 0 or (workers is not None and workers < 1):
        raise InputError("--workers must be at least 1 and --gpus-per-worker/--cpus-per-worker at least 0")
    if workers is None:
        if gpus > 0:
            workers = int(have_gpus // gpus)
        else:
            workers = min(CPU_WORKERS, int(have_cpus // cpus) if cpus else CPU_WORKERS)
        workers = max(1, min(workers, pending))
    if workers * gpus > have_gpus or workers * cpus > have_cpus:
        raise InputError(f"the Ray cluster has {have_gpus:g} GPU(s) and {have_cpus:g} CPU(s); {workers} worker(s) "
                         f"need {workers * gpus:g} GPU(s) and {workers * cpus:g} CPU(s) "
                         f"(see --workers, --gpus-per-worker, --cpus-per-worker)")
    return workers, gpus


@holds_run_lock
def run_batch_ray(
    items: list[BatchItem],
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float = 1.0,
    device: str = "auto",
    dtype: str = "auto",
    cache: "bool | str | os.PathLike" = True,
    force: bool = False,
    clip_model: "str | MetricSpec | None" = None,
    memory: "MemoryOptions | None" = None,
    reporter: Reporter | None = None,
    num_cpus: int | None = None,
) -> BatchSummary:
    """:func:`anyv2v_core.batch.run_batch` over the workers of a Ray cluster (see the
    module docstring). ``address``: see :func:`ray_session`. ``workers`` defaults to the
    cluster's GPUs / ``gpus_per_worker`` (which defaults to 1 on a cluster with GPUs, else
    0), or at most :data:`CPU_WORKERS` without GPUs; never more than the items to run.
    ``clip_model``: score every ok item with these metrics (a :class:`~anyv2v_core.video_metrics.MetricSpec`,
    or a CLIP model for the CLIP metrics alone; each worker loads the models)."""
    _import_ray()
    reporter = reporter or Reporter()
    cache = _resolve_cache(cache)
    if clip_model is not None:
        from .video_metrics import MetricSpec

        if not isinstance(clip_model, MetricSpec):  # a CLIP model alone: the CLIP metrics
            clip_model = MetricSpec(("clip",), str(clip_model))
        clip_model.check()  # a missing model stops the run here
    log, summary, pending = start_run(items, out_dir, force)
    if not pending:
        reporter.start(0, len(summary.skipped))
        return summary
    with ray_session(address, num_cpus) as ray:
        count, gpus = _plan_workers(ray.cluster_resources(), workers, gpus_per_worker, cpus_per_worker,
                                    len(pending))
        remote = ray.remote(_Worker).options(num_gpus=gpus, num_cpus=cpus_per_worker)
        actors: list[Any] = []

        def spawn(index: int) -> Any:
            return remote.remote(index, device, dtype, cache, force, clip_model, memory)

        try:
            actors.extend(spawn(i) for i in range(count))
            hosts = ray.get([a.ready.remote() for a in actors])
            reporter.log(f"ray: {count} worker(s) ({gpus:g} GPU, {cpus_per_worker:g} CPU each) on "
                         f"{len({h.split(':')[0] for h in hosts})} node(s)")
            reporter.start(len(pending), len(summary.skipped))
            _dispatch(ray, actors, spawn, pending, log, summary, reporter)
        finally:
            for actor in actors:
                ray.kill(actor)
    return summary


def _dispatch(ray: Any, actors: list[Any], spawn: Any, pending: list[BatchItem], log: Any,
              summary: BatchSummary, reporter: Reporter) -> None:
    """Hand out items until every one has a record (the wait loop of the driver)."""
    from ray.exceptions import RayActorError

    queues = {group: deque(members) for group, members in group_items(pending).items()}
    current: list[Group | None] = [None] * len(actors)
    running: dict[Any, tuple[int, BatchItem, float]] = {}

    def submit(index: int) -> None:
        group = current[index]
        if group is None or not queues.get(group):
            group = next((g for g, q in queues.items() if q), None)
            if group is None:
                return
        item = queues[group].popleft()
        current[index] = group
        reporter.item_started(item)
        running[actors[index].run.remote(item)] = (index, item, time.perf_counter())

    for index in range(len(actors)):
        submit(index)
    while running:
        [ref], _ = ray.wait(list(running), num_returns=1)
        index, item, started = running.pop(ref)
        logs: list[str] = []
        try:
            record, logs = ray.get(ref)
        except RayActorError as exc:
            record = make_record(item, "failed", f"worker {index} died while running this item "
                                 f"({type(exc).__name__}; e.g. out of memory)", started, {})
            ray.kill(actors[index])
            actors[index] = spawn(index)
            current[index] = None
        except Exception as exc:  # noqa: BLE001 - e.g. an item that cannot be sent
            record = make_record(item, "failed", one_line(getattr(exc, "cause", None) or exc), started, {})
        for message in logs:
            reporter.log(f"worker {index}: {message}")
        record["worker"] = index
        finish_item(log, summary, reporter, item, record)
        submit(index)
