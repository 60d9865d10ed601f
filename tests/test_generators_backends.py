"""Every diffusers backend, built from tiny configs with random weights (tests/tiny_models.py), saved with
save_pretrained and loaded by the stage through from_pretrained, rolls out from an image on the CPU."""

from __future__ import annotations


import numpy as np
import pytest

from augment.registry import spec_class
from tiny_models import TINY_SETTINGS, save_tiny_pipeline

# Budget: SVD's UNet and Cosmos are the slowest tiny builds (several seconds per clip on 2 CPUs).
SLOW = {"svd", "cosmos-predict2"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = save_tiny_pipeline(kind, tmp_path_factory.mktemp(kind))
        return cache[kind]
    return get


def episode(length=12, fps=30):
    from augment.episode import Episode

    rng = np.random.default_rng(0)
    return Episode(frames={"observation.images.top": rng.integers(0, 256, (length, 24, 40, 3), dtype=np.uint8)},
                   task="pick the red cube", fps=fps, uid="ep000001", state=np.zeros((length, 3), np.float32),
                   action=np.zeros((length, 3), np.float32), provenance={"source": {"episode_index": 1}})


def build(kind, folder, **fields):
    settings = {**TINY_SETTINGS[kind], **fields}
    spec = spec_class(kind).model_validate({"type": kind, "model": str(folder), "dtype": "float32",
                                            "device": "cpu", **settings})
    stage = spec.build()
    stage.setup()
    return stage


def params(kinds):
    return [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in kinds]


@pytest.mark.parametrize("kind", params(["wan-i2v", "ltx-i2v", "cogvideox-i2v", "cosmos-predict2", "svd"]))
def test_rollout_from_an_image(kind, saved):
    stage = build(kind, saved(kind), samples_per_edit=2, pin_first_frame=False)
    ep = episode(length=12, fps=30)
    outs = stage([ep])
    assert [o.uid for o in outs] == ["ep000001-s0", "ep000001-s1"]
    record = outs[0].provenance["stages"][-1]
    for out in outs:
        video = out.frames["observation.images.top"]
        # the horizon (12 frames at 30 fps) is reached at the dataset's fps and camera size
        assert video.shape == (12, 24, 40, 3) and video.dtype == np.uint8 and out.fps == 30
        assert out.action is None and out.state is None
    model_frames = record["clip_frames"] + (record["clips"] - 1) * (record["clip_frames"] - 1)
    assert model_frames >= round(11 * record["model_fps"] / 30) + 1
    # determinism by seed: a fresh stage gives the same samples; the two samples differ
    again = build(kind, saved(kind), samples_per_edit=1, pin_first_frame=False)([ep])[0]
    assert np.array_equal(again.frames["observation.images.top"], outs[0].frames["observation.images.top"])
    assert not np.array_equal(outs[0].frames["observation.images.top"], outs[1].frames["observation.images.top"])


def test_pinned_first_frame_and_chained_clips(saved):
    # CogVideoX's tiny build is the fastest: chain three clips and pin the edited frame
    stage = build("cogvideox-i2v", saved("cogvideox-i2v"), model_fps=8, horizon=90, max_clips=3)
    ep = episode(length=12, fps=30)
    out = stage([ep])[0]
    record = out.provenance["stages"][-1]
    assert record["model_size"] == [16, 16]  # learned positional embeddings: the model's only size
    assert record["clips"] == 3  # 89/30 s at 8 fps: model frame 24, 25 frames = 9 + 8 + 8
    assert len(out.frames["observation.images.top"]) == 90 and not record["cut_short"]
    assert np.array_equal(out.frames["observation.images.top"][0], ep.frames["observation.images.top"][0])


def test_batched_samples_match_one_by_one(saved):
    one = build("wan-i2v", saved("wan-i2v"), samples_per_edit=2, horizon=5)([episode()])
    batched = build("wan-i2v", saved("wan-i2v"), samples_per_edit=2, horizon=5, batch_samples=True)([episode()])
    for a, b in zip(one, batched):
        diff = np.abs(a.frames["observation.images.top"].astype(int) - b.frames["observation.images.top"].astype(int))
        assert diff.max() <= 2  # same noise per seed; batched matmuls may round differently


def test_cosmos_conditions_on_several_frames(saved):
    stage = build("cosmos-predict2", saved("cosmos-predict2"), conditioning_frames=2, horizon=20)
    out = stage([episode(length=20)])[0]
    assert out.frames["observation.images.top"].shape == (20, 24, 40, 3)
    assert out.provenance["stages"][-1]["clips"] == 2  # 9 + 7 model frames with 2 of overlap


def test_clear_errors(saved):
    with pytest.raises(ValueError, match=r"height/width 20x20 must be multiples of 16"):
        build("wan-i2v", saved("wan-i2v"), height=20, width=20)([episode()])
    with pytest.raises(ValueError, match=r"svd\.lora\[0\]\.target: SVD has one denoiser, its UNet"):
        build("svd", saved("svd"), lora=[{"path": "x", "target": "transformer_2"}])
