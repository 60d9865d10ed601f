"""Everything that touches Ray: a job on Ray Data (reading, each stage and writing are streaming
operators), and data-parallel training on Ray Train for the training commands.

Each stage becomes an actor pool (`ActorPoolStrategy(size=concurrency)`) whose actors build the
stage and call setup() once, with the num_cpus / num_gpus the spec gives; the sink is a Datasink
whose write tasks each encode one part in parallel, and whose on_write_complete commits the dataset
once. Only this module imports ray.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from augment.spec import PipelineSpec

if TYPE_CHECKING:
    from augment.pipeline import Job

# This module imports the job's code (augment.pipeline: PyAV, pyarrow, pandas) inside its functions:
# run_ray starts Ray first, and the driver imports and plans while Ray's processes come up.


def _datasink_class():
    import pyarrow as pa
    from ray.data import Datasink

    from augment.layout import Layout
    from augment.parts import PartWriter
    from augment.pipeline import ROW_COLUMNS

    class LeRobotDatasink(Datasink):
        """Parallel part writers; the dataset itself is committed by the driver after the write."""

        def __init__(self, root: str, layout: dict, run_id: str, rows_per_write: int, tail: tuple = ((), (), ())):
            self.root, self.layout, self.run_id, self.rows_per_write = root, layout, run_id, rows_per_write
            self.tail = tail  # (the per-frame stages' specs, Job.streamed, Job.copied): run here, chunk by chunk

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

            import ray

            node = ray.get_runtime_context().get_node_id()  # which node wrote the part, in its manifest
            layout = Layout.from_json(self.layout)
            tail = _stream_tail(self.run_id, *self.tail, layout.video, node)
            return PartWriter(self.root, layout, self.run_id, {"node_id": node}, tail).write(rows())["part"]

    return LeRobotDatasink


_tails: dict[str, object] = {}


def _stream_tail(run_id: str, stages, streamed, copied, video: dict, node: str):
    # Built and set up once per worker process and job, like an actor's stage: write tasks reuse processes.
    from augment.pipeline import stream_tail

    if run_id not in _tails:
        _tails.clear()
        _tails[run_id] = stream_tail(list(stages), list(streamed), list(copied), video, node)
    return _tails[run_id]


READ_CPUS = 0.25  # per read task when it runs on its own (before a GPU stage): decoding is light next to the stages


def _tuple(items):
    return None if items is None else tuple(items)


@functools.lru_cache(maxsize=4)
def _reader(root: str, cameras, decoded, copied, streamed):
    # One per worker process and job: opening the source reads meta/episodes, once.
    from augment.pipeline import ReadEpisodes

    return ReadEpisodes(root, None if cameras is None else list(cameras),
                        None if decoded is None else list(decoded), list(copied), list(streamed))


def _read_episodes(batch: dict, root: str, cameras, decoded, copied, streamed) -> dict:
    return _reader(root, cameras, decoded, copied, streamed)(batch)


def write_resources(spec: PipelineSpec) -> dict:
    """Ray resources of a sink write task: it also runs the per-frame tail (augment/stream.py), so it
    holds the largest of the sink's and the tail stages' CPUs and GPUs, and the tail's custom resources."""
    from augment.stage import split_stages

    tail = spec.stages[split_stages(spec.stages):]
    args = {"num_cpus": max([spec.sink.num_cpus, *(s.resources.num_cpus for s in tail)])}
    gpus = max([0.0, *(s.resources.num_gpus for s in tail)])
    if gpus:
        args["num_gpus"] = gpus
    custom = {k: v for s in tail for k, v in s.resources.custom.items()}
    if custom:
        args["resources"] = custom
    return args


def resource_demand(spec: PipelineSpec) -> dict[str, float]:
    """What the job holds at once: Ray Data starts every stage's actor pool at launch and each actor
    keeps its CPUs and GPUs until the end, plus a reader and at least one write task (write_resources)."""
    from augment.stage import split_stages

    write = write_resources(spec)
    cpus, gpus = READ_CPUS + write["num_cpus"], write.get("num_gpus", 0.0)
    for stage in spec.stages[:split_stages(spec.stages)]:
        cpus += stage.resources.num_cpus * stage.resources.concurrency
        gpus += stage.resources.num_gpus * stage.resources.concurrency
    return {"CPU": cpus, "GPU": gpus}


def check_fits(spec: PipelineSpec, available: dict[str, float]) -> None:
    """Refuse a job whose actor pools cannot all start: Ray Data would otherwise wait forever for
    the last pool while the others sit idle on the resources it needs."""
    from augment.pipeline import JobError

    demand = resource_demand(spec)
    for name in sorted({k for s in spec.stages for k in s.resources.custom}):
        need = sum(s.resources.custom.get(name, 0) * s.resources.concurrency for s in spec.stages)
        if need > float(available.get(name, 0.0)) + 1e-9:
            raise JobError(f"the stages ask for {need:g} of the custom resource {name!r} at once but the cluster has "
                           f"{float(available.get(name, 0.0)):g}; start nodes with `ray start --resources "
                           f"'{{\"{name}\": N}}'` or change resources.custom")
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


_reaper: subprocess.Popen | None = None
_ray_processes: dict[int, int] = {}  # pid -> start time: the embedded Ray's processes started by this driver


def _start_reaper() -> None:
    """One per driver process (augment/reaper.py): an embedded Ray dies with its driver, even by kill -9."""
    global _reaper
    if _reaper is None and sys.platform.startswith("linux"):
        _reaper = subprocess.Popen([sys.executable, "-m", "augment.reaper", str(os.getpid())],
                                   start_new_session=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def init_ray(address: str | None, spec: PipelineSpec | None = None) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the C++ core's warnings would drown the progress bars
    import ray

    if ray.is_initialized():
        return
    if address:
        with _stderr_without(_LOG_LEVEL_NOTE):
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return
    # An embedded Ray on this machine: give it at least as many logical CPUs as the stages hold at
    # once, so every actor pool starts (the OS shares the cores); GPUs are what the machine has.
    cpus = os.cpu_count() or 1
    if spec is not None:
        cpus = max(cpus, math.ceil(resource_demand(spec)["CPU"]))
    _start_reaper()
    from augment.reaper import processes

    before = set(processes())
    # address="local": always a fresh in-process instance, never a cluster someone left running.
    with _lean_head(), _stderr_without(_LOG_LEVEL_NOTE):
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    me = os.getpid()
    _ray_processes.update({pid: start for pid, (parent, start) in processes().items()
                           if parent == me and pid not in before})


# What Ray's C++ logger writes on stderr, at INFO, as it reads RAY_BACKEND_LOG_LEVEL: before the level
# applies, so it showed on every run's console, even with --quiet.
_LOG_LEVEL_NOTE = b"Set ray log level from environment variable RAY_BACKEND_LOG_LEVEL"


@contextlib.contextmanager
def _stderr_without(note: bytes):
    """While ray.init runs, this process's stderr (file descriptor 2: the C++ core writes there, not
    through sys.stderr) goes to a file; then the lines are written to the real stderr, less those that
    contain `note`. Ray's processes do not inherit it: Ray sends their output to its log files."""
    sys.stderr.flush()
    console = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(console, 2)
            os.close(console)
            captured.seek(0)
            lines = captured.read().splitlines(keepends=True)
            os.write(2, b"".join(line for line in lines if note not in line))


@contextlib.contextmanager
def _lean_head():
    """ray.init's head node without three Python processes an embedded Ray has no use for, each of
    which imports Ray and costs a second of CPU at start-up (on 2 cores, ~1.5 s of a 10 s copy): the
    autoscaler monitor (nothing to scale), the log monitor (log_to_driver=False: it forwards worker
    output to no one; the log files are written all the same) and the API server (dashboard, job
    submission and state API; include_dashboard=False still starts it). ray.init takes no option for
    them (RayParams has no_monitor / include_log_monitor, ray.init does not pass them), so its head
    node is, for this one call, a Node that skips them."""
    import ray._private.node as ray_node

    node_class = ray_node.Node

    class EmbeddedHead(node_class):
        def start_monitor(self):
            pass

        def start_log_monitor(self):
            pass

        def start_api_server(self, **kwargs):
            pass

    ray_node.Node = EmbeddedHead
    try:
        yield
    finally:
        ray_node.Node = node_class


class _ConsoleErrorsHidden(logging.Filter):
    """Ray Data prints a failed task's traceback (and, for an error it does not know as a user's,
    "please open an issue on the Ray project"); the driver names the failure itself, in one line.
    With `augment run --quiet` it prints nothing at all: where stdout is no terminal, Ray Data logs its
    progress as lines instead of bars. Its log file keeps everything."""

    quiet = False  # this run's --quiet (the handler and its filter outlive one run in a process)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR and not self.quiet


def _quiet_ray_data_console(quiet: bool = False) -> None:
    _ConsoleErrorsHidden.quiet = quiet
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if not any(isinstance(f, _ConsoleErrorsHidden) for f in handler.filters):
                handler.addFilter(_ConsoleErrorsHidden())


class _StartRay(threading.Thread):
    """init_ray in a thread of its own, started first: ray.init mostly waits for the processes it
    starts (the GCS, the raylet and its agents, each agent importing Ray), so the driver imports
    the job's code and plans meanwhile. wait() waits for it and raises what it raised.

    The thread then stays, parked, until stop_ray: Ray starts its processes with a parent-death
    signal (PR_SET_PDEATHSIG), which Linux sends when the *thread* that started them ends."""

    def __init__(self, address: str | None, spec: PipelineSpec):
        super().__init__(name="augment-ray-init", daemon=True)
        self.address, self.spec, self.error = address, spec, None
        self.ready, self.hold = threading.Event(), threading.Event()
        _holding.append(self)
        if threading.current_thread() is threading.main_thread():
            # What ray.init does in the main thread (it cannot in this one): SIGTERM exits through
            # atexit, whose ray.shutdown stops the processes it started.
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        logging.getLogger("ray._private.worker").addFilter(_NotMainThreadNote())
        self.start()

    def run(self) -> None:
        try:
            init_ray(self.address, self.spec)
        except BaseException as e:  # handed to the driver by wait()
            self.error = e
        finally:
            self.ready.set()
        self.hold.wait()

    def wait(self) -> None:
        self.ready.wait()
        if self.error is not None:
            raise self.error


_holding: list[_StartRay] = []


class _NotMainThreadNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def run_ray(spec: PipelineSpec, address: str | None = None, progress: bool = True) -> dict:
    starting = _StartRay(address, spec)
    from augment.pipeline import explain_failure, finish, plan

    try:
        job = plan(spec)
    except BaseException:
        starting.ready.wait()  # no half-started Ray left behind: the caller's ray.shutdown (or atexit) stops it
        raise
    in_worker = False  # while Ray executes, an error comes from a reader, a stage or a writer
    try:
        if job.todo:
            import ray
            import ray.data  # noqa: F401  (imported here while Ray may still be starting)

            starting.wait()
            check_fits(spec, ray.cluster_resources())
            in_worker = True
            _execute(job, progress)
            in_worker = False
        return finish(job)
    except Exception as e:
        raise explain_failure(job, e, in_worker) from None
    finally:
        starting.ready.wait()
        job.release()


def stop_ray() -> None:
    """ray.shutdown, and the threads that started an embedded Ray (_StartRay) let go."""
    import ray

    _ray_processes.clear()
    ray.shutdown()
    while _holding:
        _holding.pop().hold.set()


def kill_ray() -> bool:
    """stop_ray for a process about to end (augment.cli.entry): SIGKILL, at once and with no wait, to
    every process of the embedded Ray this driver started (its descendants, the reaper apart). The
    caller then leaves with os._exit. False, doing nothing, when no embedded Ray runs here."""
    if not _ray_processes:
        return False
    from augment.reaper import descendants, processes

    spared = {os.getpid(), _reaper.pid if _reaper is not None else -1}
    for pid in descendants({os.getpid()}, processes()) - spared:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _ray_processes.clear()
    return True


def _execute(job: Job, progress: bool = True) -> None:
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from augment.pipeline import RunStage

    class _RunStageOnNode(RunStage):
        """RunStage in a Ray actor: notes the node it runs on in each output's provenance["nodes"]."""

        def __init__(self, spec):
            super().__init__(spec, node=ray.get_runtime_context().get_node_id())

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = False
    ctx.raise_original_map_exception = True  # a reader's or stage's own error, not Ray's UserCodeException
    _quiet_ray_data_console(quiet=not progress)
    spec = job.spec
    head, tail = spec.stages[:job.tail], spec.stages[job.tail:]
    write_args = write_resources(spec)  # the per-frame tail runs in the write tasks (augment/stream.py)
    ds = ray.data.from_items([{"episode_index": i} for i in job.todo], override_num_blocks=len(job.todo))
    # Reading is a task, not an actor pool, with the resources of the operator after it, so Ray Data
    # fuses it into that operator: the first stage's actors (when they hold no GPU, which decoding
    # would keep waiting) or the sink's write tasks. An episode then reaches its first consumer
    # without a trip through the object store, and no process is started just to read.
    nxt = head[0].resources if head else None
    read_args = write_args if nxt is None else {"num_cpus": nxt.num_cpus if nxt.num_gpus == 0 else READ_CPUS}
    ds = ds.map_batches(
        _read_episodes, fn_kwargs={"root": str(spec.source.root), "cameras": _tuple(spec.source.cameras),
                                   "decoded": _tuple(job.decoded), "copied": tuple(job.copied),
                                   "streamed": tuple(job.streamed)},
        batch_size=1, batch_format="numpy", **read_args,
        **({"concurrency": 2} if read_args.get("num_cpus") == READ_CPUS and nxt is not None else {}),
    )
    for stage in head:
        r = stage.resources
        ds = ds.map_batches(
            _RunStageOnNode, fn_constructor_args=(stage,), batch_size=r.batch_size, num_cpus=r.num_cpus,
            num_gpus=r.num_gpus, compute=ActorPoolStrategy(size=r.concurrency), batch_format="numpy",
            **({"resources": dict(r.custom)} if r.custom else {}),
        )
    sink = _datasink_class()(str(job.out_root), job.layout.to_json(), job.run_id, spec.sink.episodes_per_file,
                             (tuple(tail), tuple(job.streamed), tuple(job.copied)))
    ds.write_datasink(sink, ray_remote_args=write_args)


def _train_worker(job: dict) -> None:
    """Runs inside a Ray Train worker: the stage package's own function, told its rank and device."""
    import ray.train
    import ray.train.torch

    from augment.registry import import_object

    context = ray.train.get_context()
    device = str(ray.train.torch.get_device()) if job["use_gpu"] else None
    import_object(job["fn"])(job["job"], context.get_world_rank(), context.get_world_size(), device)


def run_data_parallel(fn: str, job: dict, address: str, workers: int | None, use_gpu: bool, storage, name: str,
                      log=print) -> None:
    """Run `fn(job, rank, world, device)` ("module:function", Ray-free) on `workers` Ray Train workers:
    one per GPU of the cluster by default, else one on CPUs. address: a cluster, or 'local' to start one."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started_here = not ray.is_initialized()
    if started_here:
        # "local": always a fresh instance; None would join whatever /tmp/ray/ray_current_cluster names,
        # even a cluster stopped long ago (ray.init then waits on its dead GCS)
        ray.init(address=address, include_dashboard=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = use_gpu and gpus > 0
    workers = workers or (gpus if use_gpu else 1)
    log(f"Ray Train: {workers} worker(s), {'one GPU each' if use_gpu else 'on CPUs'}")
    trainer = TorchTrainer(_train_worker, train_loop_config={"fn": fn, "job": job, "use_gpu": use_gpu},
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                                        resources_per_worker=None if use_gpu else {"CPU": 1}),
                           run_config=RunConfig(storage_path=str(Path(storage).resolve()), name=name))
    try:
        trainer.fit()
    finally:
        if started_here:
            ray.shutdown()
