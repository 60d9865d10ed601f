"""Runs a job on Ray Data: reading, each stage and writing are streaming operators.

Each stage becomes an actor pool (`ActorPoolStrategy(size=concurrency)`) whose actors build the
stage and call setup() once, with the num_cpus / num_gpus the spec gives; the sink is a Datasink
whose write tasks each encode one part in parallel, and whose on_write_complete commits the dataset
once. Only this module imports ray.
"""

from __future__ import annotations

import functools
import logging
import math
import os

from augment.pipeline import ROW_COLUMNS, Job, JobError, ReadEpisodes, RunStage, finish, plan
from augment.spec import PipelineSpec
from augment.writer import Layout, PartWriter


def _datasink_class():
    import pyarrow as pa
    from ray.data import Datasink

    class LeRobotDatasink(Datasink):
        """Parallel part writers; the dataset itself is committed by the driver after the write."""

        def __init__(self, root: str, layout: dict, run_id: str, rows_per_write: int):
            self.root, self.layout, self.run_id, self.rows_per_write = root, layout, run_id, rows_per_write

        @property
        def min_rows_per_write(self):
            return self.rows_per_write

        def write(self, blocks, ctx):
            # Rows are decoded and encoded one at a time: a part may hold many large episodes.
            def rows():
                for block in blocks:
                    table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)
                    for i in range(table.num_rows):
                        yield {c: table.column(c)[i].as_py() for c in ROW_COLUMNS}

            return PartWriter(self.root, Layout.from_json(self.layout), self.run_id).write(rows())["part"]

        def on_write_failed(self, error: Exception) -> None:
            # Finished parts stay under .augment/parts; a rerun of the same spec reuses them.
            logging.getLogger("augment").error("write failed; finished parts are kept for a rerun: %s", error)

    return LeRobotDatasink


READ_CPUS = 0.25  # per read task when it runs on its own (before a GPU stage): decoding is light next to the stages


def _tuple(items):
    return None if items is None else tuple(items)


@functools.lru_cache(maxsize=4)
def _reader(root: str, cameras, decoded, copied) -> ReadEpisodes:
    # One per worker process and job: opening the source reads meta/episodes, once.
    return ReadEpisodes(root, None if cameras is None else list(cameras),
                        None if decoded is None else list(decoded), list(copied))


def _read_episodes(batch: dict, root: str, cameras, decoded, copied) -> dict:
    return _reader(root, cameras, decoded, copied)(batch)


def resource_demand(spec: PipelineSpec) -> dict[str, float]:
    """What the job holds at once: Ray Data starts every stage's actor pool at launch and each actor
    keeps its CPUs and GPUs until the end, plus a reader and at least one write task."""
    cpus = READ_CPUS + spec.sink.num_cpus
    gpus = 0.0
    for stage in spec.stages:
        cpus += stage.resources.num_cpus * stage.resources.concurrency
        gpus += stage.resources.num_gpus * stage.resources.concurrency
    return {"CPU": cpus, "GPU": gpus}


def check_fits(spec: PipelineSpec, available: dict[str, float]) -> None:
    """Refuse a job whose actor pools cannot all start: Ray Data would otherwise wait forever for
    the last pool while the others sit idle on the resources it needs."""
    demand = resource_demand(spec)
    for kind in ("CPU", "GPU"):
        have = float(available.get(kind, 0.0))
        if demand[kind] > have + 1e-9:
            per_stage = ", ".join(
                f"{s.label}: {getattr(s.resources, 'num_' + kind.lower() + 's')} x {s.resources.concurrency}"
                for s in spec.stages
            )
            raise JobError(
                f"the stages ask for {demand[kind]:g} {kind}s at once ({per_stage}; reader {READ_CPUS:g} CPU, "
                f"writer {spec.sink.num_cpus:g} CPU) but the cluster has {have:g}; lower resources.num_"
                f"{kind.lower()}s (fractions are fine) or resources.concurrency"
            )


def init_ray(address: str | None, spec: PipelineSpec | None = None) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the C++ core's warnings would drown the progress bars
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return
    # An embedded Ray on this machine: give it at least as many logical CPUs as the stages hold at
    # once, so every actor pool starts (the OS shares the cores); GPUs are what the machine has.
    cpus = os.cpu_count() or 1
    if spec is not None:
        cpus = max(cpus, math.ceil(resource_demand(spec)["CPU"]))
    # address="local": always a fresh in-process instance, never a cluster someone left running.
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)


def run_ray(spec: PipelineSpec, address: str | None = None) -> dict:
    job = plan(spec)
    if job.todo:
        import ray

        init_ray(address, spec)
        check_fits(spec, ray.cluster_resources())
        _execute(job)
    return finish(job)


def _execute(job: Job) -> None:
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = True
    ctx.print_on_execution_start = False
    spec = job.spec
    ds = ray.data.from_items([{"episode_index": i} for i in job.todo], override_num_blocks=len(job.todo))
    # Reading is a task, not an actor pool, with the resources of the operator after it, so Ray Data
    # fuses it into that operator: the first stage's actors (when they hold no GPU, which decoding
    # would keep waiting) or the sink's write tasks. An episode then reaches its first consumer
    # without a trip through the object store, and no process is started just to read.
    nxt = spec.stages[0].resources if spec.stages else None
    read_cpus = spec.sink.num_cpus if nxt is None else (nxt.num_cpus if nxt.num_gpus == 0 else READ_CPUS)
    ds = ds.map_batches(
        _read_episodes, fn_kwargs={"root": str(spec.source.root), "cameras": _tuple(spec.source.cameras),
                                   "decoded": _tuple(job.decoded), "copied": tuple(job.copied)},
        batch_size=1, num_cpus=read_cpus, batch_format="numpy",
        **({"concurrency": 2} if read_cpus == READ_CPUS else {}),  # on its own: at most two episodes decoding at once
    )
    for stage in spec.stages:
        r = stage.resources
        ds = ds.map_batches(
            RunStage, fn_constructor_args=(stage,), batch_size=r.batch_size, num_cpus=r.num_cpus,
            num_gpus=r.num_gpus, compute=ActorPoolStrategy(size=r.concurrency), batch_format="numpy",
        )
    sink = _datasink_class()(str(job.out_root), job.layout.to_json(), job.run_id, spec.sink.episodes_per_file)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": spec.sink.num_cpus})
