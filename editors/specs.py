"""The YAML blocks of the image edits (`type:` background, surface, lighting, inpaint_background,
backdrop, add_object) and of the segmenter and diffusion blocks they hold.

Every spec of the package lives here and registers itself (augment/registry.py); this module imports
nothing heavier than pydantic, so a spec loads (and `augment --help` starts) without torch. A spec's
`stage_class()` imports its stage module, where the work is done, only when a job builds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from augment.registry import register
from augment.stage import MAX_VARIANTS, StageSpec, StrictSpec


Box = list[float]  # [x0, y0, x1, y1], fractions of width and height
Point = list[float]  # [x, y], fractions


class SamArchitecture(StrictSpec):  # nested blocks are as strict as the stage
    """A SAM built from explicit sizes (model_type: custom): for small or fine-tuned checkpoints."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = Field(1024, ge=32)
    patch_size: int = Field(16, ge=2)
    encoder_embed_dim: int = Field(768, ge=8)
    encoder_depth: int = Field(12, ge=1)
    encoder_num_heads: int = Field(12, ge=1)
    encoder_global_attn_indexes: list[int] = Field(default_factory=lambda: [2, 5, 8, 11])
    window_size: int = Field(14, ge=0)
    prompt_embed_dim: int = Field(256, ge=8)
    decoder_mlp_dim: int = Field(2048, ge=8)
    decoder_num_heads: int = Field(8, ge=1)
    iou_head_hidden_dim: int = Field(256, ge=8)


class SegmenterSpec(StrictSpec):  # nested blocks are as strict as the stage
    model_config = ConfigDict(extra="forbid")

    kind: Literal["motion", "sam", "text"] = "motion"
    # motion (also the robot mask of every kind)
    diff_threshold: float = Field(18.0, gt=0, description="colour distance that makes a pixel moving")
    saturation_threshold: float | None = Field(0.45, description="keep strongly coloured still pixels; null disables")
    protect_motion: bool = Field(True, description="add every pixel that moves during the episode to the robot mask")
    grow: int = Field(2, ge=0, description="dilate foreground and robot masks by this many px (a safety margin)")
    foreground: Literal["moving", "workspace"] = Field(
        "moving", description="kind motion: the foreground is what moves (and coloured still things), or the whole "
                              "workspace - robot, objects and the table they lie on (editors/workspace.workspace_masks) - "
                              "for edits that replace only what lies behind it")
    # sam
    checkpoint: str | None = Field(None, description="local path of a SAM state_dict (.pth), for kinds sam and text")
    model_type: Literal["vit_h", "vit_l", "vit_b", "custom"] = "vit_h"
    architecture: SamArchitecture | None = Field(None, description="sizes for model_type: custom")
    boxes: list[Box] = Field(default_factory=list, description="SAM box prompts of things to keep")
    points: list[Point] = Field(default_factory=list, description="SAM point prompts of things to keep")
    robot_boxes: list[Box] = Field(default_factory=list, description="SAM box prompts of the robot")
    automatic: bool = Field(False, description="kind sam without prompts: keep automatic masks under max_area")
    points_per_side: int = Field(16, ge=2)
    max_area: float = Field(0.15, gt=0, le=1, description="automatic masks larger than this (table, wall) are background")
    pred_iou_thresh: float = Field(0.88, ge=0, le=1, description="automatic: SAM's own quality score a mask needs")
    stability_score_thresh: float = Field(0.95, ge=0, le=1, description="automatic: mask stability a mask needs")
    # text
    detector: str | None = Field(None, description="OWLv2 model id or local path, for kind text")
    keep: list[str] = Field(default_factory=list, description='things to keep, in words: ["red cube"]')
    robot: list[str] = Field(default_factory=lambda: ["robot arm", "gripper"], description="the robot, in words")
    box_threshold: float = Field(0.1, ge=0, le=1, description="detector score a box needs")
    max_boxes: int = Field(3, ge=1, description="most boxes kept per phrase")
    # where the models run
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="autocast dtype for SAM and the detector")

    @model_validator(mode="after")
    def _needs(self) -> SegmenterSpec:
        if self.kind in ("sam", "text") and not self.checkpoint:
            raise ValueError(f"segmenter kind {self.kind!r} needs `checkpoint`: a local SAM .pth file")
        if self.model_type == "custom" and self.architecture is None:
            raise ValueError("segmenter model_type 'custom' needs `architecture` (image_size, encoder_embed_dim, ...)")
        if self.kind == "text" and not self.detector:
            raise ValueError("segmenter kind 'text' needs `detector`: an OWLv2 model id or local path")
        if self.kind == "sam" and not (self.boxes or self.points or self.automatic):
            raise ValueError("segmenter kind 'sam' needs prompts (`boxes` or `points`) or `automatic: true`")
        for name in ("boxes", "robot_boxes"):
            for box in getattr(self, name):
                if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                    raise ValueError(f"{name}: {box} is not [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
        for point in self.points:
            if len(point) != 2 or not all(0 <= v <= 1 for v in point):
                raise ValueError(f"points: {point} is not [x, y] in fractions of the image")
        return self

    @property
    def model_name(self) -> str:
        names = {"motion": "motion-median", "sam": f"sam:{self.checkpoint}", "text": f"{self.detector}+sam:{self.checkpoint}"}
        return names[self.kind]


class DiffusionSpec(StrictSpec):  # nested blocks are as strict as the stage
    """A diffusers pipeline, by model id or local path, and how to run it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="model id or local path (a folder with model_index.json)")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="bfloat16 on a GPU halves memory")
    device: str = Field("auto", description="torch device; auto = cuda when available, else cpu")
    enable_model_cpu_offload: bool = Field(False, description="keep sub-models on the CPU until each runs (needs accelerate)")
    steps: int = Field(30, ge=1, description="denoising steps")
    guidance_scale: float = Field(7.5, ge=0)
    strength: float = Field(1.0, gt=0, le=1, description="inpainting: 1.0 repaints the masked region from noise")
    resolution: int = Field(512, ge=8, description="long side of the image the model works at")
    negative_prompt: str = ""


class ImageEditSpec(StageSpec):
    """What every image edit's spec shares: review pages, and fixed cameras by default (a still
    background or object pasted into a moving camera's view would be wrong)."""

    cameras: list[str] | None = Field(
        None, description="cameras to edit; default: the fixed ones, measured in the frames (wrist cameras move)")
    review_dir: str | None = Field(None, description="write one review PNG per output episode into this folder")
    review_max: int = Field(50, ge=0, description="review PNGs per worker at most, so a big job writes a sample")

    default_cameras = "fixed"

    def changed_cameras(self, cameras: list[str]) -> list[str]:
        return [c for c in cameras if self.cameras is None or c in self.cameras]

    def read_cameras(self, cameras: list[str]) -> list[str]:
        return self.changed_cameras(cameras)

    def finish_job(self, out_root: Path) -> dict:
        """Stack the per-episode review PNGs the workers wrote into one review.png for the job."""
        if not self.review_dir:
            return {}
        from editors.review import write_job_grid

        grid = write_job_grid(Path(self.review_dir))
        return {"review": str(grid)} if grid else {}


class EditSpec(ImageEditSpec):
    segmenter: SegmenterSpec = Field(default_factory=SegmenterSpec, description="what to keep; default weight-free")
    apply_to: Literal["first", "all"] = Field("first", description="first: rollout mode; all: structure-preserving")
    first_frames: int = Field(1, ge=1, description="frames edited when apply_to is first")
    variants: int = Field(1, ge=1, le=MAX_VARIANTS, description="new episodes per input, each with its own seed")
    seed: int = 0


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@register
class BackgroundSpec(ImageEditSpec):
    type: Literal["background"] = "background"
    backgrounds: str = Field("procedural", description="'procedural', or a folder of images")
    variants: int = Field(1, ge=1, le=MAX_VARIANTS, description="new episodes per input, each with another background")
    seed: int = Field(0, description="with the episode uid and variant, picks the background")
    diff_threshold: float = Field(18.0, gt=0, description="colour distance that makes a pixel foreground")
    saturation_threshold: float | None = Field(
        0.45, description="keep strongly coloured still pixels (objects) as foreground; null disables"
    )
    feather: int = Field(1, ge=0, description="unmix the seam over this many px outside the kept pixels (0: hard cut)")
    segmenter: SegmenterSpec | None = Field(
        None, description="a model-backed segmenter (kind sam or text); default: the weight-free thresholds above"
    )

    @field_validator("backgrounds")
    @classmethod
    def _folder_exists(cls, value: str) -> str:
        if value != "procedural":
            folder = Path(value)
            if not folder.is_dir():
                raise ValueError(f"{value!r} is neither 'procedural' nor an existing folder")
            if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
                raise ValueError(f"folder {value!r} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return value

    # The weight-free segmenter needs every frame only to survey the episode (its plate, how often each
    # pixel moves), then masks frame by frame: streamed in chunks (augment/stream.py), two passes. A
    # model segmenter tracks through the whole video: whole episodes.
    surveys = True

    @property
    def whole_episode(self) -> bool:
        return self.segmenter is not None

    @classmethod
    def stage_class(cls):
        from editors.background import BackgroundStage

        return BackgroundStage


@register
class SurfaceSpec(ImageEditSpec):
    type: Literal["surface"] = "surface"
    textures: str = Field("procedural", description="'procedural', or a folder of images")
    variants: int = Field(1, ge=1, le=MAX_VARIANTS, description="new episodes per input, each with another texture")
    seed: int = Field(0, description="with the episode uid and variant, picks the texture")
    diff_threshold: float = Field(18.0, gt=0, description="colour distance that makes a pixel moving")
    shading_blur: int = Field(4, ge=1, description="px scale over which the old surface's grain is smoothed away")
    contrast: float = Field(0.35, ge=0, le=1, description="procedural textures: how far their two colours lie apart")

    @property
    def textures_spec(self) -> BackgroundSpec:  # the texture source is the background stage's
        return BackgroundSpec(backgrounds=self.textures)

    @classmethod
    def stage_class(cls):
        from editors.surface import SurfaceStage

        return SurfaceStage


@register
class LightingSpec(ImageEditSpec):
    type: Literal["lighting"] = "lighting"
    variants: int = Field(1, ge=1, le=MAX_VARIANTS, description="new episodes per input, each with another light")
    seed: int = Field(0, description="with the episode uid and variant, draws the light")
    exposure: tuple[float, float] = Field((-0.7, 0.5), description="range of the exposure change, in stops")
    temperature: tuple[float, float] = Field((3200.0, 9000.0), description="range of the light's colour temperature, K")
    tint: float = Field(0.04, ge=0, le=0.3, description="largest green-magenta shift (a fraction of the green gain)")
    falloff: float = Field(0.35, ge=0, le=0.9, description="largest brightness change from the image centre to its edge")

    default_cameras = "all"  # a new light falls on every camera's view, wrist cameras included
    whole_episode = False  # frame t's light depends on frame t and the episode's draw only: streamed in chunks

    @model_validator(mode="after")
    def _ranges(self) -> LightingSpec:
        for name in ("exposure", "temperature"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: [low, high] with low <= high, got [{low}, {high}]")
        if self.temperature[0] < 1000 or self.temperature[1] > 40000:
            raise ValueError("temperature: between 1000 and 40000 K")
        return self

    @classmethod
    def stage_class(cls):
        from editors.lighting import LightingStage

        return LightingStage


@register
class InpaintBackgroundSpec(EditSpec):
    type: Literal["inpaint_background"] = "inpaint_background"
    diffusion: DiffusionSpec = Field(description="an inpainting pipeline (e.g. stable-diffusion-2-inpainting)")
    prompts: list[str] = Field(min_length=1, description="one is picked per variant by the seed")
    feather: int = Field(2, ge=0, description="soften the seam over this many px inside the background")

    @classmethod
    def stage_class(cls):
        from editors.inpaint_background import InpaintBackgroundStage

        return InpaintBackgroundStage


@register
class BackdropSpec(EditSpec):
    type: Literal["backdrop"] = "backdrop"
    diffusion: DiffusionSpec = Field(description="a text-to-image pipeline (e.g. stable-diffusion-v1-5, sdxl-turbo)")
    prompts: list[str] = Field(min_length=1, description="one is picked per variant by the seed")
    feather: int = Field(2, ge=0, description="soften the seam over this many px inside the background")

    @classmethod
    def stage_class(cls):
        from editors.backdrop import BackdropStage

        return BackdropStage


ASSET_SUFFIXES = {".png", ".webp"}


@register
class AddObjectSpec(EditSpec):
    type: Literal["add_object"] = "add_object"
    mode: Literal["inpaint", "paste"] = "paste"
    objects: list[str] = Field(default_factory=list, description="inpaint: what to paint, in words")
    prompt_template: str = Field("a photo of a {object} on a table", description="inpaint prompt; {object} is filled")
    assets: str | None = Field(None, description="paste: a folder of RGBA images (or one file); the name is the stem")
    count: int = Field(1, ge=1, description="objects per frame")
    size: tuple[float, float] = Field((0.12, 0.2), description="box side range, fraction of the shorter image side")
    boxes: list[Box] = Field(default_factory=list, description="fixed boxes instead of free placement")
    surface_box: Box = Field([0.0, 0.4, 1.0, 1.0], description="where the support surface is, [x0, y0, x1, y1] fractions")
    surface_prompt: str | None = Field(
        None, description='find the support surface in words ("table top"); needs segmenter kind text')
    margin: int = Field(3, ge=0, description="px kept between an object and any foreground")
    shadow: bool = True
    shadow_strength: float = Field(0.5, ge=0, le=1)
    feather: int = Field(1, ge=0)
    task_template: str | None = Field(None, description='rewrite the task, e.g. "pick up the {object}" ({objects}, {task} too)')
    diffusion: DiffusionSpec | None = Field(None, description="inpainting pipeline, for mode inpaint")

    @model_validator(mode="after")
    def _mode_needs(self) -> AddObjectSpec:
        if self.mode == "inpaint" and (self.diffusion is None or not self.objects):
            raise ValueError("mode 'inpaint' needs `diffusion` (an inpainting model) and `objects` (prompts)")
        if self.mode == "paste":
            if not self.assets or not Path(self.assets).exists():
                raise ValueError(f"mode 'paste' needs `assets`: an existing folder of RGBA images or a file, got {self.assets!r}")
            if not asset_files(self.assets):
                raise ValueError(f"assets {self.assets!r} holds no {'/'.join(sorted(ASSET_SUFFIXES))} images")
        if self.surface_prompt and self.segmenter.kind != "text":
            raise ValueError("surface_prompt needs `segmenter.kind: text` (a detector and SAM)")
        low, high = self.size
        if not 0 < low <= high <= 1:
            raise ValueError(f"size: expected 0 < min <= max <= 1, got {list(self.size)}")
        if self.task_template is not None:
            try:
                self.task_template.format(object="x", objects="x", task="x")
            except (KeyError, IndexError) as e:
                raise ValueError(f"task_template may use {{object}}, {{objects}}, {{task}}; unknown {e}") from None
        return self

    @classmethod
    def stage_class(cls):
        from editors.add_object import AddObjectStage

        return AddObjectStage


def asset_files(assets: str) -> list[Path]:
    path = Path(assets)
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix.lower() in ASSET_SUFFIXES) if path.is_dir() else []
