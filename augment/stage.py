"""What every stage is: a pydantic spec (its YAML block) and a plain, Ray-free class that maps a batch
of episodes to a batch of episodes.

The runner (augment/runner.py) turns each stage into a Ray Data actor pool; augment/local.py runs
the same objects in-process for tests. A stage never imports ray.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from augment.episode import VISUAL_DTYPES, Episode, numeric_features


MAX_INT = 2**31  # no count, size or index in a spec is larger; beyond it is a typo
MAX_VARIANTS = 1000  # new episodes per input; more is a typo, not a plan


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        return any(_accepts_bool(a) for a in get_args(annotation))
    return False


class StrictSpec(BaseModel):
    """Base of every spec block: rejects what pydantic's lax mode would quietly coerce."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _strict_values(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and not _accepts_bool(annotation):  # lax mode reads `true` as 1 / 1.0
            raise ValueError(f"expected {_kind(annotation)}, got a boolean ({str(value).lower()})")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise ValueError(f"{value} is beyond {MAX_INT}; no count here is that large")
        if info.field_name == "cameras" and isinstance(value, (list, dict)) and not value:
            raise ValueError("an empty camera list; leave `cameras` out for the default")
        return value


def _kind(annotation: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    return " or ".join(names)


class Resources(StrictSpec):
    """How the runner places a stage: one actor pool of `concurrency` actors, each holding one copy
    of the stage (its models), fed `batch_size` episodes per call."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0, description="fractions allowed: 0.5 packs two actors per GPU")
    concurrency: int = Field(1, ge=1, description="number of actors")
    batch_size: int = Field(1, ge=1, description="episodes per call")
    custom: dict[str, float] = Field(default_factory=dict, description=(
        "Ray custom resources each actor holds, e.g. {node_a: 1} to place the stage on the nodes started "
        "with `ray start --resources '{\"node_a\": 4}'`"))


class StageSpec(StrictSpec):
    """Base of every stage's YAML block. Subclasses add their fields and set `type` to a Literal."""

    type: str
    name: str | None = Field(None, description="label in reports; defaults to the type")
    resources: Resources = Field(default_factory=Resources)

    # What `cameras: null` means for a stage that has that field: "all" the episode's cameras, or the
    # "fixed" ones (measured in the frames, augment/cameras.py): an edit that pastes a still
    # background or object is only right for a camera that does not move.
    default_cameras: ClassVar[str] = "all"
    # Whether the stage may change frames at all, and look at them: a camera no stage changes is
    # copied packet for packet by the sink, and one no stage reads is not even decoded. A stage
    # that does not say is taken to read and change every camera.
    changes_frames: ClassVar[bool] = True
    reads_frames: ClassVar[bool] = True
    # Whether the stage needs an episode's frames all at once (a segmenter that tracks back to frame 0,
    # a generator, a verifier scoring the whole video). A stage whose output frame t depends only on
    # its input's frame t (and on what is not frames: uid, seed, task) says False, and the runner may
    # call it on chunks of an episode, each a short Episode, so that no worker holds more than a chunk
    # (augment/stream.py). It must then give the same outputs, in the same order, for every chunk.
    whole_episode: ClassVar[bool] = True
    # A per-frame stage that must first look at every frame of an episode (a plate, how often each
    # pixel moves: what its per-frame work is measured against) says surveys = True: streamed, its
    # stage's survey() gets the episode's chunks before the stage is called on them, so it needs no
    # whole episode either. It opens the streamed tail (split_stages): it surveys what the tail gets.
    surveys: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return self.name or self.type

    def named_cameras(self) -> list[str]:
        """The cameras this spec names (its `cameras` list or mapping, or its `camera`)."""
        named = getattr(self, "cameras", None) or []
        named = list(named.values()) if isinstance(named, dict) else list(named)
        one = getattr(self, "camera", None)
        return named + ([one] if one else [])

    def changed_cameras(self, cameras: list[str]) -> list[str]:
        """Of `cameras` (the episode's, as they reach this stage), those whose frames this stage may
        change (after resolve()). Override for a stage that edits some cameras only."""
        return list(cameras) if self.changes_frames else []

    def read_cameras(self, cameras: list[str]) -> list[str]:
        """Of `cameras`, those whose frames this stage looks at."""
        return list(cameras) if self.reads_frames else []

    def required_features(self) -> list[str]:
        """Numeric features (action, observation.state ...) the stage cannot run without."""
        return []

    def resolve(self, features: dict, measure_cameras) -> tuple[StageSpec, dict[str, Any]]:
        """This spec checked against the dataset it will run on, with data-dependent defaults filled in.

        features: the dataset's features as they reach this stage; measure_cameras(): per camera
        {"fixed", "still_edges", "why"}, measured on demand. Returns (the resolved spec, a note for
        the job report); raises ValueError naming what the dataset lacks and what it has."""
        cameras = [k for k, f in features.items() if f["dtype"] in VISUAL_DTYPES]
        unknown = [c for c in self.named_cameras() if c not in cameras]
        if unknown:
            raise ValueError(f"camera(s) {unknown} not in the dataset; it has {cameras or 'no cameras'}")
        missing = [k for k in self.required_features() if k not in features]
        if missing:
            raise ValueError(f"needs feature(s) {missing}, which the dataset lacks; it has {numeric_features(features)}")
        if "cameras" not in type(self).model_fields or self.cameras is not None:
            return self, {}
        if self.default_cameras == "all":
            return self, {}
        if not cameras:
            raise ValueError("edits cameras, and the dataset has none")
        report = measure_cameras()
        fixed = [c for c in cameras if report[c]["fixed"]]
        if not fixed:
            raise ValueError(f"edits fixed cameras, and none of {cameras} is fixed "
                             f"({'; '.join(f'{c}: {r['why']}' for c, r in report.items())}); "
                             "name the cameras to edit with `cameras: [...]`")
        note = {"cameras": fixed, "why": {c: report[c]["why"] for c in cameras}}
        return self.model_copy(update={"cameras": fixed}), note

    def output_features(self, features: dict) -> dict:
        """The dataset features after this stage, from those before it (lerobot's feature dicts).
        Override when a stage adds, removes or reshapes a camera or a numeric feature."""
        return features

    def finish_job(self, out_root: Path) -> dict[str, Any]:
        """Called once on the driver after the dataset is committed (e.g. to assemble a job-level
        review image from what the workers wrote). Returns entries for the job report."""
        return {}

    @classmethod
    def stage_class(cls) -> type[Stage]:
        """The Stage this spec builds. Each spec imports its stage module here, not at the top of the
        spec module, so that reading specs never imports the (possibly heavy) stage code."""
        raise NotImplementedError(f"{cls.__qualname__} names no stage class")

    def build(self) -> Stage:
        return self.stage_class()(self)


class Stage:
    """A plain class: construct cheaply, load models in setup() (called once inside the worker),
    then call with a list of episodes.

    A stage may return several episodes per input (best-of-N) and may drop one by calling
    `drop(episode, reason)` and returning it: the runner then writes it to the job report instead
    of the dataset.

    Lineage: every output must descend from one input. Make outputs with `input.replace(...)`
    (never a fresh Episode): the runner marks each input's provenance with its position
    (pipeline.PARENT_KEY) and reads the mark back from each output, to give it its share of its
    source episode (what lets a rerun tell finished source episodes from half-written ones).
    """

    # Whether the work surfaces its outputs carry (Episode.surfaces) stay true of the cameras it changes:
    # it keeps the table pixel for pixel or found it itself. Otherwise the runner drops those entries.
    keeps_surfaces = False

    def __init__(self, spec: StageSpec):
        self.spec = spec

    def setup(self) -> None:
        """Load models and other heavy state. Runs once per worker, before the first call."""

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        raise NotImplementedError

    def survey(self, episode: Episode, chunks: Callable[[], Iterator[Episode]]) -> None:
        """The first pass of a stage whose spec says `surveys` (augment/stream.py): look at every frame
        of `episode` and keep what the edit of its frames needs; the stage is then called on the
        episode's chunks, in order, from its first frame. `episode` may lack the frames of its
        streamed cameras; each call of `chunks()` yields its chunks anew (short Episodes, frames
        decoded a chunk at a time), with the cameras the stage reads."""
        raise NotImplementedError(f"{type(self).__name__} has no survey(), which its spec's `surveys` promises")

    def record(self, episode: Episode, **details: Any) -> None:
        """Append this stage's settings and what it did to the episode's provenance."""
        settings = self.spec.model_dump(mode="json", exclude={"resources"})
        episode.add_stage_record({"stage": self.spec.label, "settings": settings, **details})

    def record_edit(self, episode: Episode, description: str) -> None:
        """The one edit record: provenance["edit"] = {"id", "stages", "description"}, what generators'
        prompt templates ({edit}) and the VLM's questions read. A second edit stage adds to it."""
        before = episode.provenance.get("edit") or {}
        parts = [p for p in (before.get("description", ""), description) if p]
        episode.provenance["edit"] = {"id": episode.uid, "stages": [*before.get("stages", []), self.spec.label],
                                      "description": "; ".join(parts)}

    def drop(self, episode: Episode, reason: str, **scores: Any) -> Episode:
        episode.provenance["dropped"] = {"stage": self.spec.label, "reason": reason, "scores": scores}
        return episode


def derive_seed(*parts: object) -> int:
    """A stable 32-bit seed from any parts (base seed, uid, sample index): reruns reproduce choices."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def is_dropped(episode: Episode) -> bool:
    return "dropped" in episode.provenance


def split_stages(stages: list[StageSpec]) -> int:
    """Where the per-frame tail starts: stages[split_stages(stages):] do not need whole episodes and
    come after the last stage that does; the runner streams them in chunks (augment/stream.py). A
    surveying stage starts the tail: the stages before it run on whole episodes."""
    i = len(stages)
    while i > 0 and not stages[i - 1].whole_episode:
        i -= 1
        if stages[i].surveys:
            break
    return i
