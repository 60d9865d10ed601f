"""Passthrough (augment/remux.py) on sources written by lerobot and then re-encoded the way other
tools write them: one stream for all episodes, key frames far apart, B-frames. Where an episode's
packets cannot be cut out, the camera is re-encoded, the episode's provenance says why, and the
output still loads in lerobot with the source's frames (within the codec's loss)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from augment.episode import Episode, VideoSegment
from augment.local import run_local
from augment.spec import load_spec
from corpus import Camera, Member, build

REPO = Path(__file__).resolve().parents[1]
CAMERA = "observation.images.top"
MEMBER = Member("one_stream", fps=20, episodes=(12, 10, 14), codec="h264",
                cameras=(Camera(CAMERA, (48, 64)),),
                numeric={"observation.state": ("float32", (3,)), "action": ("float32", (3,))})


def reencode_as_one_stream(path: Path, fps: int, gop: int, bframes: int) -> None:
    """Rewrite an mp4 as one h264 stream with a key frame every `gop` frames: episodes no longer
    start on key frames (lerobot encodes each episode on its own; other tools do not)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    tmp = path.with_name("rewritten.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": str(gop), "bf": str(bframes), "crf": "20",
                                                              "keyint_min": str(gop), "sc_threshold": "0"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    tmp.replace(path)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("remux") / "src"
    return build(MEMBER, root)


def copy(source: Path, out: Path) -> dict:
    spec = load_spec(REPO / "pipelines/copy.yaml", [f"source.root={source}", f"sink.root={out}"])
    return run_local(spec, progress=False)


def episodes(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("remux/x", root=root)
    out = []
    for i in range(ds.num_episodes):
        meta = ds.meta.episodes[i]
        frames = np.stack([ds[t][CAMERA].numpy() for t in range(meta["dataset_from_index"], meta["dataset_to_index"])])
        provenance = json.loads(meta["augment/provenance"]) if "augment/provenance" in meta else {}
        out.append((frames, provenance))
    return out


@pytest.mark.parametrize("bframes", [0, 2])
def test_episodes_off_key_frames_are_reencoded_with_the_reason(recorded, tmp_path, bframes):
    import shutil

    source = tmp_path / "src"
    shutil.copytree(recorded["root"], source)
    for path in (source / "videos").rglob("*.mp4"):
        reencode_as_one_stream(path, MEMBER.fps, gop=1000, bframes=bframes)
    copy(source, tmp_path / "out")
    theirs, ours = episodes(source), episodes(tmp_path / "out")
    assert len(ours) == len(theirs)
    whys = []
    for (frames, provenance), (source_frames, _) in zip(ours, theirs):
        outcome = provenance["video"][CAMERA]
        assert outcome["copied"] is False
        whys.append(outcome["why"])
        # Re-encoded with the source's settings: close to the source's frames, not equal.
        assert frames.shape == source_frames.shape
        assert np.abs(frames - source_frames).mean() < 0.03
    # The first episode starts on the stream's only key frame: it was copied, then the file was
    # re-encoded because the next one could not be (one file holds one stream).
    assert "not a key frame" in " ".join(whys) or "B-frames" in " ".join(whys), whys
    if bframes == 0:
        assert whys[0] == "a later episode in this file could not be copied"
        assert "not a key frame" in whys[1]


def test_lerobots_own_files_are_copied_bit_for_bit(recorded, tmp_path):
    copy(recorded["root"], tmp_path / "out")
    for (frames, provenance), (source_frames, _) in zip(episodes(tmp_path / "out"), episodes(recorded["root"])):
        assert provenance["video"][CAMERA] == {"copied": True}
        np.testing.assert_array_equal(frames, source_frames)


def test_sink_codec_override_reencodes(recorded, tmp_path):
    spec = load_spec(REPO / "pipelines/copy.yaml", [f"source.root={recorded['root']}", f"sink.root={tmp_path / 'o'}",
                                                    "sink.codec=av1"])
    report = run_local(spec, progress=False)
    assert report["resolved"]["sink"] == {"copied": [], "re-encoded": {
        CAMERA: "the sink's codec settings differ from the source's"},
        "streamed": {"stages": [], "cameras": [CAMERA]}}  # decoded and encoded by the writer, chunk by chunk


def test_a_stage_that_changes_the_length_must_say_it_changes_the_camera():
    segment = VideoSegment("x.mp4", 0.0, 10)
    with pytest.raises(ValueError, match="passed through with its source's 10 frames, the episode has 5"):
        Episode(frames={}, task="t", fps=10, uid="ep0", action=np.zeros((5, 2), np.float32),
                passthrough={CAMERA: segment})


def write_stream(path: Path, frames: int, fps: int, gop: int, bframes: int) -> None:
    """A moving bar (so the encoder does use B-frames when allowed), one h264 stream."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": str(gop), "bf": str(bframes), "keyint_min": str(gop),
                                                              "sc_threshold": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, (2 * i) % 56:(2 * i) % 56 + 8] = 200
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.mark.parametrize("gop, bframes, refusal", [
    (12, 0, None),  # a key frame at each episode start, no reordering: copied
    (1000, 0, "not a key frame"),
    (1000, 3, "B-frames across the episode's end"),  # ep 0 starts on the key frame but its last frames come late
])
def test_read_segment_refuses_what_cannot_be_cut(tmp_path, gop, bframes, refusal):
    from augment.remux import CannotCopy, read_segment

    path = tmp_path / "s.mp4"
    write_stream(path, 36, 20, gop, bframes)
    segment = VideoSegment(str(path), 0.0 if bframes else 0.6, 12)
    if refusal is None:
        container, _, packets, first_pts = read_segment(segment, 20)
        container.close()
        assert len(packets) == 12 and packets[0].is_keyframe
        return
    with pytest.raises(CannotCopy, match=refusal):
        read_segment(segment, 20)
