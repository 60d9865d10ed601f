"""Runs a job on Ray Data: reading, each stage and writing are streaming operators.

Each stage becomes an actor pool (`ActorPoolStrategy(size=concurrency)`) whose actors build the
stage and call setup() once, with the num_cpus / num_gpus the spec gives; the sink is a Datasink
whose write tasks each encode one part in parallel, and whose on_write_complete commits the dataset
once. Only this module imports ray.
"""

from __future__ import annotations

import logging
import os

from augment.pipeline import ROW_COLUMNS, Job, ReadEpisodes, RunStage, finish, plan
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


def init_ray(address: str | None) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the C++ core's warnings would drown the progress bars
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # address="local": always a fresh in-process instance, never a cluster someone left running.
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)


def run_ray(spec: PipelineSpec, address: str | None = None) -> dict:
    job = plan(spec)
    if job.todo:
        init_ray(address)
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
        ReadEpisodes, fn_constructor_args=(str(spec.source.root), spec.source.cameras), batch_size=1,
        compute=ActorPoolStrategy(min_size=1, max_size=2), num_cpus=0.25, batch_format="numpy",
    )
    for stage in spec.stages:
        r = stage.resources
        ds = ds.map_batches(
            RunStage, fn_constructor_args=(stage,), batch_size=r.batch_size, num_cpus=r.num_cpus,
            num_gpus=r.num_gpus, compute=ActorPoolStrategy(size=r.concurrency), batch_format="numpy",
        )
    sink = _datasink_class()(str(job.out_root), job.layout.to_json(), job.run_id, spec.sink.episodes_per_file)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": spec.sink.num_cpus})
