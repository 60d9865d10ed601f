"""Structure-preserving background replacement: foreground and recorded data stay exactly as they were."""

from __future__ import annotations

import numpy as np
import pytest

from augment.episode import Episode
from editors.background import paste_backdrop, procedural_texture
from editors.specs import BackgroundSpec
from editors.segment import foreground_masks


def synthetic_episode(n=20, h=40, w=56) -> tuple[Episode, np.ndarray]:
    """A grey, textured static scene with a red square moving across it; returns the true mask."""
    rng = np.random.default_rng(1)
    scene = (110 + rng.integers(-6, 7, size=(h, w, 3))).astype(np.uint8)
    frames, truth = [], []
    for t in range(n):
        img, mask = scene.copy(), np.zeros((h, w), bool)
        y, x = 10 + t % 5, 4 + 2 * t
        img[y:y + 8, x:x + 8] = (200, 30, 30)
        mask[y:y + 8, x:x + 8] = True
        frames.append(img), truth.append(mask)
    episode = Episode(frames={"cam": np.stack(frames)}, task="push", fps=10, uid="ep000001",
                      state=rng.normal(size=(n, 3)).astype(np.float32), action=rng.normal(size=(n, 2)).astype(np.float32))
    return episode, np.stack(truth)


def test_masks_find_the_moving_object():
    episode, truth = synthetic_episode()
    masks = foreground_masks(episode.frames["cam"])
    assert masks.shape == truth.shape and masks.dtype == bool
    assert masks[truth].mean() > 0.99  # the object is found ...
    assert masks[~truth].mean() < 0.15  # ... and little else (dilation adds a rim)


def test_stage_keeps_foreground_pixels_and_recorded_data_bit_identical():
    episode, truth = synthetic_episode()
    stage = BackgroundSpec(variants=3, seed=5).build()
    stage.setup()
    outputs = stage([episode])
    assert [o.uid for o in outputs] == ["ep000001-bg0", "ep000001-bg1", "ep000001-bg2"]
    for out in outputs:
        assert out.frames["cam"].dtype == np.uint8 and out.frames["cam"].shape == episode.frames["cam"].shape
        np.testing.assert_array_equal(out.frames["cam"][truth], episode.frames["cam"][truth])
        assert np.abs(out.frames["cam"][~truth].astype(int) - episode.frames["cam"][~truth]).mean() > 10
        assert out.state is episode.state and out.action is episode.action and out.task == episode.task
        record = out.provenance["stages"][-1]
        assert record["stage"] == "background" and 0 < record["foreground_fraction"]["cam"] < 0.5
    assert not np.array_equal(outputs[0].frames["cam"], outputs[1].frames["cam"])  # different backgrounds
    # A rerun with the same seed reproduces the same pixels; another seed does not.
    again = stage([episode])
    np.testing.assert_array_equal(again[1].frames["cam"], outputs[1].frames["cam"])
    other = BackgroundSpec(variants=3, seed=6).build()
    other.setup()
    assert not np.array_equal(other([episode])[1].frames["cam"], outputs[1].frames["cam"])


def test_a_paste_that_touches_a_kept_pixel_is_refused(monkeypatch):
    """The background edit checks its own promise on every output, as the other edits do: a compositing
    bug that changes a kept pixel stops the stage instead of writing a damaged episode."""
    import editors.background as background

    episode, _ = synthetic_episode()
    stage = BackgroundSpec(variants=1).build()
    stage.setup()
    from editors.workspace import workspace_masks

    assert workspace_masks(episode.frames["cam"]).keep.any()

    def leaky(frames, masks, backdrop, feather, plate=None):
        out = frames.copy()
        out[np.nonzero(masks)[0][0], np.nonzero(masks)[1][0], np.nonzero(masks)[2][0]] ^= 1  # one kept pixel
        return out

    monkeypatch.setattr(background, "paste_backdrop", leaky)
    with pytest.raises(RuntimeError, match="changed 1 protected pixels"):
        stage([episode])


def test_folder_backgrounds(tmp_path):
    import cv2

    colour = np.zeros((30, 30, 3), np.uint8)
    colour[:] = (0, 255, 0)  # BGR green on disk
    cv2.imwrite(str(tmp_path / "green.png"), colour)
    episode, truth = synthetic_episode()
    stage = BackgroundSpec(backgrounds=str(tmp_path), feather=0).build()
    stage.setup()
    out = stage([episode])[0].frames["cam"]
    masks = foreground_masks(episode.frames["cam"])
    np.testing.assert_array_equal(out[~masks], np.broadcast_to([0, 255, 0], out[~masks].shape))


def test_composite_never_touches_masked_pixels():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    masks = rng.random((4, 16, 16)) > 0.5
    backdrop = procedural_texture(16, 16, seed=3)
    out = paste_backdrop(frames, masks, backdrop, feather=2)
    np.testing.assert_array_equal(out[masks], frames[masks])


def test_folder_must_exist():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="neither 'procedural' nor an existing folder"):
        BackgroundSpec(backgrounds="/no/such/folder")


def test_motion_segmenter_can_keep_the_whole_workspace():
    from editors.workspace import workspace_masks
    from editors.segmenter import Segmenter
    from editors.specs import SegmenterSpec

    episode, truth = synthetic_episode()
    video = episode.frames["cam"]
    seg = Segmenter(SegmenterSpec(foreground="workspace", grow=0))(video, [0, 5])
    assert seg.foreground.shape == (2, *video.shape[1:3]) and (seg.robot <= seg.foreground).all()
    np.testing.assert_array_equal(seg.foreground, workspace_masks(video).keep[[0, 5]] | seg.robot)
    assert seg.foreground[truth[[0, 5]]].mean() > 0.95  # the moving object is kept


def test_background_hands_on_the_table_it_found_until_a_stage_changes_the_camera():
    """Episode.surfaces: background (weight-free) gives each output the work surface its survey found on
    its input, through the runner and the pickling between workers; a stage that changes the camera and
    does not say it keeps the table (lighting) drops it, and `replace` carries it."""
    from augment.pipeline import RunStage, batch_to_rows, episode_row, rows_to_batch
    from editors.specs import LightingSpec
    from editors.workspace import survey

    episode, _ = synthetic_episode()
    found = survey(lambda: iter([episode.frames]), episode.length, ["cam"])["cam"].surface
    rows = batch_to_rows(RunStage(BackgroundSpec(variants=2))(rows_to_batch([episode_row(episode, episode.uid, "1")])))
    children = [Episode.from_bytes(r["episode"]) for r in rows]
    assert len(children) == 2
    for child in children:
        assert child.surfaces["cam"].dtype == bool and np.array_equal(child.surfaces["cam"], found)
        assert np.array_equal(child.replace(uid="x").surfaces["cam"], found)
    lit = batch_to_rows(RunStage(LightingSpec())(rows_to_batch([episode_row(children[0], episode.uid, "1/2")])))
    assert Episode.from_bytes(lit[0]["episode"]).surfaces == {}
    with pytest.raises(ValueError, match="surfaces"):
        episode.replace(surfaces={"cam": np.zeros((40, 56), np.uint8)})
