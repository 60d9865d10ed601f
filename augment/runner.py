"""Runs a job on Ray Data: reading, each stage and writing are streaming operators.

Each stage becomes an actor pool (`ActorPoolStrategy(size=concurrency)`) whose actors build the
stage and call setup() once, with the num_cpus / num_gpus the spec gives; the sink is a Datasink
whose write tasks each encode one part in parallel, and whose on_write_complete commits the dataset
once. Only this module imports ray.
"""

from __future__ import annotations

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


READ_CPUS = 0.25  # per reader actor: decoding is light next to the stages


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
    ds = ds.map_batches(
        ReadEpisodes, fn_constructor_args=(str(spec.source.root), spec.source.cameras, job.decoded, job.copied), batch_size=1,
        compute=ActorPoolStrategy(min_size=1, max_size=2), num_cpus=READ_CPUS, batch_format="numpy",
    )
    for stage in spec.stages:
        r = stage.resources
        ds = ds.map_batches(
            RunStage, fn_constructor_args=(stage,), batch_size=r.batch_size, num_cpus=r.num_cpus,
            num_gpus=r.num_gpus, compute=ActorPoolStrategy(size=r.concurrency), batch_format="numpy",
        )
    sink = _datasink_class()(str(job.out_root), job.layout.to_json(), job.run_id, spec.sink.episodes_per_file)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": spec.sink.num_cpus})
