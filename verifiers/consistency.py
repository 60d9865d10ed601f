"""Consistency verifier (`type: consistency`): weight-free checks that catch video-model hallucinations
(frozen or static video, cuts and teleports, things appearing / vanishing / duplicating / morphing)
and labelled actions outside the source's range. See verifiers/checks.py for what each check measures.

Each check's score is in [0, 1]; 0.5 is its limit. An episode under a check's minimum
(thresholds.min_check, default 0.5 for every check) or under thresholds.min_score is dropped with the
failing checks as the reason; every episode carries its scores in provenance["scores"].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from augment.episode import Episode
from augment.stage import Stage
from verifiers import checks as C
from verifiers.scores import failures, record_scores, weighted_mean
from verifiers.specs import ConsistencySpec, MOVING_CAMERA_CHECKS


STEP_CHECKS = {"jump", "pace", "hop", "event", "cut", "leap", "patch", "settle", "still_change"}  # on the distinct frames' steps


def video_checks(frames: np.ndarray, spec: ConsistencySpec, fps: float | None = None,
                 state: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, dict]]:
    """Scores and details (statistic, frame) of the video checks on one camera's (T, H, W, 3) frames;
    `fps` (when known) limits the event strides to spec.event_max_stride_s. details["camera_motion"]
    says whether the camera moves with the robot (then only MOVING_CAMERA_CHECKS run). `state` (T, S):
    the robot's recorded state of these frames, where it records the video's motion (episode_checks
    says when): `frozen` and `static` leave out the stretches where it rests (checks.state_rests)."""
    small = C.downscale(frames, spec.work_size)
    diffs = C.step_differences(small)
    lim, wanted = spec.limits, set(spec.checks)
    scores, details = {}, {}

    def record(name: str, stat: float, at: int) -> None:
        scores[name], details[name] = C.score(stat, getattr(lim, name)), {"stat": stat, "frame": at}

    def frame_of(at: int) -> int:  # a step check's frame counts distinct frames (`keep`): the episode's frame
        return int(keep[min(at, len(keep) - 1)])

    def record_step(name: str, stat: float, at: int) -> None:
        record(name, stat, frame_of(at))

    # pace judges at this frame rate or more (an unknown one counts), hop under it
    high_rate = fps is None or fps >= spec.pace_min_fps

    still = C.camera_stillness(small) if len(small) >= 3 else None
    moving = still is not None and still < spec.fixed_min_still
    details["camera_motion"] = {"stat": still, "moving": moving}
    if moving:
        wanted &= set(MOVING_CAMERA_CHECKS)
    if len(small) < 2:  # a one-frame episode has no step to judge (lerobot writes them)
        wanted -= {"frozen", "static"} | STEP_CHECKS
        details["too_short"] = {"frames": len(small)}
    rest = C.state_rests(diffs, state) if state is not None and wanted & {"frozen", "static"} else None
    if "frozen" in wanted:
        record("frozen", *C.frozen(diffs, rest=rest))
        if rest is not None:
            details["frozen"]["resting_steps"] = int(rest.sum())
    if "static" in wanted and (rest is None or not rest.all()):  # a robot at rest throughout: nothing to judge
        stat = C.static(diffs if rest is None else diffs[~rest])
        # inverted: less motion is worse; a video moving at the limit scores 0.5
        scores["static"] = float(np.clip(stat / (2 * lim.static), 0, 1))
        details["static"] = {"stat": stat}
    if wanted & STEP_CHECKS:
        keep = C.distinct_frames(small, diffs)  # repeated frames would make smooth motion look jumpy
        moving = small[keep]
        moving_diffs = C.step_differences(moving) if len(keep) < len(small) else diffs
        if len(moving) < 2:  # every frame the same: `frozen` and `static` fail it; no motion to follow
            wanted -= STEP_CHECKS
    if wanted & STEP_CHECKS:
        threshold = C.change_threshold(moving_diffs)
        plate_fg = C.mover_plates(moving) if spec.contact else None  # for every contact gate below
        objects = (C.object_regions(moving, threshold / 2, spec.contact_objects)
                   if spec.contact and spec.contact_objects else None)
    if "jump" in wanted:
        record_step("jump", *C.jump(moving_diffs, frames=moving, objects=objects, threshold=threshold))
    if wanted & {"event", "cut", "patch"}:
        # at stride s, a change spread over s frames becomes a one-step change
        # (motion also grows s-fold per step, so the reach that counts as "moved on" grows with it)
        def strided(s: int) -> list[tuple[float, int]]:
            clip = moving[::s]
            pairs = C.events(clip, C.step_differences(clip) if s > 1 else moving_diffs, threshold, reach=3 * s,
                             min_mover=spec.contact, window=spec.contact_window, contact_reach=spec.contact_reach,
                             solid=spec.patch_solid, plate_fg=plate_fg if s == 1 else None,
                             moved_search=spec.patch_moved * s, objects=objects if s == 1 else None,
                             settle_share=settle_share)
            return [(stat, frame_of(at * s)) for stat, at in pairs]

        # the looser bar for a pasted patch's coarse first frame, not under pace_min_fps: at 10 fps a block the
        # robot shoves lands in one step, and its first frame there is as coarse (PushT at 128 px)
        settle_share = spec.event_settle_share if high_rate else 0.0
        strides = [s for s in spec.event_strides if s == 1 or fps is None or s <= fps * spec.event_max_stride_s]
        per_stride = [strided(s) for s in strides]
        if "patch" in wanted:  # also a solid change between two still stretches of each pixel's own history
            stat, at = C.still_patch(moving, threshold, solid=spec.patch_solid, objects=objects)
            per_stride.append([(0.0, 0), (0.0, 0), (stat, frame_of(at))])
        for name, i in (("event", 0), ("cut", 1), ("patch", 2)):
            if name in wanted:
                record(name, *max(p[i] for p in per_stride))
    coarse = max(small.shape[1:3]) <= C.COARSE_COLOUR
    if "pace" in wanted and high_rate:
        record_step("pace", *C.pace(moving_diffs, threshold, coarse=coarse))
    if "hop" in wanted and not high_rate:
        record_step("hop", *C.hop(moving, moving_diffs, threshold))
    if "leap" in wanted:
        record_step("leap", *C.leap(moving, moving_diffs, threshold))
    if "settle" in wanted:
        record_step("settle", *C.settle(moving, moving_diffs, threshold, span=spec.settle_span, min_mover=spec.contact,
                                        still_fraction=spec.settle_still, plate_fg=plate_fg, objects=objects,
                                        moved_search=spec.settle_moved))
    if "still_change" in wanted:
        record_step("still_change", *C.still_change(moving, moving_diffs, threshold, span=spec.settle_span,
                                                    min_mover=spec.contact, plate_fg=plate_fg, objects=objects,
                                                    moved_search=spec.settle_moved))
    if wanted & {"new_colour", "colour_mass"}:
        new, mass, at = C.colour_drift(small, coarse=coarse)
        if "new_colour" in wanted:
            record("new_colour", new, at)
        if "colour_mass" in wanted:
            record("colour_mass", mass, at)
    if "colour_place" in wanted:
        record("colour_place", *C.colour_place(small, coarse=coarse))
    if "objects" in wanted:
        record("objects", *C.objects(small))
    if "objects_persist" in wanted:
        record("objects_persist", *C.objects_persist(small))
    return scores, details


def load_action_quantiles(stats_path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = Path(stats_path)
    if not path.is_file():
        return None
    stats = json.loads(path.read_text()).get("action")
    if not stats or "q01" not in stats or "q99" not in stats:
        return None
    return np.asarray(stats["q01"], dtype=np.float64), np.asarray(stats["q99"], dtype=np.float64)


def recorded_motion(episode: Episode) -> np.ndarray | None:
    """The episode's state where it records the motion its video shows: recorded with the video, or
    with the video an edit kept the motion of; None where a video model made the video (provenance
    "generator", or a dataset row of ours that says so: its state is the source's or the IDM's reading
    of the video, not a measurement of it) or the episode has no state."""
    if episode.state is None or "generator" in episode.provenance or episode.provenance.get("source", {}).get("generated"):
        return None
    return episode.state


def episode_checks(episode: Episode, spec: ConsistencySpec,
                   quantiles: tuple[np.ndarray, np.ndarray] | None) -> tuple[dict[str, float], dict[str, dict]]:
    """All checks on one episode; with several cameras, each check keeps its worst camera.
    details["camera_motion"]["moving"] lists the cameras judged as moving with the robot."""
    cameras = [spec.camera] if spec.camera else list(episode.frames)
    scores: dict[str, float] = {}
    details: dict[str, dict] = {"camera_motion": {"moving": []}}
    for camera in cameras:
        if camera not in episode.frames:
            raise ValueError(f"{spec.label}: camera {camera!r} not in episode {episode.uid} (has {list(episode.frames)})")
        cam_scores, cam_details = video_checks(episode.frames[camera], spec, episode.fps, recorded_motion(episode))
        if cam_details["camera_motion"]["moving"]:
            details["camera_motion"]["moving"].append(camera)
        for name, value in cam_scores.items():
            if name not in scores or value < scores[name]:
                scores[name] = value
                details[name] = {**cam_details[name], "camera": camera}
    if "action" in spec.checks and episode.action is not None and quantiles is not None:
        q01, q99 = quantiles
        if q01.shape[-1] != episode.action.shape[-1]:
            raise ValueError(f"{spec.label}: source stats have {q01.shape[-1]} action dims, episode {episode.uid} "
                             f"has {episode.action.shape[-1]}")
        stat = C.action_outside(episode.action.astype(np.float64), q01, q99, spec.action_margin)
        scores["action"], details["action"] = C.score(stat, spec.limits.action), {"stat": stat}
    return scores, details


class ConsistencyStage(Stage):
    spec: ConsistencySpec

    def setup(self) -> None:
        self._quantiles: dict[str, tuple | None] = {}

    def quantiles(self, episode: Episode) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.spec.source_stats
        if path is None:
            root = episode.provenance.get("source", {}).get("root")
            path = str(Path(root) / "meta" / "stats.json") if root else None
        if path is None:
            return None
        if path not in self._quantiles:
            self._quantiles[path] = load_action_quantiles(path)
        return self._quantiles[path]

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        if not hasattr(self, "_quantiles"):
            self.setup()
        for episode in episodes:
            checks, details = episode_checks(episode, self.spec, self.quantiles(episode))
            combined = weighted_mean(checks, self.spec.weights)
            scores = record_scores(episode.provenance, self.spec.label, checks, combined, self.spec.weight)
            reasons = failures(checks, combined, self.spec.thresholds, self.spec.label)
            self.record(episode, details=_rounded(details), passed=not reasons)
            if reasons:
                where = [f"{r} (frame {details[n]['frame']})" if "frame" in details.get(n := r.split("/")[-1].split(" ")[0], {})
                         else r for r in reasons]
                self.drop(episode, "; ".join(where), **scores)
        return episodes


def _rounded(details: dict) -> dict:
    return {k: {f: (round(v, 5) if isinstance(v, float) else v) for f, v in d.items()} for k, d in details.items()}
