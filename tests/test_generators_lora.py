"""LoRA adapters on the image-to-video generators (the spec's `lora:` list, e.g. DreamGen's robot fine-tune).

A tiny random LoRA is made with peft on the tiny pipeline's transformer (attention projections, B not
zero so it changes the output) and saved the way diffusers' trainers save one (the pipeline's
save_lora_weights of get_peft_model_state_dict); the stage then loads it through load_lora_weights.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("peft")

from augment.episode import Episode  # noqa: E402
from augment.registry import spec_class  # noqa: E402
from tiny_models import BUILDERS, TINY_SETTINGS, tiny_wan  # noqa: E402

CAMERA = "observation.images.top"
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' default name
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def save_lora(pipe, folder, rename=None, component="transformer"):
    """Add a random rank-4 LoRA to pipe.transformer (or another component of the same architecture, Wan
    2.2's transformer_2) with peft and save it in diffusers' format."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(1)
    # init_lora_weights=False: B is random too (peft's default zero B would make the LoRA a no-op)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, init_lora_weights=False)
    with warnings.catch_warnings():  # a second call: peft warns the model had an adapter (deleted below)
        warnings.simplefilter("ignore", UserWarning)
        getattr(pipe, component).add_adapter(config)
    layers = get_peft_model_state_dict(getattr(pipe, component))
    assert layers and all(v.abs().sum() > 0 for k, v in layers.items() if "lora_B" in k)
    if rename:
        layers = {rename(k): v for k, v in layers.items()}
    type(pipe).save_lora_weights(folder, transformer_lora_layers=layers)
    getattr(pipe, component).delete_adapters("default")
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(kind):
        if kind not in cache:
            base = tmp_path_factory.mktemp(kind)
            pipe = BUILDERS[kind]()
            pipe.save_pretrained(base / "pipeline")  # before the adapter: the base model stays clean
            cache[kind] = {"model": base / "pipeline", "lora": save_lora(pipe, base / "lora"),
                           # the same weights under names no module of this transformer has
                           "foreign": save_lora(pipe, base / "foreign", lambda k: k.replace("transformer_blocks", "blocks9"))}
        return cache[kind]
    return get


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    """Tiny Wan 2.2 A14B (two experts) and a LoRA made on its low-noise expert, saved as Wan 2.2 LoRAs
    are (diffusers' transformer format; the expert it goes into is chosen when loading)."""
    base = tmp_path_factory.mktemp("wan-a14b")
    pipe = tiny_wan("2.2-a14b")
    pipe.save_pretrained(base / "pipeline")
    return {"model": base / "pipeline", "lora": save_lora(pipe, base / "lora", component="transformer_2")}


def episode() -> Episode:
    rng = np.random.default_rng(0)
    return Episode(frames={CAMERA: rng.integers(0, 256, (6, 24, 40, 3), dtype=np.uint8)}, task="pick the red cube",
                   fps=10, uid="ep000001", provenance={"source": {"episode_index": 1}})


def rollout(kind, model, **fields) -> np.ndarray:
    spec = spec_class(kind).model_validate({"type": kind, "model": str(model), "dtype": "float32", "device": "cpu",
                                            "pin_first_frame": False, "max_clips": 1, **TINY_SETTINGS[kind], **fields})
    stage = spec.build()
    stage.setup()
    return stage([episode()])[0].frames[CAMERA]


@pytest.mark.parametrize("kind", ["cogvideox-i2v", "ltx-i2v"])
def test_lora_changes_the_rollout_and_scale_zero_is_the_base_model(kind, saved):
    files = saved(kind)
    assert (files["lora"] / LORA_FILE).is_file()
    base = rollout(kind, files["model"])
    lora = rollout(kind, files["model"], lora=[{"path": str(files["lora"])}])
    assert np.abs(lora.astype(int) - base).mean() > 1.0  # same seed, other weights: another video
    # the file itself, and a folder + weight_name, load the same adapter
    again = rollout(kind, files["model"], lora=[{"path": str(files["lora"] / LORA_FILE), "name": "robot"}])
    assert np.array_equal(again, lora)
    # scale 0: the adapter is loaded but contributes nothing
    off = rollout(kind, files["model"], lora=[{"path": str(files["lora"]), "weight_name": LORA_FILE, "scale": 0.0}])
    assert np.array_equal(off, base)


def test_two_adapters_combine_by_their_scales(saved):
    files = saved("cogvideox-i2v")
    one = rollout("cogvideox-i2v", files["model"], lora=[{"path": str(files["lora"])}])
    # the same LoRA twice at half scale adds up to it once at full scale (LoRA deltas are linear in scale)
    halves = rollout("cogvideox-i2v", files["model"],
                     lora=[{"path": str(files["lora"]), "scale": 0.5}, {"path": str(files["lora"]), "scale": 0.5}])
    assert np.abs(halves.astype(int) - one).max() <= 2  # float rounding of the two sums


def test_lora_errors_name_the_field_and_the_cause(saved, tmp_path):
    files = saved("cogvideox-i2v")
    with pytest.raises(ValueError, match=r"cogvideox-i2v\.lora\[0\]: cannot load .*nope.* \(no such local file or folder"):
        rollout("cogvideox-i2v", files["model"], lora=[{"path": str(tmp_path / "nope")}])
    with pytest.raises(ValueError, match=r"lora\[1\]: cannot load .*foreign.* into CogVideoXImageToVideoPipeline: "
                                         r".*not found in the base model"):
        rollout("cogvideox-i2v", files["model"], lora=[{"path": str(files["lora"])}, {"path": str(files["foreign"])}])
    with pytest.raises(ValueError, match=r"lora\[0\]: cannot load .*other\.safetensors"):
        rollout("cogvideox-i2v", files["model"], lora=[{"path": str(files["lora"]), "weight_name": "other.safetensors"}])


def test_wan22_lora_goes_into_the_expert_its_target_names(experts, saved):
    # 4 steps (t = 999, 900 | 750, 500) and boundary_ratio 0.875: each expert denoises two of them
    model, path, steps = experts["model"], str(experts["lora"]), {"num_inference_steps": 4}
    base = rollout("wan-i2v", model, **steps).astype(int)
    into = {target: rollout("wan-i2v", model, **steps, lora=[{"path": path, "target": target}]).astype(int)
            for target in ("transformer", "transformer_2", "both")}
    # the same file adapts the high-noise expert, the low-noise one, or both: three different videos
    for target, video in into.items():
        assert np.abs(video - base).mean() > 0.05, target  # tiny random experts: small, never 0
    for a, b in [("transformer", "transformer_2"), ("both", "transformer"), ("both", "transformer_2")]:
        assert not np.array_equal(into[a], into[b]), (a, b)
    # one adapter name in both experts: its scale applies to each (0: the base model)
    off = rollout("wan-i2v", model, **steps, lora=[{"path": path, "target": "both", "scale": 0.0}])
    assert np.array_equal(off, base)
    # a one-expert model has no transformer_2 to adapt
    with pytest.raises(ValueError, match=r"cogvideox-i2v\.lora\[0\]\.target: CogVideoXImageToVideoPipeline from "
                                         r".* has no transformer_2 \(two experts: Wan 2\.2 A14B\)"):
        rollout("cogvideox-i2v", saved("cogvideox-i2v")["model"], lora=[{"path": path, "target": "both"}])
