"""Video encode/decode with PyAV, frame-exact: frame i of an episode has pts i in a 1/fps time base."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import os

import av
import numpy as np

from augment.storage import READ_BUFFER, open_input

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder otherwise; keep errors only

# info.json names the codec as the stream reports it; the encoder has its own name.
ENCODERS = {"av1": "libsvtav1", "libsvtav1": "libsvtav1", "h264": "libx264", "libx264": "libx264",
            "hevc": "libx265", "libx265": "libx265"}
STREAM_NAMES = {"libsvtav1": "av1", "libx264": "h264", "libx265": "hevc"}


def open_video(path: str | Path):
    """av.open for reading a local path or a URI (augment/storage.py). A remote mp4 is read through a
    seekable file of the store in 1 MB ranged reads, not downloaded: a source file holds many
    episodes (lerobot packs up to 200 MB), and one episode's segment is a small part of it."""
    return av.open(open_input(path), buffer_size=READ_BUFFER)


class VideoError(RuntimeError):
    """A video file that cannot be read as expected; the message names the file."""


@dataclass(frozen=True)
class VideoSettings:
    codec: str = "av1"  # as written in info.json: av1, h264, hevc
    pix_fmt: str = "yuv420p"
    crf: int | None = 30
    gop: int | None = 2
    preset: int | str | None = 12

    @classmethod
    def from_feature_info(cls, info: dict, video_path: Path | None = None) -> VideoSettings:
        """Settings that reproduce a source camera's encoding. lerobot writes them into info.json, but
        not always all of them: what is missing is read from the stream of `video_path` (codec, pixel
        format, key-frame interval), else lerobot's defaults (AV1, yuv420p, g=2, crf=30)."""
        if video_path is not None and not {"video.codec", "video.pix_fmt", "video.g"} <= set(info):
            info = {**probe_stream(video_path), **info}
        codec = info.get("video.codec", "av1")
        return cls(
            codec=STREAM_NAMES.get(codec, codec),
            pix_fmt=info.get("video.pix_fmt", "yuv420p"),
            crf=info.get("video.crf", 30),
            gop=info.get("video.g", 2),
            preset=info.get("video.preset", 12 if codec in ("av1", "libsvtav1") else None),
        )

    def encoder(self) -> str:
        if self.codec not in ENCODERS:
            raise ValueError(f"unsupported video codec {self.codec!r}; choose one of av1, h264, hevc")
        return ENCODERS[self.codec]

    def options(self) -> dict[str, str]:
        opts = {}
        if self.gop is not None:
            opts["g"] = str(self.gop)
        if self.crf is not None:
            opts["crf"] = str(self.crf)
        if self.preset is not None:
            opts["preset"] = str(self.preset)
        if self.encoder() in ("libx264", "libx265"):
            # No B-frames: with them an episode's frames are reordered across the key frame that starts
            # it, x265 failed to mux at the end of long parts, and lerobot's aggregate_datasets (FFmpeg's
            # concat demuxer) met non-increasing DTS where our file follows the source's.
            opts["bf"] = "0"
            opts["forced-idr"] = "1"  # a forced key frame (each episode's first) is an IDR: nothing before it is referenced
        if self.encoder() == "libx265":
            opts["x265-params"] = "log-level=error"  # x265 prints a summary per file to stderr otherwise
        return opts

    def feature_info(self, height: int, width: int, fps: int) -> dict:
        """The `info` block lerobot keeps for a video feature."""
        return {
            "video.height": height, "video.width": width, "video.codec": self.codec,
            "video.pix_fmt": self.pix_fmt, "video.fps": fps, "video.channels": 3, "has_audio": False,
            "video.g": self.gop, "video.crf": self.crf, "video.preset": self.preset,
            "video.fast_decode": 0, "video.video_backend": "pyav", "video.extra_options": {},
            "is_depth_map": False,
        }


def _declared_rate(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def stream_info(path: Path) -> tuple[int, int, float | None]:
    """(height, width, frame rate) an mp4's video stream declares, without decoding (rate None when
    it declares none)."""
    try:
        with open_video(path) as container:
            stream = container.streams.video[0]
            return stream.codec_context.height, stream.codec_context.width, _declared_rate(stream)
    except (av.error.FFmpegError, IndexError) as e:
        raise VideoError(f"{path}: cannot read the video stream ({e})") from None


def probe_stream(path: Path, packets: int = 300) -> dict:
    """The encoding of an mp4's video stream in info.json's words: codec, pixel format and the
    key-frame interval (the most common gap between key frames among the first packets)."""
    try:
        with open_video(path) as container:
            stream = container.streams.video[0]
            found = {"video.codec": stream.codec_context.codec.canonical_name, "video.pix_fmt": stream.codec_context.pix_fmt}
            keys, position = [], 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_keyframe:
                    keys.append(position)
                position += 1
                if position >= packets:
                    break
    except (av.error.FFmpegError, IndexError) as e:
        raise VideoError(f"{path}: cannot read the video stream ({e})") from None
    gaps = np.diff(keys)
    if len(gaps):
        values, counts = np.unique(gaps, return_counts=True)
        found["video.g"] = int(values[counts.argmax()])
    return found


class VideoWriter:
    """Appends episodes one after another into one mp4; returns each episode's (from, to) seconds."""

    def __init__(self, path: Path, fps: int, settings: VideoSettings):
        self.path = Path(path)
        self.fps = fps
        self.settings = settings
        self._container = None
        self._stream = None
        self.frames_written = 0

    def _open(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        stream = self._container.add_stream(self.settings.encoder(), rate=self.fps, options=self.settings.options())
        stream.width, stream.height = width, height
        stream.pix_fmt = self.settings.pix_fmt
        self._stream = stream

    def append(self, frames: np.ndarray, new_episode: bool = True) -> tuple[float, float]:
        """Encode frames; new_episode=False continues the previous episode (a further chunk of it)."""
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        start = self.frames_written
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = self.frames_written  # in the stream's 1/fps codec time base: frame-exact
            if i == 0 and new_episode:
                # Each episode starts on a key frame, as in lerobot's files: its first frame is not
                # predicted from the previous episode, and the segment can be cut or remuxed on its own.
                frame.pict_type = av.video.frame.PictureType.I
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1
        return start / self.fps, self.frames_written / self.fps

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None


def decode_chunks(path: Path, start_s: float, stop_s: float, fps: int, expected: int | None = None,
                  chunk: int | None = None, keep: list[int] | None = None):
    """Frames with start_s <= t < stop_s as uint8 (N, H, W, 3) arrays of at most `chunk` frames each
    (None: one array), in order: what lets a caller hold a chunk of a long episode, not all of it.
    With `keep`, only those positions in the segment (the decoder still reads every frame, but only
    the kept ones are converted and held)."""
    half = 0.5 / fps
    frames = []
    wanted = None if keep is None else set(keep)
    position = 0
    rate = None
    yielded = False
    try:
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = _declared_rate(stream)
            if start_s > half:
                container.seek(int((start_s - half) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                if t < start_s - half:
                    continue
                if t >= stop_s - half:
                    break
                if wanted is None or position in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                position += 1
                if chunk is not None and len(frames) == chunk and (expected is None or position < expected):
                    yield np.stack(frames)
                    frames, yielded = [], True
    except (av.error.FFmpegError, IndexError) as e:
        raise VideoError(f"{path}: cannot decode video ({e})") from None
    if expected is not None and position != expected:
        if rate and abs(rate - fps) > 0.01 * fps:
            raise VideoError(f"{path}: the video runs at {rate:g} fps, meta/info.json says fps {fps}; "
                             "its frames do not fall where the episode's timestamps put them")
        raise VideoError(
            f"{path}: expected {expected} frames between {start_s:.3f}s and {stop_s:.3f}s, decoded {position}; "
            "the file is truncated or corrupt"
        )
    if frames:
        yield np.stack(frames)
    elif not yielded:
        raise VideoError(f"{path}: no frames between {start_s:.3f}s and {stop_s:.3f}s")


def decode_segment(path: Path, start_s: float, stop_s: float, fps: int, expected: int | None = None,
                   keep: list[int] | None = None) -> np.ndarray:
    """Frames with start_s <= t < stop_s as one uint8 (N, H, W, 3) array (decode_chunks, whole)."""
    return next(decode_chunks(path, start_s, stop_s, fps, expected, None, keep))
