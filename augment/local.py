"""Runs a job in this process, stage after stage: for unit tests and small jobs without Ray."""

from __future__ import annotations

from tqdm.auto import tqdm

from augment.pipeline import Job, ReadEpisodes, RunStage, batch_to_rows, explain_failure, finish, plan, stream_tail
from augment.spec import PipelineSpec
from augment.parts import PartWriter


def run_local(spec: PipelineSpec, progress: bool = True) -> dict:
    job = plan(spec)
    try:
        _execute(job, progress)
        return finish(job)
    except Exception as e:
        raise explain_failure(job, e, in_worker=False) from None
    finally:
        job.release()


def _execute(job: Job, progress: bool) -> None:
    spec = job.spec
    reader = ReadEpisodes(str(spec.source.root), spec.source.cameras, job.decoded, job.copied, job.streamed)
    stages = [RunStage(s) for s in spec.stages[:job.tail]]  # whole episodes; the per-frame tail runs in the writer
    writer = PartWriter(job.out_root, job.layout, job.run_id,
                        tail=stream_tail(spec.stages[job.tail:], job.streamed, job.copied, job.layout.video))
    pending: list[dict] = []
    for index in tqdm(job.todo, desc="episodes", unit="ep", disable=not progress):
        batch = reader({"episode_index": [index]})
        for stage in stages:
            batch = stage(batch)
        pending.extend(batch_to_rows(batch))
        if len(pending) >= spec.sink.episodes_per_file:
            writer.write(pending)
            pending = []
    if pending:
        writer.write(pending)
