"""The Wan layouts that the one-expert Wan 2.2 build of test_generators_backends.py does not cover:
Wan 2.1 I2V (a CLIP vision encoder whose image tokens the transformer cross-attends to) and Wan 2.2
A14B (a high-noise and a low-noise expert split at boundary_ratio). Each tiny build is saved with
save_pretrained and loaded by the wan-i2v stage through its own from_pretrained."""

from __future__ import annotations


import numpy as np
import pytest

from augment.episode import Episode
from augment.registry import spec_class
from tiny_models import TINY_SETTINGS, save_tiny_pipeline

CAMERA = "observation.images.top"
# Wan 2.1 needs the full 512-token text context (diffusers splits image from text tokens by it)
WAN21 = {"max_sequence_length": 512}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(layout):
        if layout not in cache:
            cache[layout] = save_tiny_pipeline("wan-i2v", tmp_path_factory.mktemp(f"wan{layout}"), layout=layout)
        return cache[layout]
    return get


def episode() -> Episode:
    rng = np.random.default_rng(0)
    return Episode(frames={CAMERA: rng.integers(0, 256, (12, 24, 40, 3), dtype=np.uint8)}, task="pick the red cube",
                   fps=30, uid="ep000001", provenance={"source": {"episode_index": 1}})


def build(folder, **fields):
    spec = spec_class("wan-i2v").model_validate({"type": "wan-i2v", "model": str(folder), "dtype": "float32",
                                                 "device": "cpu", **TINY_SETTINGS["wan-i2v"], **fields})
    stage = spec.build()
    stage.setup()
    return stage


def spy(module) -> list[dict]:
    """The keyword arguments of every forward call of module (the pipeline calls its models by keyword)."""
    calls = []
    module.register_forward_hook(lambda _m, _args, kwargs, _out: calls.append(kwargs), with_kwargs=True)
    return calls


def videos(outs) -> list[np.ndarray]:
    return [o.frames[CAMERA] for o in outs]


def check_rollouts(outs, source: Episode, n: int) -> None:
    assert [o.uid for o in outs] == [f"ep000001-s{k}" for k in range(n)]
    for video in videos(outs):
        # 12 frames at 30 fps = 7 frames at 16 fps: one clip, resampled back, at the camera's size
        assert video.shape == (12, 24, 40, 3) and video.dtype == np.uint8
        assert np.array_equal(video[0], source.frames[CAMERA][0])  # pinned: the edited frame itself
    assert not np.array_equal(videos(outs)[0][1:], videos(outs)[1][1:])  # seeds differ, so do samples


def test_wan21_batched_samples_share_the_clip_image_tokens(saved):
    source = episode()
    stage = build(saved("2.1"), **WAN21, samples_per_edit=3, batch_samples=True)
    assert type(stage.pipe.image_encoder).__name__ == "CLIPVisionModel"
    encoder_calls, transformer_calls = spy(stage.pipe.image_encoder), spy(stage.pipe.transformer)
    outs = stage([source])
    check_rollouts(outs, source, 3)
    assert len(encoder_calls) == 1  # one pipeline call for the 3 samples: the edited frame encoded once
    # 2 steps x (conditional + unconditional); every call gets the image tokens once per sample
    assert len(transformer_calls) == 4
    for call in transformer_calls:
        tokens = call["encoder_hidden_states_image"]
        assert tuple(tokens.shape) == (3, 17, 16)  # class token + 4x4 patches of the 32x32 CLIP input, width 16
        assert bool((tokens[0] == tokens[2]).all()) and float(tokens.abs().sum()) > 0


def test_wan21_rollouts_depend_on_the_image_tokens_and_reproduce_by_seed(saved):
    source = episode()
    one_by_one = videos(build(saved("2.1"), **WAN21, samples_per_edit=2)([source]))
    batched = videos(build(saved("2.1"), **WAN21, samples_per_edit=2, batch_samples=True)([source]))
    again = videos(build(saved("2.1"), **WAN21, samples_per_edit=1)([source]))[0]
    assert np.array_equal(again, one_by_one[0])  # a fresh stage, the same seed: the same video
    for a, b in zip(one_by_one, batched):
        assert np.abs(a.astype(int) - b).max() <= 2  # same noise per seed; batched matmuls round differently
    # silence the image branch (its value projections): the transformer really used the CLIP tokens
    blind = build(saved("2.1"), **WAN21, samples_per_edit=1)
    for block in blind.pipe.transformer.blocks:
        block.attn2.add_v_proj.weight.data.zero_()
        block.attn2.add_v_proj.bias.data.zero_()
    # small with tiny random weights, but exactly 0 when the image tokens are misread as text (see below)
    assert np.abs(videos(blind([source]))[0].astype(int) - one_by_one[0]).mean() > 0.1


def test_wan22_a14b_experts_split_the_steps_at_the_boundary(saved):
    source = episode()
    # 4 steps at t = 999, 900, 750, 500; boundary_ratio 0.875: two steps per expert
    stage = build(saved("2.2-a14b"), num_inference_steps=4, guidance_scale=1.0, samples_per_edit=2,
                  batch_samples=True)
    assert stage.pipe.image_encoder is None and stage.pipe.config.boundary_ratio == 0.875
    high, low = spy(stage.pipe.transformer), spy(stage.pipe.transformer_2)
    outs = stage([source])
    check_rollouts(outs, source, 2)
    assert [int(c["timestep"][0]) for c in high] == [999, 900]
    assert [int(c["timestep"][0]) for c in low] == [750, 500]
    assert all(c["encoder_hidden_states_image"] is None for c in high + low)
    single = videos(build(saved("2.2-a14b"), num_inference_steps=4, guidance_scale=1.0)([source]))[0]
    assert np.abs(single.astype(int) - videos(outs)[0]).max() <= 2  # sample 0 alone: the same video


def test_wan22_a14b_low_noise_guidance(saved):
    source = episode()
    fields = {"num_inference_steps": 4, "guidance_scale": 3.0}
    same = videos(build(saved("2.2-a14b"), **fields)([source]))[0]
    stated = videos(build(saved("2.2-a14b"), guidance_scale_2=3.0, **fields)([source]))[0]
    other = videos(build(saved("2.2-a14b"), guidance_scale_2=1.0, **fields)([source]))[0]
    assert np.array_equal(same, stated)  # left out, the low-noise expert takes guidance_scale
    assert np.abs(other.astype(int) - same).mean() > 0.05  # tiny random experts: small, never 0
    with pytest.raises(ValueError, match=r"wan-i2v\.guidance_scale_2: .* has one expert \(no boundary_ratio"):
        build(saved("2.1"), **WAN21, guidance_scale_2=3.0)


def test_wan21_refuses_a_text_length_that_would_hide_the_image_tokens(saved):
    with pytest.raises(ValueError, match=r"wan-i2v\.max_sequence_length: .* Wan 2\.1 I2V model .* needs 512; got 16"):
        build(saved("2.1"), max_sequence_length=16)
