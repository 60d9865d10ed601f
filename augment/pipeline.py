"""The job, independent of where it runs: plan (what to read, what is already done), the callables
that read episodes and run stages on rows, and the finish (commit + report).

Rows are what travel between stages (in Ray's object store, or a list in-process):
    uid, source_uid  the episode and the source episode it descends from
    share            the fraction of its source episode this row stands for ("1", "1/4")
    episode          the pickled Episode, or b"" for a dropped one
    dropped          "" or JSON with the stage, the reason, the scores and the provenance
augment/local.py and augment/runner.py only differ in how they move rows.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

import yaml

from augment.cameras import measure_cameras
from augment.episode import VISUAL_DTYPES, Episode, episode_uid
from augment.remux import plan_cameras, source_settings
from augment.source import DatasetError, LeRobotSource
from augment.spec import PipelineSpec, SpecError
from augment.stage import StageSpec, is_dropped, split_stages
from augment.video import VideoError
from augment.commit import commit, foreign_files, is_committed, read_owner, remove_ours, write_owner
from augment.layout import COMPLETE_MARKER, OWNER_MARKER, STAGING, Layout
from augment.parts import PARTS, read_manifests, remove_unfinished_parts, select_complete
from augment.storage import Lease, StorageError, Store
from augment.stream import StreamTail, streamed_cameras

ROW_COLUMNS = ("uid", "source_uid", "share", "episode", "dropped")
PARENT_KEY = "_parent_row"  # set on inputs so outputs (copies) can be traced back to their input


class JobError(RuntimeError):
    """A job that cannot start or finish, with what to do about it."""


# What the command line prints as one `error:` line: bad input, named; anything else is a bug (a traceback).
USER_ERRORS = (SpecError, DatasetError, JobError, VideoError, StorageError)
LOCK_INFO = f"{STAGING}/lock.json"


def episode_row(episode: Episode, source_uid: str, share: str) -> dict:
    if is_dropped(episode):
        record = {"reason": episode.provenance["dropped"], "provenance": episode.provenance}
        return {"uid": episode.uid, "source_uid": source_uid, "share": share, "episode": b"",
                "dropped": json.dumps(record)}
    return {"uid": episode.uid, "source_uid": source_uid, "share": share, "episode": episode.to_bytes(),
            "dropped": ""}


def rows_to_batch(rows: list[dict]) -> dict[str, list]:
    return {c: [r[c] for r in rows] for c in ROW_COLUMNS}


def batch_to_rows(batch: dict) -> list[dict]:
    n = len(batch["uid"])
    return [{c: _plain(batch[c][i]) for c in ROW_COLUMNS} for i in range(n)]


def _plain(value):
    # Ray hands numpy scalars/bytes; make them plain Python values.
    return value.item() if hasattr(value, "item") and not isinstance(value, (bytes, str)) else value


class ReadEpisodes:
    """Callable: a batch of {"episode_index"} rows -> episode rows."""

    def __init__(self, root: str, cameras: list[str] | None, decoded: list[str] | None = None,
                 copied: list[str] = (), streamed: list[str] = ()):
        self.source = LeRobotSource(root, cameras)
        self.decoded, self.copied, self.streamed = decoded, list(copied), list(streamed)  # Job's

    def __call__(self, batch: dict) -> dict:
        rows = []
        for index in batch["episode_index"]:
            start = time.perf_counter()
            episode = self.source.read_episode(int(index), self.decoded, self.copied, self.streamed)
            episode.provenance["timings"] = {"read": time.perf_counter() - start}
            rows.append(episode_row(episode, episode.uid, "1"))
        return rows_to_batch(rows)


class RunStage:
    """Callable: wraps one Stage; builds it and runs setup() once per worker."""

    def __init__(self, spec: StageSpec, node: str | None = None):
        self.spec = spec
        self.node = node  # where this worker runs (the runner's node id), noted in each output's provenance
        self.stage = spec.build()
        self.stage.setup()
        self.surveyed = 0.0  # seconds of the last survey, counted with the chunk after it

    def __call__(self, batch: dict) -> dict:
        rows = batch_to_rows(batch)
        out = [r for r in rows if r["dropped"]]  # already dropped: carried to the sink's report
        inputs = [(Episode.from_bytes(r["episode"]), r["source_uid"], r["share"]) for r in rows if not r["dropped"]]
        if inputs:
            out.extend(episode_row(*item) for item in self.run(inputs))
        return rows_to_batch(out)

    def survey(self, episode: Episode, chunks) -> None:
        """The stage's survey of an episode (augment/stream.py), timed."""
        start = time.perf_counter()
        self.stage.survey(episode, chunks)
        self.surveyed += time.perf_counter() - start

    def run(self, inputs: list[tuple[Episode, str, str]]) -> list[tuple[Episode, str, str]]:
        """The stage on (episode, source_uid, share) items: its outputs as such items, each with its
        share of its input's share, its timings and its lineage checked."""
        for i, (episode, _, _) in enumerate(inputs):
            episode.provenance[PARENT_KEY] = i
        start = time.perf_counter()
        outputs = self.stage([episode for episode, _, _ in inputs])
        elapsed = (time.perf_counter() - start + self.surveyed) / len(inputs)
        self.surveyed = 0.0
        children = Counter(ep.provenance.get(PARENT_KEY) for ep in outputs)
        if None in children or not set(children) <= set(range(len(inputs))):
            raise JobError(f"stage {self.spec.label} returned an episode that descends from none of its inputs; "
                           "a stage makes its outputs with input.replace(...), which carries the lineage")
        lost = set(range(len(inputs))) - set(children)
        if lost:
            raise JobError(f"stage {self.spec.label} returned nothing for {[inputs[i][0].uid for i in lost]}; "
                           "a stage must return every input, or drop() it with a reason")
        out = []
        for episode in outputs:
            cameras = sorted({*episode.frames, *episode.passthrough})
            for key in self.spec.changed_cameras(cameras):  # no longer the source's packets
                episode.passthrough.pop(key, None)
                if not getattr(self.stage, "keeps_surfaces", False):  # nor, for all we know, the table there
                    episode.surfaces.pop(key, None)
            i = episode.provenance.pop(PARENT_KEY)
            _, source_uid, share = inputs[i]
            # Times (inherited ones too) are split among siblings, so a family's add up to its input's.
            timings = {k: v / children[i] for k, v in episode.provenance.get("timings", {}).items()}
            timings[self.spec.label] = timings.get(self.spec.label, 0.0) + elapsed / children[i]
            episode.provenance["timings"] = timings
            if self.node is not None:
                episode.provenance.setdefault("nodes", {})[self.spec.label] = self.node
            episode.validate()
            out.append((episode, source_uid, str(Fraction(share) / children[i])))
        return out


@dataclass
class Job:
    spec: PipelineSpec
    source: LeRobotSource
    layout: Layout
    selected: list[int]
    todo: list[int]
    notes: dict = field(default_factory=dict)  # what resolve_stages chose from the data, per stage
    copied: list[str] = field(default_factory=list)  # cameras whose packets the sink copies (augment/remux.py)
    decoded: list[str] | None = None  # cameras the reader decodes; None: all
    # The per-frame stages after the last whole-episode one (augment/stream.py) run in the sink's
    # writer, chunk by chunk, from stages[tail:] on; the cameras only they read or change are
    # streamed: the reader hands their encoded segments on and the writer decodes them a chunk at a time.
    tail: int = 0
    streamed: list[str] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**6:06d}")
    started: float = field(default_factory=time.time)
    # The sink's lock: an open folder with an exclusive flock on it, or an object store's Lease.
    lock: int | Lease | None = None

    @property
    def out_root(self) -> Store:
        return Store(self.spec.sink.root)

    def still_ours(self) -> bool:
        return not isinstance(self.lock, Lease) or self.lock.held

    def release(self) -> None:
        release_lock(self.lock)
        self.lock = None


def stream_tail(stages: list[StageSpec], streamed: list[str], copied: list[str], video: dict,
                node: str | None = None) -> StreamTail | None:
    """The per-frame tail (Job.tail) with its stages set up, for a writer; None when there is none."""
    if not stages and not streamed:
        return None
    return StreamTail([RunStage(s, node) for s in stages], streamed, copied, video)


def _source_features(source: LeRobotSource) -> dict:
    """The source's features as they reach the first stage: the selected cameras only."""
    return {k: f for k, f in source.features.items() if f["dtype"] not in VISUAL_DTYPES or k in source.cameras}


def _source_schema(source: LeRobotSource, features: dict):
    """The source's data-file schema when the output's data columns are the source's, else None. It is
    what lerobot wrote, and reading it spares the driver importing lerobot (seconds) to rebuild it."""
    data = lambda fs: {k: f for k, f in fs.items() if f["dtype"] != "video"}  # noqa: E731
    if data(features) != data(source.features) or not source.episodes:
        return None
    meta = source.episodes[0]
    return source.store.read_schema(source.info["data_path"].format(chunk_index=meta["data/chunk_index"],
                                                                    file_index=meta["data/file_index"]))


def resolve_stages(stages: list[StageSpec], source: LeRobotSource,
                   selected: list[int]) -> tuple[list[StageSpec], dict, dict]:
    """Check every stage against the dataset (cameras and features it names or needs) and fill in
    its data-dependent defaults, before anything runs. Returns (the resolved stages, the output
    dataset's features, notes per stage for the job report); raises SpecError listing every problem."""
    features = _source_features(source)
    measured: dict[str, dict] = {}

    def measure() -> dict[str, dict]:
        if not measured:
            measured.update(measure_cameras(source, source.cameras, selected))
        return measured

    problems, notes, resolved = [], {}, []
    for i, stage in enumerate(stages):
        try:
            stage, note = stage.resolve(features, measure)
            features = stage.output_features(features)
        except ValueError as e:
            problems.append(f"stages[{i}] ({stage.label}): {e}")
            continue
        finally:
            resolved.append(stage)
        if note:
            notes[stage.label] = note
    if problems:
        raise SpecError(f"the spec does not fit {source.root}:\n  " + "\n  ".join(problems))
    return resolved, features, notes


def plan(spec: PipelineSpec) -> Job:
    """Open the source, check the stages against it and the output folder, list the episodes to do."""
    source = LeRobotSource(spec.source.root, spec.source.cameras)
    selected = source.select(spec.source.episodes)
    spec.stages, features, notes = resolve_stages(spec.stages, source, selected)
    videos = {k: source.video_file(selected[0], k) for k in source.cameras if source.is_video(k)} if selected else {}
    layout = Layout.from_source(source.info, features, spec.sink.codec, spec.sink.crf, spec.sink.gop, videos,
                                _source_schema(source, features))
    copied, decoded = [], None
    tail, streamed = split_stages(spec.stages), []
    if selected:
        copied, decoded, notes["sink"] = plan_cameras(spec.stages, _source_features(source), source.cameras,
                                                      layout.video, source_settings(source, selected[0]))
        streamed = streamed_cameras(spec.stages[:tail], _source_features(source), decoded, layout.video)
        decoded = [k for k in decoded if k not in streamed]
        if tail < len(spec.stages) or streamed:
            notes["sink"]["streamed"] = {"stages": [s.label for s in spec.stages[tail:]], "cameras": streamed}
    out = Store(spec.sink.root)
    if out.uri() == source.store.uri():
        raise JobError(f"sink.root {out} is the source dataset; write the output somewhere else")
    out.check()
    identity = job_identity(spec, source)
    lock = lock_output(out)
    try:
        claim_output(out, identity, spec.sink.overwrite)
        if out.local:  # a Lease object says this itself
            out.write_text(LOCK_INFO, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        remove_unfinished_parts(out)  # a killed run's half-written parts: nobody else writes here now
        _, _, done = select_complete(read_manifests(out))
    except BaseException:
        release_lock(lock)
        raise
    todo = [i for i in selected if episode_uid(i) not in done]
    return Job(spec=spec, source=source, layout=layout, selected=selected, todo=todo, notes=notes, lock=lock,
               copied=copied, decoded=decoded, tail=tail, streamed=streamed)


def lock_output(store: Store) -> int | Lease:
    """Hold an exclusive lock on the sink for the whole job, so two jobs never write one output: the
    second is refused at once, naming the first. Locally an flock on the folder (returns the locked
    descriptor); on an object store a Lease (augment/storage.py says what it guarantees)."""
    if not store.local:
        lease = Lease(store, LOCK_INFO)
        holder = lease.acquire()
        if holder is not None:
            who = (f"job {holder.get('job')} (pid {holder.get('pid')} on {holder.get('host')}, since "
                   f"{holder.get('since')}; its lease expires {max(0, holder.get('expires', 0) - time.time()):.0f} s "
                   "after its last renewal)")
            raise JobError(f"{store} is being written by another augment job: {who}; wait for it to finish "
                           "or choose another sink.root")
        return lease
    out = store.path
    if out.exists() and not out.is_dir():
        raise JobError(f"sink.root {out} is a file; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        try:
            holder = json.loads((out / LOCK_INFO).read_text())
            who = f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            who = "another process"
        raise JobError(f"{out} is being written by another augment job ({who}); wait for it to finish "
                       "or choose another sink.root") from None
    return fd


def release_lock(lock: int | Lease | None) -> None:
    """Let another job have the sink (the kernel drops an flock when the process dies; a Lease expires)."""
    if isinstance(lock, Lease):
        lock.release()
    elif lock is not None:
        os.close(lock)


def root_cause(error: BaseException) -> BaseException:
    """The exception a reader, stage or writer raised, out of the wrappers Ray puts around it
    (a RayTaskError keeps it as .cause; Ray Data chains its own markers as __cause__)."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "cause", None)
        if isinstance(inner, BaseException):
            error = inner
        elif isinstance(error.__cause__, BaseException) and type(error.__cause__).__name__ != "SystemException":
            error = error.__cause__
    return error


def explain_failure(job: Job, error: BaseException, in_worker: bool) -> BaseException:
    """What to tell the user about a job that failed: our own errors as they are; a full disk with
    how much room the job needs; from a worker, anything else as one line (its traceback is a
    worker's, the user cannot act on Ray's frames). Finished parts always stay for a rerun."""
    cause = root_cause(error)
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return JobError(disk_full_message(job))
    if isinstance(cause, USER_ERRORS):
        if in_worker and cause.args and isinstance(cause.args[0], str) and "attempts (total backoff" in cause.args[0]:
            cause.args = (cause.args[0].split("\nFailed to ", 1)[0], *cause.args[1:])  # Ray Data's retry note
        return cause
    if in_worker:
        return JobError(f"a worker failed: {type(cause).__name__}: {cause}; finished parts are kept, rerun the "
                        "same command to resume (run it with --local to see the full traceback)")
    return error


def disk_full_message(job: Job) -> str:
    """How much room the rest of the job needs: the bytes per source episode of the parts written so
    far (else the source's own), times the episodes left, plus the data files the commit writes."""
    out = job.out_root
    written = out.files(PARTS)
    _, _, done = select_complete(read_manifests(out))
    if done and written:
        per_episode = sum(written.values()) / len(done)
    else:
        source_bytes = sum(size for sub in ("data", "videos") for size in job.source.store.files(sub).values())
        per_episode = source_bytes / max(1, int(job.source.info.get("total_episodes") or 1))
    left = len([i for i in job.selected if episode_uid(i) not in done])
    # The commit rewrites the data files and turns the manifests into meta/; videos are hard-linked.
    commit_bytes = sum(size for rel, size in written.items() if rel.endswith(("/data.parquet", "/manifest.json"))) \
        + per_episode * left * 0.2
    need = per_episode * left + commit_bytes
    free = shutil.disk_usage(out.path if out.local else tempfile.gettempdir()).free  # a store's parts are staged there
    return (f"disk full writing {out}: {_size(free)} free on its filesystem, and this job needs about "
            f"{_size(need)} more ({left} of {len(job.selected)} source episodes left at about {_size(per_episode)} "
            f"each, plus the commit's data files); finished parts are kept: free space and rerun the same command "
            "to resume")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def job_identity(spec: PipelineSpec, source: LeRobotSource) -> dict:
    """What fixes a job's output: the resolved spec, less where it writes and how many workers run it
    (a resume may move the sink's path spelling or use another machine's resources), and what the
    source's info.json says of its size (other data under the same path is another job)."""
    data = yaml.safe_load(spec.resolved_yaml())
    data["source_fingerprint"] = {k: source.info.get(k) for k in
                                  ("codebase_version", "fps", "total_episodes", "total_frames", "total_tasks")}
    data["sink"] = {k: v for k, v in data["sink"].items() if k not in ("root", "overwrite", "num_cpus")}
    for stage in data["stages"]:
        stage.pop("resources", None)
    return data


def spec_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def changed_fields(old, new, path: str = "") -> list[str]:
    """'field: old -> new' for every leaf that differs between two resolved specs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in {**old, **new} for c in changed_fields(old.get(k), new.get(k), f"{path}.{k}".lstrip("."))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in changed_fields(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {json.dumps(old)} -> {json.dumps(new)}"]


def claim_output(out: Store, identity: dict, overwrite: bool) -> None:
    """Make sure `out` (a folder: lock_output made it) is ours for this job, or refuse. Ours means our
    marker (OWNER_MARKER) is there, written when we created the folder; anything else non-empty is
    someone's data, never touched."""
    owner = read_owner(out)
    if owner is None:
        present = (sorted(p.name + ("/" if p.is_dir() else "") for p in out.path.iterdir()) if out.local else
                   sorted({rel.split("/")[0] + ("/" if "/" in rel else "") for rel in out.files() if rel != LOCK_INFO}))
        if present:
            raise JobError(f"sink.root {out} exists and holds something that is not an augment output "
                           f"(no {OWNER_MARKER}): {', '.join(present[:10])}; choose an empty or new folder "
                           "(an output written by an older augment has no marker: remove it yourself to write it again)")
    if owner is not None:
        changes = changed_fields(owner.get("spec"), identity)
        if is_committed(out) and not overwrite:
            raise JobError(f"{out} already holds a finished dataset; set sink.overwrite=true "
                           f"(--set sink.overwrite=true) to write it again")
        if changes and not overwrite:
            raise JobError(f"{out} holds a partial output of another spec; the changed fields: {'; '.join(changes)}. "
                           "Rerun with the spec it was started with, or set sink.overwrite=true to start afresh")
        if is_committed(out) or changes:  # overwrite: start afresh, deleting only what we wrote
            others = foreign_files(out)
            if others:
                raise JobError(f"sink.overwrite: {out} also holds files augment did not write: "
                               f"{', '.join(others[:10])}{' ...' if len(others) > 10 else ''}; move them away first")
            remove_ours(out)
            owner = None
    if owner is None:
        write_owner(out, {"job": spec_hash(identity), "created_at": time.time(), "spec": identity})


def finish(job: Job) -> dict:
    """Commit the dataset and write the job report into meta/."""
    spec_text = job.spec.resolved_yaml()

    def report(summary: dict) -> dict:  # called inside the commit, before its completion marker
        report = build_report(job, summary)
        for stage in job.spec.stages:
            extra = stage.finish_job(job.out_root.root)
            if extra:
                report.setdefault("stages", {})[stage.label] = extra
        return report

    summary = commit(job.out_root, job.layout, job.spec.sink.top_k, extra_meta={"augment_spec.yaml": spec_text},
                     report=report, still_ours=job.still_ours)
    return summary["report"]


def build_report(job: Job, summary: dict) -> dict:
    kept, dropped, _ = select_complete(read_manifests(job.out_root))
    stage_time: dict[str, float] = {}
    for _, entry in kept:
        for stage, seconds in entry["provenance"].get("timings", {}).items():
            stage_time[stage] = stage_time.get(stage, 0.0) + seconds
    for entry in dropped:
        for stage, seconds in entry.get("provenance", {}).get("timings", {}).items():
            stage_time[stage] = stage_time.get(stage, 0.0) + seconds
    return {
        "name": job.spec.name,
        "repo_id": job.spec.sink.repo_id,
        "output": str(job.out_root),
        "episodes_in": len(job.selected),
        "episodes_done_before": len(job.selected) - len(job.todo),
        "episodes_out": summary["episodes"],
        "frames_out": summary["frames"],
        "dropped": [{"uid": d["uid"], "source_uid": d["source_uid"], **d.get("reason", {})}
                    for d in summary["dropped"]],
        "resolved": job.notes,
        "seconds_per_stage": {k: round(v, 3) for k, v in stage_time.items()},
        "wall_seconds": round(time.time() - job.started, 3),
        "complete_marker": COMPLETE_MARKER,
    }
