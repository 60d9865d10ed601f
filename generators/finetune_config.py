"""Settings of an `augment finetune` run (a LoRA on an image-to-video model's transformer).

Light on purpose (pydantic only): `augment finetune --help` lists them without importing torch.
Left None, the size, frame count and fps come from the model family's published defaults (the same
ones the generator stage uses), so the clips it learns from look like the clips it will generate.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from augment.settings import settings_from_overrides

LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' default name: the `lora:` field finds it
REPORT_FILE = "report.json"
CONFIG_FILE = "finetune.json"


class FinetuneConfig(BaseModel):
    """What `augment finetune --set key=value` can change."""

    model_config = ConfigDict(extra="forbid")

    family: str | None = Field(None, description="generator type whose objective and layout to use "
                                                 "(wan-i2v, cogvideox-i2v, ltx-i2v, cosmos-predict2, svd); "
                                                 "default: read from the model's "
                                                 "pipeline class")
    camera: str | None = Field(None, description="the camera to learn; may be left out when the dataset has one")
    prompt_template: str = Field("{task}. {edit}", description="as the generator stage's: the task is the prompt")
    num_frames: int | None = Field(None, ge=2, description="frames per clip at model_fps (rounded to the VAE's 4k+1)")
    height: int | None = Field(None, ge=8, description="clip size; default: the model's pixel budget, camera aspect")
    width: int | None = Field(None, ge=8)
    model_fps: float | None = Field(None, gt=0, description="the fps the model generates at")
    clips_per_episode: int = Field(4, ge=1, description="most clips cut from one episode (consecutive, no overlap)")
    edit_variants: int = Field(0, ge=0, description="background-edited copies of each training episode added as "
                                                    "clips (editors/background.py's procedural recipe); held-out "
                                                    "episodes stay as recorded")
    shard_episodes: int = Field(8, ge=1, description="episodes per cache shard: encoding holds one shard's clips, "
                                                     "and an interrupted encoding resumes at the first missing one")
    max_sequence_length: int | None = Field(None, ge=1, description="text tokens; default: the generator's "
                                                                     "(Wan 512, CogVideoX 226, LTX 128, Cosmos 512)")

    expert: str | None = Field(None, pattern="^(transformer|transformer_2)$",
                               description="Wan 2.2 A14B: the expert to adapt (transformer: high noise, "
                                           "transformer_2: low noise), on its share of the noise levels")
    rank: int = Field(32, ge=1, description="LoRA rank")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; default: the rank")
    target_modules: list[str] = Field(["to_q", "to_k", "to_v", "to_out.0"], description="transformer modules adapted")
    steps: int = Field(1000, ge=1, description="optimizer steps in all (a rerun resumes towards it)")
    batch_size: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    timestep_sampling: str | None = Field(None, pattern="^(uniform|logit_normal|mode)$",
                                          description="density of the training noise levels (diffusers' "
                                                      "compute_density_for_timestep_sampling); default: "
                                                      "logit_normal for flow matching, uniform for DDPM-style")
    flow_shift: float | None = Field(None, gt=0, description="shift of the sampled sigmas; default: the "
                                                             "scheduler's flow_shift (Wan 480p: 3.0)")
    checkpoint_every: int = Field(100, ge=1, description="steps between checkpoints (resume points)")
    keep_checkpoints: int = Field(2, ge=1)
    val_fraction: float = Field(0.2, ge=0, lt=1, description="episodes held out for the report, never trained on")
    eval_sigmas: list[float] = Field([0.1, 0.3, 0.5, 0.7, 0.9], description="noise levels of the held-out loss "
                                     "(flow: sigma before the shift; DDPM-style: the fraction of the timesteps)")
    rollout_episodes: int = Field(2, ge=0, description="held-out episodes rolled out from their first frame with "
                                                        "and without the LoRA, compared with what was recorded")
    rollout_steps: int | None = Field(None, ge=1, description="denoising steps of those rollouts; default: the model's")
    rollout_guidance: float | None = Field(None, ge=0, description="their guidance scale; default: the model's")
    rollout_fields: dict = Field({}, description="more generator-stage fields for those rollouts (Cosmos: "
                                                 "safety_checker; SVD: motion_bucket_id, noise_aug_strength, which "
                                                 "training uses too)")
    seed: int = 0
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'")
    dtype: str = Field("float32", pattern="^(float32|bfloat16|float16)$",
                       description="weights of the frozen model; the LoRA trains in float32")
    gradient_checkpointing: bool = False
    num_threads: int = Field(2, ge=1, description="torch CPU threads")


def config_from_overrides(pairs: list[str]) -> FinetuneConfig:
    return settings_from_overrides(FinetuneConfig, pairs)
