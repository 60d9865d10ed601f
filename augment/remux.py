"""Passthrough: a camera no stage changed is written by copying its encoded packets, not re-encoded.

Decoding and encoding again costs quality (and most of a copy's time) on frames the job did not
mean to touch. lerobot encodes every episode on its own and concatenates the files, so an
episode's packets start on a key frame and reference nothing outside the episode: its segment can
be cut out of the source file at packet level and appended to ours with its timestamps rebased.

A segment is copied only when that is provably right (`read_segment`): its first packet in decode
order is a key frame at the episode's first timestamp, no packet of it comes after a later
episode's packet in decode order (B-frames that reach across the cut), it holds exactly the
episode's frames, and its stream has the same codec parameters as the segments already in our file.
Otherwise the camera is decoded and re-encoded with the source's settings, and the episode's
provenance says why (provenance["video"][camera]).
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from augment.episode import VISUAL_DTYPES, VideoSegment
from augment.video import VideoSettings, VideoWriter, decode_segment, open_video

log = logging.getLogger("augment")


class CannotCopy(Exception):
    """Why a segment's packets cannot be copied; the camera is re-encoded instead."""


def _stream_key(stream) -> tuple:
    """What must be equal for two streams' packets to live in one stream: codec, size, format and the
    out-of-band parameters (SPS/PPS, the AV1 sequence header) in extradata."""
    ctx = stream.codec_context
    return (ctx.codec.name, ctx.width, ctx.height, ctx.pix_fmt, bytes(ctx.extradata or b""))


def read_segment(segment: VideoSegment, fps: int):
    """The segment's packets in decode order, with its stream (an open container's: caller closes
    `container`). Returns (container, stream, packets, first_pts); raises CannotCopy saying why."""
    half = 0.5 / fps
    start, stop = segment.start, segment.start + segment.frames / fps
    try:
        container = open_video(segment.path)
    except (av.error.FFmpegError, OSError) as e:
        raise CannotCopy(f"cannot open {segment.path} ({e})") from None
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        if start > half:
            container.seek(int((start - half) / tb), stream=stream, backward=True)
        packets, past_end = [], False
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * tb)
            if t < start - half:
                if packets:
                    raise CannotCopy(f"a frame before the episode ({t:.3f}s) is coded after its first frame "
                                     "(open GOP): the segment cannot be cut out at packet level")
                continue
            if t >= stop - half:
                past_end = True
                if len(packets) >= segment.frames:
                    break
                continue
            if past_end:
                raise CannotCopy(f"frame at {t:.3f}s is coded after the next episode's first frame (B-frames across "
                                 "the episode's end): the segment cannot be cut out at packet level")
            if not packets and not packet.is_keyframe:
                raise CannotCopy(f"the episode starts at {start:.3f}s on a frame that is not a key frame")
            packets.append(packet)
        if len(packets) != segment.frames:
            raise CannotCopy(f"{len(packets)} packets between {start:.3f}s and {stop:.3f}s, "
                             f"the episode has {segment.frames} frames")
        first_pts = min(p.pts for p in packets)
        if packets[0].pts != first_pts:
            raise CannotCopy("the episode's first coded frame is not its first shown frame")
    except CannotCopy:
        container.close()
        raise
    except (av.error.FFmpegError, IndexError) as e:
        container.close()
        raise CannotCopy(f"cannot read {segment.path} ({e})") from None
    return container, stream, packets, first_pts


class CameraWriter:
    """One camera's mp4 in a part. Episodes with a copyable source segment have their packets copied;
    the first that cannot be copied turns the file into an encoded one (what was copied so far is
    decoded and encoded again, so that one file holds one stream), and from then on frames are encoded.

    append(frames, segment) -> ((from_s, to_s), outcome): `frames` may be None when `segment` is
    given. outcome, {"copied": True} or {"copied": False, "why": ...}, is updated in place should a
    later episode turn the file into an encoded one; the writer keeps it in the episode's provenance.
    """

    def __init__(self, path: Path, fps: int, settings: VideoSettings):
        self.path = Path(path)
        self.fps = fps
        self.encoder = VideoWriter(self.path, fps, settings)
        self.copied: list[tuple[int, dict]] = []  # (length, outcome) of the episodes copied so far
        self._out = None  # the output container while copying
        self._stream = None
        self._key = None
        self._last_dts = None

    @property
    def frames_written(self) -> int:
        return sum(n for n, _ in self.copied) if self._out is not None else self.encoder.frames_written

    def append(self, frames: np.ndarray | None, segment: VideoSegment | None) -> tuple[tuple[float, float], dict]:
        why = "no source segment (a stage changed the frames)"
        if segment is not None:
            if self.encoder.frames_written:
                why = "an earlier episode in this file could not be copied"
            else:
                try:
                    span = self._copy(segment)
                    self.copied.append((segment.frames, {"copied": True}))
                    return span, self.copied[-1][1]
                except CannotCopy as e:
                    why = str(e)
                    log.warning("%s: re-encoding instead of copying: %s", segment.path, why)
        if self._out is not None:
            self._reencode_copied()
        if frames is None:
            frames = decode_segment(segment.path, segment.start, segment.start + segment.frames / self.fps,
                                    self.fps, expected=segment.frames)
        return self.encoder.append(frames), {"copied": False, "why": why}

    def _copy(self, segment: VideoSegment) -> tuple[float, float]:
        container, stream, packets, first_pts = read_segment(segment, self.fps)
        try:
            key = _stream_key(stream)
            if self._out is not None and key != self._key:
                raise CannotCopy(f"{segment.path}: its stream's codec parameters differ from the episodes "
                                 "already copied into this file")
            tb = stream.time_base
            start = self.frames_written
            shift = int(round(Fraction(start, self.fps) / tb)) - first_pts
            if self._last_dts is not None and packets[0].dts is not None and \
                    Fraction(packets[0].dts + shift) * tb <= self._last_dts:
                raise CannotCopy("its decode timestamps would not increase after the previous episode's")
            if self._out is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._out = av.open(str(self.path), "w")
                # A stream made from the source's template: its packets go in as they are, nothing is encoded.
                self._stream = self._out.add_stream_from_template(stream, opaque=True, time_base=tb)
                self._key = key
            for packet in packets:
                packet.pts += shift
                if packet.dts is not None:
                    packet.dts += shift
                    self._last_dts = Fraction(packet.dts) * tb
                packet.stream = self._stream
                packet.time_base = tb
                self._out.mux(packet)
        finally:
            container.close()
        return start / self.fps, (start + segment.frames) / self.fps

    def _reencode_copied(self) -> None:
        """Turn the copied file into an encoded one: decode it episode by episode into the encoder."""
        self._out.close()
        self._out = None
        copied = self.path.with_name(self.path.stem + ".copied.mp4")
        os.replace(self.path, copied)
        start = 0
        for n, outcome in self.copied:
            self.encoder.append(decode_segment(copied, start / self.fps, (start + n) / self.fps, self.fps, expected=n))
            outcome.update(copied=False, why="a later episode in this file could not be copied")
            start += n
        copied.unlink()
        self.copied = []

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self.encoder.close()


def plan_cameras(stages, features: dict, cameras: list[str], layout_video: dict[str, VideoSettings],
                 source_video: dict[str, VideoSettings]) -> tuple[list[str], list[str], dict]:
    """Which source cameras pass through and which must be decoded, from what the (resolved) stages
    declare they change and read. Returns (copied, decoded, a note for the job report).

    copied:  video cameras no stage changes whose output settings are the source's; the reader
             hands their segments on and the sink copies their packets.
    decoded: the cameras whose frames some stage reads, or that are written from frames."""
    changed, read = set(), set()
    for stage in stages:
        present = [k for k, f in features.items() if f["dtype"] in VISUAL_DTYPES]
        changed.update(stage.changed_cameras(present))
        read.update(stage.read_cameras(present))
        features = stage.output_features(features)
    copied, why = [], {}
    for key in cameras:
        if key not in layout_video:
            continue  # images in the parquet, or a camera no longer in the output
        if key in changed:
            why[key] = "changed by a stage"
        elif layout_video[key] != source_video.get(key):
            why[key] = "the sink's codec settings differ from the source's"
        else:
            copied.append(key)
    decoded = [k for k in cameras if k not in copied or k in read]
    return copied, decoded, {"copied": copied, "re-encoded": why}


def source_settings(source, index: int) -> dict[str, VideoSettings]:
    """The encoding of each of the source's video cameras, as Layout.from_source reads it."""
    return {k: VideoSettings.from_feature_info(source.features[k].get("info") or {}, source.video_file(index, k))
            for k in source.cameras if source.is_video(k)}
