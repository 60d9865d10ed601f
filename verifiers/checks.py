"""Weight-free consistency checks on one camera's frames, for the hallucinations video models make.

Each check returns a raw statistic and where it happened; `score()` maps a statistic to [0, 1] so
that a statistic equal to its limit scores 0.5 (the default pass mark): score = clip(1 - stat/(2*limit)).

    frozen      longest run of (near) identical consecutive frames (still_means: a small mean change and
                next to no pixel changing much), as a fraction of the episode; a run across which the
                recorded state rests too is the robot resting (state_rests), not a freeze
    static      mean per-step change over the whole video (a video that barely moves at all), the robot's
                rests left out
    jump        the largest single-step change relative to the busier steps around it (cuts, teleports),
                less an even-coloured object that shifted in that step (shifted_objects: a block the robot
                shoves, landing in one step at 10 fps)
    event       pixels that change in one step and in neither neighbouring step: a thing that appears,
                vanishes, duplicates or jumps within one frame. Smooth motion changes the same place
                in consecutive steps (a moving edge), so it is not counted; nor is a change that a
                large mover reaches (contact: the robot moving an object, touched_by_mover).
    cut         the same without the contact gate, at a higher limit: the robot itself jumping (objects
                that shifted in the step left aside, as in jump).
    pace        the area over the change threshold (the moving edges) in one step against the largest of its
                neighbours': a cut while the arm moves a few pixels a step, which the codec's noise hides from jump.
    hop         below pace's frame rate: a moving colour's centroid step (PushT's pusher disc) against the largest
                of its neighbours': a cut where a shove at 10 fps changes most of the scene in every step anyway.
    leap        a small mover (PushT's pusher disc) that jumps across the view in one step, too small for
                jump or cut: a one-step change on plain ground with no change near it in the step before
                (an entry: nothing came there) or the step after (an exit: nothing went on from there).
    patch       the same without the gate, only its solid part (a 4x4 px square fits): a thing pasted
                in, painted out or jumping beside the arm, where the gate calls it contact; what the
                robot changes in one step is thin (a door's edge, a strip of a shoved block), and a solid
                piece of it that is found again a few pixels on, maybe turned (moved: the robot's wrist, a
                T block's far end swinging round as the pusher shoves it at 10 fps) does not count, nor
                does one on an object that shifted (shifted_objects: the whole T landing a shove 2-5 px on,
                over the goal that stays). Also (still_patch) a solid one-step change between two still
                stretches of each pixel's own history, the neighbours' motion left aside: a thing pasted
                in under the moving gripper.
    settle      pixels that change within a few frames while they and their surroundings are still
                before and after: a thing that vanishes, grows or morphs on its own, also gradually.
                Neither it nor still_change counts a change at the frame's very edge (inside_view), a
                small one on a slowly moving arm (touched_in_window) or an edge that slid on (moved).
    still_change the same between two still stretches of each pixel and its neighbours, "still" a range
                that the encoder's flicker of edges stays within, only the solid part (a 3x3 px square
                fits): a goal marker growing with the arm away, which settle's per-step bar misses.
    new_colour  fraction of the frame in colours the first frames did not have (an object that morphs
                into another colour, or something of a new colour appearing)
    colour_place fraction of the frame in a colour that was not near that place at first (and is not the
                robot's): something appearing, copied or recoloured into a colour the scene has elsewhere
    colour_mass how far the amount of each strong colour drifts from the first frames (an object that
                duplicates, vanishes or grows/shrinks while keeping its colour)
    objects     change in the number of foreground blobs (editors/segment.py) that persists
    objects_persist  how far a small coloured object of the first frame grows, shrinks or vanishes while
                nothing large that moves (the robot) touches it: |log2(area now / area at first)|
    action      fraction of action values outside the source's [q01, q99] range (widened by a margin)
All run on a downscaled copy (longer side `work_size`), so a 100-frame episode takes milliseconds.
jump and event skip repeated frames (distinct_frames) and take their change threshold from the
episode's own noise (change_threshold), so they hold on other footage and codecs than MetaWorld's.
"""

from __future__ import annotations

import cv2
import numpy as np

from augment.cameras import still_edge_share
from augment.episode import resize_frames
from editors.segment import foreground_masks


def score(stat: float, limit: float) -> float:
    return float(np.clip(1.0 - stat / (2.0 * limit), 0.0, 1.0))


def downscale(frames: np.ndarray, work_size: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    if max(h, w) <= work_size:
        return frames
    s = work_size / max(h, w)
    return resize_frames(frames, max(1, round(h * s)), max(1, round(w * s)))  # shrinking: area averaging


def blur(frames: np.ndarray) -> np.ndarray:
    """int16 (T, H, W, 3): the frames lightly blurred, as every check sees them (codec noise does not count)."""
    return np.stack([cv2.GaussianBlur(f, (3, 3), 0) for f in frames]).astype(np.int16)


def step_differences(frames: np.ndarray) -> np.ndarray:
    """(T-1, H, W) max-over-channels absolute change between consecutive blurred frames."""
    return np.abs(np.diff(blur(frames), axis=0)).max(axis=-1)


def mover_plates(frames: np.ndarray) -> np.ndarray:
    """bool (T, H, W): what differs from the video's plate in each frame, the bridge touched_by_mover
    joins a mover's pieces with. events, settle and still_change take it (plate_fg) when the caller has
    it for the same frames: it is a tenth of a CPU-second per benchmark video, once rather than three times."""
    return foreground_masks(frames, saturation_threshold=None, dilate=0, min_area=6)


def object_regions(frames: np.ndarray, edge: float, max_fraction: float, min_area: int = 6) -> np.ndarray:
    """int32 (T, H, W): per frame, the pieces of even colour (4-connected pixels with no step over `edge`
    grey levels to their neighbour, blurred as the checks see them) of `min_area` pixels up to
    `max_fraction` of the frame, each with its own label (> 0); 0 elsewhere (edges, the floor, the wall,
    the table: what is larger). A T block the pusher shoves is one such piece: its far end turns while
    its flat middle shows no change and, resting, it is in the plate (mover_plates), so without it the
    gate sees the far end's change alone (bench_verifier's clean PushT videos failing settle, event,
    still_change: 6 of 480 over six sets; a user's PushT recording, 11 of 30). The bound keeps the
    background out: a table's white rim, one even strip of 4.6 % of MetaWorld's frame, joined a patch
    pasted on it to the arm at its other end."""
    blurred = blur(frames)
    rough = np.zeros(blurred.shape[:3], bool)
    rough[:, :, 1:] |= np.abs(np.diff(blurred, axis=2)).max(axis=-1) > edge
    rough[:, 1:, :] |= np.abs(np.diff(blurred, axis=1)).max(axis=-1) > edge
    out = np.zeros(rough.shape, np.int32)
    limit = max_fraction * rough[0].size
    for t, r in enumerate(rough):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((~r).astype(np.uint8), connectivity=4)
        keep = (stats[:, cv2.CC_STAT_AREA] >= min_area) & (stats[:, cv2.CC_STAT_AREA] <= limit)
        keep[0] = False
        out[t] = np.where(keep[labels], labels, 0)
    return out


def contact_bridge(region: np.ndarray, plate_fg: np.ndarray, objects: np.ndarray | None, a: int, b: int) -> np.ndarray:
    """What joins a change between frames a and b to a mover (touched_by_mover's bridge): what differs from
    the plate in both frames, and (with `objects`, object_regions) the even pieces the change meets in either."""
    bridge = plate_fg[a] & plate_fg[b]
    if objects is not None:
        bridge = bridge | objects_at(region, objects[a]) | objects_at(region, objects[b])
    return bridge


def objects_at(region: np.ndarray, labels: np.ndarray, ring: int = 2) -> np.ndarray:
    """The even pieces of one frame's object_regions `labels` that `region`, widened by `ring` px, meets."""
    near = cv2.dilate(region.astype(np.uint8), np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)).astype(bool)
    ids = np.unique(labels[near])
    ids = ids[ids > 0]
    return np.isin(labels, ids) if len(ids) else np.zeros(region.shape, bool)


def touched_by_mover(region: np.ndarray, motion: np.ndarray, min_mover: float, reach: int = 2,
                     bridge: np.ndarray | None = None) -> np.ndarray:
    """The part of `region` (a change under test) that a large mover reaches: a component of `motion`
    (what changes around that time), widened by `reach`, that extends over at least `min_mover` of the
    frame beyond the region itself. A puck the arm carries, a door it swings, a T block the pusher
    shoves all change in one piece with the robot; a thing that appears, vanishes or morphs on its own
    changes alone. `bridge` (what differs from the episode's background plate: objects that move at
    some time; contact_bridge adds the even-coloured piece the change is on) joins pieces too: a
    pushed T block's far edge turns while its flat middle shows no change, yet it is one object with
    the pusher's end. Returns the touched pixels of `region`."""
    region = region.astype(bool)
    if not region.any():
        return region
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    joined = cv2.dilate((motion | region | (False if bridge is None else bridge)).astype(np.uint8), kernel)
    n, labels = cv2.connectedComponents(joined, connectivity=8)
    # mover pixels outside the region (and its rim, which changes with it), per piece
    rim = cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
    beyond = np.bincount(labels[motion & ~rim], minlength=n)
    large = beyond >= min_mover * region.size
    large[0] = False
    return region & large[labels]


def touched_in_window(region: np.ndarray, diffs: np.ndarray, blurred: np.ndarray, a: int, b: int, threshold: float,
                      min_mover: float, bridge: np.ndarray, slow_piece: float = 0.005) -> np.ndarray:
    """touched_by_mover over frames a..b, for settle and still_change: the mover is what changes by more
    than `threshold` in a step; for a piece of `region` of at most `slow_piece` of the frame, also what
    changes that much from frame a to frame b. An arm that moves slowly and smoothly (a 480x640 camera's
    frames at the 128-px work size: sub-pixel steps) changes no pixel that much in one step, yet moves on
    over the window, and the pixels of its own edge or shading that change a few grey levels a step were
    what those checks found (settle: pieces of 4-15 px at 96x128, still_change: its looser stillness
    lets through longer edges, up to ~60 px). Only small pieces: a pedestal grown over the table beside
    the arm's slowly turning base (bench_verifier, 128 px: 0.05 of the frame) is no part of the arm. And
    only pixels that changed gradually: one that changed by more than `threshold` in a step is no slow edge
    (the robot's base recoloured beside its slowly turning arm, bench_verifier at 128 px, was excused)."""
    fast = (diffs[a:b] > threshold).any(axis=0)
    touched = touched_by_mover(region, fast, min_mover, bridge=bridge)
    rest = region & ~touched & ~fast
    if rest.any():
        slow = fast | (np.abs(blurred[b] - blurred[a]).max(axis=-1) > threshold)
        reached = touched_by_mover(rest, slow, min_mover, bridge=bridge)
        touched |= reached & ~large_blobs(reached, int(slow_piece * region.size) + 1)  # (over slow_piece: large)
    return touched


def camera_stillness(frames: np.ndarray, grid: int = 4, min_cells: int = 6, samples: int = 48) -> float | None:
    """How still the scene's texture stays, for telling a camera that moves with the robot (a wrist
    camera: the whole view slides) from a fixed one: augment/cameras.py's still-edge share, taken per
    cell of a `grid` x `grid` split of the frame, and the median over the cells with texture. Per cell,
    so that a large change in one place (the arm sweeping by, or a hallucinated object growing in a
    plain scene) does not make a fixed camera look moving. None (taken as fixed): fewer than `min_cells`
    textured cells, too few to tell the camera's motion from a large mover's in a plain scene."""
    frames = frames[np.linspace(0, len(frames) - 1, min(len(frames), samples)).astype(int)]
    h, w = frames.shape[1:3]
    shares = [still_edge_share(frames[:, i * h // grid:(i + 1) * h // grid, j * w // grid:(j + 1) * w // grid])
              for i in range(grid) for j in range(grid)]
    shares = [s for s in shares if s is not None]
    return float(np.median(shares)) if len(shares) >= min_cells else None


def still_means(diffs: np.ndarray, moved: float = 7.5, area: float = 0.0002) -> np.ndarray:
    """(T-1,) each step's mean change in grey levels, or inf where over `area` of the frame changes by more
    than `moved`: what `frozen` and state_rests count as still is a step under their mean bar with (next to)
    nothing moving in it. The mean alone took a slow arm for a freeze: at 480x640 seen at the 128-px work
    size the arm moves in sub-pixel steps, and AV1 (g=2) adds 0.4-0.5 grey levels of flicker over the
    whole frame every other step, so a clean pick-place's corner2 video stayed under 0.5 for 17-59 % of
    its steps while 3-200 px of arm moved in each; a repeated frame re-encoded moves no pixel that much."""
    means = diffs.reshape(len(diffs), -1).mean(axis=1)
    busy = (diffs > moved).reshape(len(diffs), -1).mean(axis=1) > area
    return np.where(busy, np.inf, means)


def frozen(diffs: np.ndarray, still: float = 0.5, rest: np.ndarray | None = None) -> tuple[float, int]:
    """Longest run of still steps (still_means under `still` grey levels), as a fraction of all steps;
    steps marked in `rest` (state_rests: the robot resting) are not still."""
    means = still_means(diffs)
    if rest is not None:
        means = np.where(rest, np.inf, means)
    start, end = max(still_runs(means, still), key=lambda run: run[1] - run[0], default=(0, 0))  # the first longest
    return (end - start) / max(len(means), 1), start


def still_runs(means: np.ndarray, still: float) -> list[tuple[int, int]]:
    """The runs [start, end) of consecutive steps whose mean change (`means`) is under `still`, in order."""
    is_still = np.concatenate([[False], np.asarray(means) < still, [False]])
    edges = np.flatnonzero(is_still[1:] != is_still[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def state_rests(diffs: np.ndarray, state: np.ndarray, still: float = 0.5, tolerance: float = 0.05) -> np.ndarray:
    """bool (T-1,): the steps of the still runs (`frozen`'s) across which the recorded `state` (T, S) of
    the same frames stays within `tolerance` of its span over the episode in every dimension that moves
    at all: the robot resting (a pusher waiting, an arm at its start pose), which leaves a fixed camera's
    video as still as a video model that froze, or jittering in place (PushT's pusher pressed against
    the wall, 1.8 % of its span back and forth). Over the whole run, not per step: a move adds up where
    jitter and a sensor's noise do not (a still run counts from a tenth of the episode, over which a
    robot that moves covers far more than `tolerance`); the run's first and last frames left out (an encoder repeats the
    frame before a stop, so the still run can start a step before the robot does). A state that never
    moves (a dataset's placeholder zeros) tells nothing: no step rests."""
    means = still_means(diffs)
    out = np.zeros(len(means), bool)
    state = np.asarray(state, np.float64)
    span = np.ptp(state, axis=0)
    moves = span > 0
    if not moves.any() or len(state) != len(means) + 1:
        return out
    for t, end in still_runs(means, still):
        inner = state[t + 1:end] if end - t >= 3 else state[t:end + 1]  # an encoder's repeat may start it a step early
        if (np.ptp(inner[:, moves], axis=0) <= tolerance * span[moves]).all():
            out[t:end] = True
    return out


def static(diffs: np.ndarray) -> float:
    """Mean per-step change in grey levels."""
    return float(diffs.mean()) if len(diffs) else 0.0


def jump(diffs: np.ndarray, window: int = 4, quantile: float = 75, frames: np.ndarray | None = None,
         objects: np.ndarray | None = None, threshold: float = 30, recheck: float = 1.2) -> tuple[float, int]:
    """Largest step change over the upper quartile (`quantile`) of the steps around it (excluding
    itself). Not the median: encoders alternate near-repeated frames (0.1 grey levels of change, above
    distinct_frames' cut) with full steps, and the median of such a mix falls to the near-repeats, so
    two full steps in a row (the gripper closing at 80 fps) looked like a jump of 3x. With `frames`
    and `objects` (object_regions), a step over `recheck` is judged again without the objects that
    shifted in it (shifted_objects): at 10 fps the pusher strikes the T block and the T turns up to 20
    degrees in one step, 1.8-2.2x its neighbours on clean PushT videos at 128 px. A cut moves the robot
    itself (an arm is larger than any object piece) and the seconds it skips move a shoved object
    farther than one step does, so shifted_objects does not take them."""
    means = diffs.reshape(len(diffs), -1).mean(axis=1)
    floor = max(float(np.median(means)), 0.2) * 0.25 + 0.05
    worst, at = 0.0, 0
    for t, m in enumerate(means):
        around = np.concatenate([means[max(0, t - window):t], means[t + 1:t + 1 + window]])
        if len(around) == 0:
            continue
        base = float(np.percentile(around, quantile)) + floor
        ratio = m / base
        if ratio > max(worst, recheck) and frames is not None and objects is not None:
            before, after = blur(frames[t:t + 2])  # the step's two frames only: few steps get here
            shifted = shifted_objects(diffs[t] > threshold, (objects[t], objects[t + 1]), (before, after), threshold)
            ratio = float(np.where(shifted, 0, diffs[t]).mean()) / base
        if ratio > worst:
            worst, at = ratio, t + 1
    return worst, at


def pace(diffs: np.ndarray, threshold: float = 30, window: int = 4, floor: float = 0.0005,
         floor_pixels: int = 8, coarse: bool = False) -> tuple[float, int]:
    """Largest area that changes in one step (pixels over `threshold`, the change threshold) over the largest
    of the same area in the steps around it (excluding itself) plus `floor` (fraction of the
    frame; also at least a quarter of the episode's median step). `jump` asks the same of the mean change,
    which the codec's noise over the whole frame swamps when only the arm moves, a few pixels a step: a
    cut of 7-14 frames at 80 fps moved it a few pixels in one step and raised the mean change by less than
    its neighbours' spread. The area over the threshold is the moving edges alone, and grows with the
    distance moved: a step that skips k steps changes up to k times the area of its neighbours (2.1-157x
    the largest of them on the ninth-round sets' MetaWorld cuts, the low end where the arm moves fast
    anyway; clean videos at most 1.43), while a physical arm speeds up over several steps. The first
    `window` steps are not judged: there the robot starts from rest, with nothing before to compare with
    (a clean pick-place episode's first moves reached 4.2 against the neighbours' upper quartile, with a
    repeated frame dropped between them). Against the largest neighbour, not the upper quartile: a slow
    mover drawn without anti-aliasing moves a whole pixel every few steps and nothing between, and its
    steps against the quartile of such a run reached 4.1-5.5 (tests/corpus.py's scene), against the
    largest 1.1-1.6. The floor is also at least `floor_pixels`: the moving edges' area is counted in whole pixels,
    and at 64 px 0.0005 of the frame is 2 of them (clean MetaWorld episodes reached 2.2 there). On `coarse`
    frames (COARSE_COLOUR) it is COARSE_PACE_FLOOR pixels."""
    areas = (diffs > threshold).reshape(len(diffs), -1).mean(axis=1)
    if len(diffs):
        floor = max(floor, (COARSE_PACE_FLOOR if coarse else floor_pixels) / diffs[0].size)
    base = max(floor, 0.25 * float(np.median(areas))) if len(areas) else floor
    worst, at = 0.0, 0
    for t in range(window, len(areas)):
        around = np.concatenate([areas[t - window:t], areas[t + 1:t + 1 + window]])
        ratio = float(areas[t]) / (float(around.max()) + base)
        if ratio > worst:
            worst, at = ratio, t + 1
    return worst, at


def hop(frames: np.ndarray, diffs: np.ndarray, threshold: float = 30, window: int = 4, floor: float = 0.01,
        bins: int = 18, min_saturation: int = 90, min_value: int = 50, mover_steps: float = 0.25,
        min_pixels: int = 6, steady: float = 3.0, max_fraction: float = 0.01, one: float = 0.8) -> tuple[float, int]:
    """`pace` for low frame rates, on the robot's own colour: the largest step of a moving colour's centroid
    over the largest of the same in the steps around it (excluding itself) plus `floor` (fraction of the
    longer side). A moving colour is a hue bin (colour_place's: strongly coloured pixels that change in at
    least `mover_steps` of the steps; with its two neighbouring bins) such as PushT's blue pusher disc; at
    10 fps a shove changes most of the T in one step, so the changed area (`pace`) does not tell a cut, but
    the disc itself keeps its pace from one step to the next (bench_verifier's clean PushT videos: at most
    1.48x its largest neighbour) while a cut of 20-45 frames moves it 1.8-9x as far in one step where it was
    moving. Judged only where the colour is one compact thing in both frames (at most `max_fraction` of the
    frame, its largest blob at least `one` of it: a disc, not an arm whose links a door hides in part), of
    `min_pixels` or more, changing at most `steady`-fold (a colour hidden or coming into view moves its
    centroid); the first `window` steps are not judged."""
    t_len, h, w = frames.shape[:3]
    if t_len < window + 3:
        return 0.0, 0
    hsv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in frames])
    strong = (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= min_value)
    hue = (hsv[..., 0].astype(int) * bins) // 180
    moved = (diffs > threshold) & strong[1:]
    per_step = np.stack([np.bincount(hue[t + 1][moved[t]], minlength=bins)[:bins] for t in range(t_len - 1)])
    rows, cols = np.indices((h, w))
    worst, at = 0.0, 0
    for b in np.nonzero((per_step >= 3).mean(axis=0) >= mover_steps)[0]:
        mine = strong & (np.abs((hue - b + bins // 2) % bins - bins // 2) <= 1)
        n = mine.sum(axis=(1, 2)).astype(float)
        largest = np.array([cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)[2][1:, 4].max(initial=0)
                            for m in mine])
        compact = (n <= max_fraction * h * w) & (largest >= one * np.maximum(n, 1))
        cy = (mine * rows).sum(axis=(1, 2)) / np.maximum(n, 1)
        cx = (mine * cols).sum(axis=(1, 2)) / np.maximum(n, 1)
        lo, hi = np.minimum(n[1:], n[:-1]), np.maximum(n[1:], n[:-1])
        judged = (lo >= min_pixels) & (hi <= steady * lo) & compact[1:] & compact[:-1]
        step = np.where(judged, np.hypot(np.diff(cy), np.diff(cx)), np.nan)
        for t in range(window, len(step)):
            around = np.concatenate([step[t - window:t], step[t + 1:t + 1 + window]])
            if np.isnan(step[t]) or np.isnan(around).all():
                continue
            ratio = float(step[t]) / (float(np.nanmax(around)) + floor * max(h, w))
            if ratio > worst:
                worst, at = ratio, t + 1
    return worst, at


def distinct_frames(frames: np.ndarray, diffs: np.ndarray, same: float = 0.02) -> np.ndarray:
    """Indices of the frames that differ from the one before. Codecs and frame-rate conversion repeat
    frames (SVT-AV1 skips whole inter frames of a slow, flat scene): a repeat carries no motion, and
    left in, it makes smooth motion look like one-step jumps. Freezes are the `frozen` check's job."""
    means = diffs.reshape(len(diffs), -1).mean(axis=1)
    return np.concatenate([[0], 1 + np.nonzero(means >= same)[0]]).astype(int)


def change_threshold(diffs: np.ndarray, floor: int = 30, k: float = 8.0) -> float:
    """Grey-level change that counts as real: `floor`, or higher on noisy footage, from the episode's
    own noise (median + k * MAD of the per-pixel step changes; most pixels are still in any step)."""
    sample = diffs[:, ::2, ::2].ravel()
    median = float(np.median(sample))
    mad = float(np.median(np.abs(sample - median))) * 1.4826
    return max(float(floor), median + k * mad)


def event(frames: np.ndarray, diffs: np.ndarray, threshold: float = 30, reach: int = 3,
          lasting: int = 3, min_mover: float | None = None, window: int = 2, contact_reach: int = 2) -> tuple[float, int]:
    return events(frames, diffs, threshold, reach, lasting, min_mover, window, contact_reach)[0]


def events(frames: np.ndarray, diffs: np.ndarray, threshold: float = 30, reach: int = 3,
           lasting: int = 3, min_mover: float | None = None, window: int = 2,
           contact_reach: int = 2, solid: int = 4, plate_fg: np.ndarray | None = None,
           moved_search: int = 0, objects: np.ndarray | None = None, settle_share: float = 0.0,
           min_pixels: int = 8) -> tuple[tuple[float, int], tuple[float, int], tuple[float, int]]:
    """Largest area (fraction of the frame) that changes in one step, in neither neighbour step, and
    stays changed for `lasting` more frames: something appeared, vanished or jumped. Flicker and codec
    noise do not last; smooth motion changes neighbouring steps too. With `min_mover`, a change that a
    large mover (the robot, `window` steps either side) reaches is not counted (touched_by_mover).
    events() returns three (area, frame) pairs: with the gate; without it (the `cut` check: when the
    robot itself jumps, the whole mover changes in one step, which the gate would call contact); and
    without it, of the part that is solid (the `patch` check: what is left after an opening with a
    `solid` x `solid` square). What the robot legitimately changes in one step at a time is thin: the
    edge of a door it swings, a strip of a block it shoves (bench_verifier: never 4 px thick at
    128 px on a calibration clean video); a thing pasted in, painted out or jumping changes as a solid
    patch, also beside the arm, where the gate would call it contact. With `moved_search`, a solid piece
    that the frame before, turned and shifted by at most that many pixels, matches both ways (moved)
    is what the robot moved, not a new thing, and leaves the `patch` pair. "Stays" is: the frames after the
    step within threshold/2 of the first of them. With `settle_share` (the `patch` pair only), also: the
    later frames within threshold/2 of the last, and the first within `settle_share` of the step's own
    change of it: the encoder's first frame of a sudden change can be coarse (a dark 8x8 px patch pasted
    on MetaWorld's table came out 10-20 grey levels off and was refined over the next frames, after a step
    of 55; a red puck pasted on the white rim, 21 after 121), and the holes that left in the mask broke
    its solid part. The gated change counts from `min_pixels` whole pixels, pieces wholly at the frame's
    border left out (inside_view): at 64 px the limit (0.0005) is 2 px, and a gripper's or a link's 2x2 px
    flickering in one step where the slow arm's own motion is too fragmented for the gate, or an arm's link at
    the frame's edge, failed 5 of 38 clean episodes (issue 12's 64-px sets and a fresh one); at 128 px the
    limit is 8 px already."""
    if len(diffs) < lasting + 3:
        return (0.0, 0), (0.0, 0), (0.0, 0)  # too few distinct frames (a video frozen early): nothing can be an event
    changed = (diffs > threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    near = np.stack([cv2.dilate(c, kernel) for c in changed]).astype(bool)
    blurred = blur(frames)
    if min_mover and plate_fg is None:
        plate_fg = mover_plates(frames)
    worst, at = 0.0, 0
    worst_all, at_all = 0.0, 0
    worst_solid, at_solid = 0.0, 0
    for t in range(1, len(changed) - 1 - lasting):  # only where the `lasting` frames after exist
        alone = changed[t].astype(bool) & ~near[t - 1] & ~near[t + 1]
        if not alone.any():
            continue
        # diffs[t] is the step from frame t to t+1; the change must still be there at t+1+lasting
        # and afterwards stay still: a thing that appeared or vanished stays put, the robot moves on
        after = blurred[t + 1:t + 2 + lasting]
        alone &= np.abs(after[-1] - blurred[t]).max(axis=-1) > threshold
        drift = np.abs(after - after[:1]).max(axis=(0, -1))
        kept = alone & (drift < threshold / 2)
        if settle_share:  # patch: the encoder's first frame of a sudden change can be coarse (see above)
            step = np.abs(blurred[t + 1] - blurred[t]).max(axis=-1)
            kept |= (alone & (drift < settle_share * step)
                     & (np.abs(after[1:] - after[-1:]).max(axis=(0, -1)) < threshold / 2))
        alone &= drift < threshold / 2
        alone = solid_part(alone, 2)
        area = cut_area = float(alone.mean())
        if cut_area > worst_all and objects is not None:  # an object the robot shoves, landing in one step
            cut_area = float((alone & ~shifted_objects(alone, (objects[t], objects[t + 1]),
                                                        (blurred[t], blurred[t + 1]), threshold)).mean())
        if cut_area > worst_all:
            worst_all, at_all = cut_area, t + 1
        pieces = solid_part(kept, solid) if kept.sum() >= solid * solid else None
        solid_area = float(pieces.mean()) if pieces is not None else 0.0
        if solid_area > worst_solid and moved_search:  # what moved is the robot or what it moves, not a new thing
            pieces = pieces & ~moved_pieces(pieces, blurred[t], blurred[t + 1], threshold, moved_search)
            if objects is not None and pieces.any():
                pieces = solid_part(pieces & ~shifted_objects(pieces, (objects[t], objects[t + 1]),
                                                              (blurred[t], blurred[t + 1]), threshold), solid)
            solid_area = float(pieces.mean())
        if solid_area > worst_solid:
            worst_solid, at_solid = solid_area, t + 1
        if min_mover is not None and alone.any():
            motion = changed[max(0, t - window):t + window + 1].any(axis=0).astype(bool)
            alone &= ~touched_by_mover(alone, motion, min_mover, contact_reach,
                                       bridge=contact_bridge(alone, plate_fg, objects, t, t + 1))
            alone = inside_view(alone)  # (an arm's link crossing the frame's edge: see inside_view)
            area = float(alone.mean()) if alone.sum() >= min_pixels else 0.0
        if area > worst:
            worst, at = area, t + 1
    return (worst, at), (worst_all, at_all), (worst_solid, at_solid)


def leap(frames: np.ndarray, diffs: np.ndarray, threshold: float = 30, min_area: int = 12, plain: float = 0.75,
         ring: int = 2) -> tuple[float, int]:
    """Largest gap (fraction of the longer side) between a thing that enters or leaves in one step and any
    other change around it: a cut where the only mover is small. A moving disc's old and new places touch
    (one change, its next step starts where it landed); in a cut it leaves one place and lands far off,
    and the mean change of that step is hardly above a normal one (PushT, 24-47 frames skipped: 2.9 grey
    levels against 1.2), under `jump` and `cut`. An entry: a piece of the step's change (8-connected, at
    least `min_area` px, not at the frame's border, where things leave the view) on plain ground in the
    frame before (`plain` of its `ring` within half the threshold of its median colour there), whose
    distance to the rest of the step's change and to the step before's is the gap; an exit is the same
    with the frames and the step after swapped."""
    h, w = frames.shape[1:3]
    blurred = blur(frames)
    changed = diffs > threshold
    kernel = np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)
    worst, at = 0.0, 0
    for t in range(1, len(diffs) - 1):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(changed[t].astype(np.uint8), connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            if area < min_area or x == 0 or y == 0 or x + bw == w or y + bh == h:
                continue
            piece = labels == i
            around = cv2.dilate(piece.astype(np.uint8), kernel).astype(bool) & ~piece
            for ground, other in ((t, t - 1), (t + 1, t + 1)):  # entry: ground at t; exit: ground at t+1
                colour = np.median(blurred[ground][piece], axis=0)
                if (np.abs(blurred[ground][around] - colour).max(axis=-1) <= threshold / 2).mean() < plain:
                    continue
                near = (changed[t] & ~piece) | changed[other]
                if not near.any():
                    continue
                gap = float(cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 3)[piece].min()) / max(h, w)
                if gap > worst:
                    worst, at = gap, t + 1
    return worst, at


def moved(piece: np.ndarray, before: np.ndarray, after: np.ndarray, threshold: float, search: int,
          angles: tuple[int, ...] = (0, 5, -5, 10, -10, 15, -15), ring: int = 2, tolerance: float = 0.2) -> bool:
    """Whether a one-step change `piece` (bool mask) between blurred (H, W, 3) frames is something that
    moved: turned by one of `angles` (degrees, about the piece's centre) and shifted by at most `search`
    px, the frame before matches the frame after on the piece widened by `ring` px, all but `tolerance`
    of its pixels within `threshold`, both ways (what is there after was there before, a little off;
    what was there before is still there after, a little off). The robot's wrist sliding over a door,
    a shoved T block's far end swinging round: found again a few pixels on. A thing pasted in is
    nowhere near in the frame before, a thing painted out nowhere near in the frame after."""
    h, w = piece.shape
    area = cv2.dilate(piece.astype(np.uint8), np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)).astype(bool)
    ys, xs = np.nonzero(area)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    mask = area[y0:y1, x0:x1]
    centre = (float(xs.mean()), float(ys.mean()))
    pad = ((search, search), (search, search), (0, 0))

    def misfit(source: np.ndarray, target: np.ndarray, angle: float) -> np.ndarray:
        """(2*search+1)^2: fraction of the widened piece where `target` differs from `source` turned by
        `angle` and offset by (i - search, j - search)."""
        turned = cv2.warpAffine(source.astype(np.float32), cv2.getRotationMatrix2D(centre, angle, 1.0), (w, h),
                                borderMode=cv2.BORDER_REPLICATE)
        around = np.pad(turned, pad, mode="edge")[y0:y1 + 2 * search, x0:x1 + 2 * search]
        windows = np.lib.stride_tricks.sliding_window_view(around, mask.shape, axis=(0, 1))  # (i, j, 3, h, w)
        off = (np.abs(windows - target[y0:y1, x0:x1].transpose(2, 0, 1)).max(axis=2) > threshold) & mask
        return off.sum(axis=(2, 3)) / mask.sum()

    for angle in angles:
        forwards = misfit(before, after, angle)  # offset o: after(x) against before(x + o), o = -shift
        if not (forwards <= tolerance).any():
            continue
        backwards = misfit(after, before, -angle)[::-1, ::-1]  # before(x) against after(x + shift), aligned
        if ((forwards <= tolerance) & (backwards <= tolerance)).any():
            return True
    return False


def moved_pieces(region: np.ndarray, before: np.ndarray, after: np.ndarray, threshold: float, search: int,
                 ring: int = 2) -> np.ndarray:
    """The pieces (8-connected) of `region`, a one-step change between blurred frames, that `moved`."""
    n, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    out = np.zeros(region.shape, bool)
    for i in range(1, n):
        piece = labels == i
        if moved(piece, before, after, threshold, search, ring=ring):
            out |= piece
    return out


def shifted_objects(region: np.ndarray, labels: tuple[np.ndarray, np.ndarray], frames: tuple[np.ndarray, np.ndarray],
                    threshold: float, min_ratio: float = 0.8, min_fit: float = 0.6, min_overlap: float = 0.4,
                    angles: tuple[int, ...] = (0, 5, -5, 10, -10, 15, -15, 20, -20)) -> np.ndarray:
    """The pixels of `region` (a one-step change between two blurred `frames`) on an even-coloured object
    (object_regions `labels` of the two frames) that moved by less than its own size: in either frame, a
    piece the region lies on overlaps, in the other frame, a piece of its colour (within threshold/2)
    and area (within `min_ratio`) that covers where it lay with IoU `min_overlap` or more (it moved by
    well under its own width) and, moved onto its centroid and turned by one of `angles`, covers it
    better still (IoU at least `min_fit` and at least the IoU in place: a piece that something covered
    in part, or that grew, recoloured or shrank in place, did not move). At 10 fps a shove lands in one
    step: PushT's T block moves 2-5 px and turns (IoU in place 0.41-0.65 on bench_verifier's clean
    `pusht-128` videos), and its leading and trailing edges are solid one-step changes on plain ground
    and on the goal under it, which `moved`'s window (the piece and its ring, the static ground
    included) does not find again: 7 of 40 such clean videos failed `patch`, 4 `jump`, 1 `cut`. The
    seconds a cut skips move the T farther (5-12 px, IoU in place 0.14-0.34 on the cuts of those
    sets); a copy, a teleport or a thing pasted in lands clear of where anything of its kind was
    (corruptions: at least its own size away); a thing painted out leaves no piece of its colour
    behind; the robot's arm is larger than any piece."""
    out = np.zeros(region.shape, bool)
    for x, y in ((0, 1), (1, 0)):
        ids = np.unique(labels[x][region])
        for i in ids[ids > 0]:
            a = labels[x] == i
            widened = cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            under, counts = np.unique(labels[y][widened], return_counts=True)
            counts[under == 0] = 0
            if not counts.any():
                continue
            b = labels[y] == under[counts.argmax()]
            ratio = a.sum() / b.sum()
            if not min_ratio <= ratio <= 1 / min_ratio:
                continue
            if np.abs(np.median(frames[x][a], axis=0) - np.median(frames[y][b], axis=0)).max() > threshold / 2:
                continue
            in_place = (a & b).sum() / (a | b).sum()
            if in_place >= min_overlap and _centred_fit(a, b, angles) >= max(min_fit, in_place):
                out |= region & widened
    return out


def _centred_fit(a: np.ndarray, b: np.ndarray, angles: tuple[int, ...]) -> float:
    """The best IoU of mask `a` with mask `b` moved so that its centroid is a's and turned by one of `angles`
    (degrees) about it."""
    (ay, ax), (by, bx) = (np.argwhere(m).mean(axis=0) for m in (a, b))
    best = 0.0
    for angle in angles:
        matrix = cv2.getRotationMatrix2D((float(bx), float(by)), angle, 1.0)
        matrix[:, 2] += (ax - bx, ay - by)
        moved_b = cv2.warpAffine(b.astype(np.uint8), matrix, (a.shape[1], a.shape[0]), flags=cv2.INTER_NEAREST).astype(bool)
        best = max(best, float((a & moved_b).sum() / max((a | moved_b).sum(), 1)))
    return best


def inside_view(mask: np.ndarray, edge: int = 3) -> np.ndarray:
    """`mask` less its pieces (8-connected) that lie wholly within `edge` px of the frame's border: there
    something can cross the frame's edge (an arm's link sliding out of view at 480x640: a strip of 2-3 px
    at the 128-px work size that turns from red to floor over a few frames), and the view tells nothing
    of what is beyond it. A thing that appears, vanishes or morphs in view reaches further in."""
    h, w = mask.shape
    inner = np.zeros(mask.shape, bool)
    inner[edge:h - edge, edge:w - edge] = True
    if not (mask & ~inner).any():  # (nothing at the edge: settle's loop calls this for every span)
        return mask
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[mask & inner])] = True
    keep[0] = False
    return keep[labels]


def solid_part(mask: np.ndarray, size: int) -> np.ndarray:
    """The pixels of `mask` covered by a `size` x `size` square that fits inside it (a morphological
    opening; cv2's own with an even kernel shifts by a pixel, so the anchors are set here)."""
    square = np.ones((size, size), np.uint8)
    fits = cv2.erode(mask.astype(np.uint8), square, anchor=(0, 0), borderValue=0)  # top-left corners that fit
    return cv2.dilate(fits, square, anchor=(size - 1, size - 1)).astype(bool)


def still_patch(frames: np.ndarray, threshold: float = 30, quiet: int = 4, still_fraction: float = 0.5,
                solid: int = 4, min_after: int = 2, objects: np.ndarray | None = None) -> tuple[float, int]:
    """Largest solid area (a `solid` x `solid` square fits; fraction of the frame) that changes in one
    step between two still stretches: each pixel stays within threshold * still_fraction of itself
    (its range over the stretch) for `quiet` frames before and after the step (fewer after, down to
    `min_after`, at the end of the video). The `patch` statistic of `events` asks that nothing changes
    within a few pixels in the neighbouring steps, so a thing pasted in or painted out beside the
    moving arm, or under the gripper, is lost to the arm's own motion; here only the pixel's own
    history counts. The stillness is a range, not a per-step bar: AV1 flickers edges by 8-13 grey
    levels every other frame, which a per-step bar (settle's) reads as motion. What the robot changes in
    one step between two still stretches (an edge it stops at) is thin (bench_verifier: never 4 px thick
    on a clean video at 128 px)."""
    t_len = len(frames)
    if t_len < quiet + 2 + min_after:
        return 0.0, 0
    blurred = blur(frames)
    bar = threshold * still_fraction

    def still(a: int, b: int) -> np.ndarray:  # frames a..b (inclusive) stay within `bar` of each other
        window = blurred[a:b + 1]
        return (window.max(axis=0) - window.min(axis=0)).max(axis=-1) < bar

    worst, at = 0.0, 0
    for a in range(quiet, t_len - 1 - min_after):
        b = a + 1
        changed = np.abs(blurred[b] - blurred[a]).max(axis=-1) > threshold
        if changed.sum() < solid * solid:
            continue
        changed &= still(a - quiet, a)
        if changed.sum() < solid * solid:
            continue
        changed &= still(b, min(b + quiet, t_len - 1))
        area = float(solid_part(changed, solid).mean()) if changed.sum() >= solid * solid else 0.0
        if area > worst and objects is not None:  # an object the robot shoves, landing in one step
            changed &= ~shifted_objects(changed, (objects[a], objects[b]), (blurred[a], blurred[b]), threshold)
            area = float(solid_part(changed, solid).mean())
        if area > worst:
            worst, at = area, b
    return worst, at


def still_change(frames: np.ndarray, diffs: np.ndarray, threshold: float = 30, quiet: int = 4, span: int = 8,
                 still_fraction: float = 0.5, reach: int = 3, solid: int = 3,
                 min_mover: float | None = None, plate_fg: np.ndarray | None = None,
                 objects: np.ndarray | None = None, moved_search: int = 0) -> tuple[float, int]:
    """Largest solid area (a `solid` x `solid` square fits; fraction of the frame) that changes by more than
    `threshold` within at most `span` frames between two still stretches of `quiet` frames, with no mover
    reaching it meanwhile (touched_in_window): a thing that grows, shrinks, recolours or vanishes on its own,
    gradually (`moved_search` and the frame's edge as in `settle`). `settle` asks the same with a per-step
    stillness bar (a quarter of the threshold), which the AV1 encoder's flicker of edges (8-13 grey levels
    every other frame) breaks, so a goal marker growing from 3 to 8 px with the arm away passed it; here
    "still" is a range (every frame of the stretch within threshold * still_fraction of the others, for the
    pixel and its neighbours within `reach`), so flicker stays still and a slow drift does not. The looser bar
    lets thin slivers through on clean videos (the arm's shadow edge, the rim of a shoved T block:
    bench_verifier's clean videos up to 0.003 of the frame), so only the solid part counts."""
    t_len = len(frames)
    if t_len < 2 * quiet + 2:
        return 0.0, 0
    blurred = blur(frames)
    high, low = blurred[:t_len - quiet].copy(), blurred[:t_len - quiet].copy()
    for k in range(1, quiet + 1):  # range of each pixel over frames t..t+quiet
        np.maximum(high, blurred[k:t_len - quiet + k], out=high)
        np.minimum(low, blurred[k:t_len - quiet + k], out=low)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    busy = ((high - low).max(axis=-1) >= threshold * still_fraction).astype(np.uint8)
    still = ~np.stack([cv2.dilate(b, kernel) for b in busy]).astype(bool)  # still[t]: frames t..t+quiet, neighbours too
    if min_mover and plate_fg is None:
        plate_fg = mover_plates(frames)
    worst, at = 0.0, 0
    for start in range(quiet, t_len - 1 - quiet):
        before = still[start - quiet]
        if not before.any():
            continue
        for end in range(start + 1, min(start + span, t_len - 1 - quiet) + 1):
            alone = before & still[end] & (np.abs(blurred[end] - blurred[start]).max(axis=-1) > threshold)
            if alone.sum() < solid * solid:
                continue
            alone = inside_view(solid_part(alone, 2))
            if float(solid_part(alone, solid).mean()) <= worst:
                continue  # the gate only takes pixels away
            if min_mover is not None:
                alone &= ~touched_in_window(alone, diffs, blurred, max(0, start - quiet), end + quiet, threshold,
                                            min_mover, contact_bridge(alone, plate_fg, objects, start, end))
            pieces = solid_part(alone, solid)
            area = float(pieces.mean())
            if area > worst and moved_search:  # an edge that slid on, not a thing that changed
                area = float(solid_part(pieces & ~moved_pieces(pieces, blurred[start], blurred[end], threshold,
                                                               moved_search, ring=0), solid).mean())
            if area > worst:
                worst, at = area, end  # the first frame with all of the change
    return worst, at


def settle(frames: np.ndarray, diffs: np.ndarray, threshold: float = 30, reach: int = 3, span: int = 8,
           quiet: int = 4, still_fraction: float = 0.25, min_mover: float | None = None,
           plate_fg: np.ndarray | None = None, objects: np.ndarray | None = None,
           moved_search: int = 0) -> tuple[float, int]:
    """Largest area (fraction of the frame) that changes by more than `threshold` within at most
    `span` frames while it and everything within `reach` pixels is still for `quiet` steps before
    and after: a thing that vanished, grew or changed on its own, gradually (a morph) or at once.
    "Still" is strict (under threshold * still_fraction per step): a soft shadow or a slow arm moves
    a few grey levels per step, which adds up over the span without any one step passing `threshold`.
    With `min_mover`, a change that a large mover reaches meanwhile is not counted (touched_in_window).
    With `moved_search`, nor is a piece whose own pixels the frame before, turned and shifted by at most
    that many pixels, matches both ways (`moved` on the piece alone, no ring: an arm's edge that slid
    on by a pixel over the span). Pieces wholly at the frame's edge do not count (inside_view)."""
    t_len = len(frames)
    if t_len < 2 * quiet + 2:
        return 0.0, 0
    moving = (diffs > threshold * still_fraction).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    near = np.stack([cv2.dilate(c, kernel) for c in moving]).astype(np.int32)
    busy = np.concatenate([np.zeros((1, *near.shape[1:]), np.int32), np.cumsum(near, axis=0)])  # busy[b]-busy[a]: steps a..b-1
    blurred = blur(frames)
    if min_mover and plate_fg is None:
        plate_fg = mover_plates(frames)
    worst, at = 0.0, 0
    for start in range(quiet, t_len - 1 - quiet):
        still_before = (busy[start] - busy[start - quiet]) == 0
        if not (moving[start].astype(bool) & still_before).any():
            continue  # the change must begin with step start -> start+1, somewhere that was still
        for end in range(start + 1, min(start + span, t_len - 1 - quiet) + 1):
            alone = still_before & ((busy[end + quiet] - busy[end]) == 0)
            alone &= np.abs(blurred[end] - blurred[start]).max(axis=-1) > threshold
            if not alone.any():
                continue
            alone = inside_view(solid_part(alone, 2))
            if min_mover is not None and alone.any():
                alone &= ~touched_in_window(alone, diffs, blurred, max(0, start - quiet), end + quiet, threshold,
                                            min_mover, contact_bridge(alone, plate_fg, objects, start, end))
            area = float(alone.mean())
            if area > worst and moved_search:  # an edge that slid on, not a thing that changed
                area = float((alone & ~moved_pieces(alone, blurred[start], blurred[end], threshold, moved_search,
                                                    ring=0)).mean())
            if area > worst:
                worst, at = area, start + 1
    return worst, at


# Frames this small or smaller (the longer side, at the work size) have coarse colour: a video codec keeps
# colour at half the size (4:2:0), so at 64 px it is 32 px across, and a small dark thing's hue and
# saturation are noise (the dark cabinet of door-open, turning, read as a new navy colour in 13 of 16 clean
# corner4 episodes), and a small object's colour splits over two hue bins, each under new_colour's bar (a
# pale drawer's green, 13 px at the start). There a strong colour must also be at least COARSE_MIN_VALUE
# bright, new_colour knows a colour from its bin and both neighbours together and counts one new colour
# (the largest run of neighbouring new bins: the codec sprinkles a few pixels of odd hues along a carried
# puck and a gripper's edges, 3-7 px in each of 4-5 bins far apart, 12-14 px in all, over its 0.0029
# limit in both clean episodes of shelf-place corner4, issue 12's 64-px sets), and colour_place counts a
# new colour only where a COARSE_SOLID square fits in it: a gripper's teal finger, 2 px wide, turning into
# the light showed 6-8 px of a colour never near it at the start (0.0015-0.002 of the frame, over the
# 0.0013 limit) in 4 of the 18 clean episodes of issue 12's 64-px sets (button-press, corner4).
COARSE_COLOUR = 64
COARSE_MIN_VALUE = 70
COARSE_SOLID = 3
# On coarse frames a slow arm's step changes a few dozen whole pixels, 2-3x more or less from one moving step
# to the next (lerobot's h264 and AV1 at g=2 code many P-frames as near copies, so the motion comes in bursts,
# and some recorded episodes' last frame is tinted over the whole frame), and with pace's floor at 8 px, 12 of 220
# clean camera-episodes over issue 12's and issue 15's 64-px sets (10 of their 82 episodes: 10 tasks, 3
# cameras, h264 and AV1) read 1.72-2.23 against its 1.7. With 14 px, 4 of them (3 episodes) at 1.73-1.81,
# three at an episode's last step; on bench_verifier's two 64-px sets it costs 8 of the 896 corruptions no
# other check caught (4 of 128 cuts). At 128 px and 480x640 (96x128) frames the floor stays 8 px: 12 there
# takes 7 of bench_verifier's 768 videos at 480x640 under the limit (push and door-open duplicates, vanishes
# and teleports, 1.75-2.38 with 8 px, 1.17-1.67 with 12).
COARSE_PACE_FLOOR = 14


def _colour_histograms(frames: np.ndarray, bins: int = 18, min_saturation: int = 90, min_value: int = 50) -> np.ndarray:
    """(T, bins) fraction of each frame's pixels that are strongly coloured, per hue bin."""
    out = np.zeros((len(frames), bins))
    for t, frame in enumerate(frames):
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
        strong = (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= min_value)
        hue = (hsv[..., 0][strong].astype(int) * bins) // 180
        out[t] = np.bincount(hue, minlength=bins)[:bins] / hsv[..., 0].size
    return out


def _largest_run(values: np.ndarray) -> np.ndarray:
    """(T,): per row of `values` (T, bins, >= 0), the largest sum over a run of neighbouring bins that all
    hold some (hue is circular): one colour's amount, where a thing's colour spreads over neighbouring bins."""
    out = np.zeros(len(values))
    for t, row in enumerate(values):
        if row.all():
            out[t] = row.sum()
            continue
        run = 0.0
        for v in np.roll(row, -int(np.argmin(row > 0))):  # from an empty bin: no run wraps past it
            run = run + v if v > 0 else 0.0
            out[t] = max(out[t], run)
    return out


def colour_drift(frames: np.ndarray, reference: int = 3, persist: int = 3, min_value: int = 50,
                 coarse: bool = False) -> tuple[float, float, int]:
    """(new_colour, colour_mass, frame): fraction of pixels in hue bins that were (almost) absent from
    the first `reference` frames, and the largest change of one hue's amount relative to the first
    frames (as a fraction of the frame); both taken as the smallest over `persist` consecutive frames,
    so that only a lasting change counts. `coarse` (frames of 64 px or less, COARSE_COLOUR): see there."""
    if coarse:
        min_value = max(min_value, COARSE_MIN_VALUE)
    hist = _colour_histograms(frames, min_value=min_value)
    ref = hist[:reference].mean(axis=0)
    # a bin or its neighbours present at the start makes that colour known (lighting shifts hue a bit);
    # coarse: the three together (a small thing's colour split over two bins, each under the bar)
    spread = [ref, np.roll(ref, 1), np.roll(ref, -1)]
    known = (np.sum(spread, axis=0) if coarse else np.maximum.reduce(spread)) > 0.002
    excess = np.where(known, 0.0, np.clip(hist - ref, 0, None))
    new = _largest_run(excess) if coarse else excess.sum(axis=1)
    mass = np.abs(hist - ref).max(axis=1)

    def lasting(series: np.ndarray) -> tuple[float, int]:
        if len(series) < persist:
            return 0.0, 0
        floor = np.array([series[t:t + persist].min() for t in range(len(series) - persist + 1)])
        return float(floor.max()), int(floor.argmax())

    new_stat, new_at = lasting(new)
    mass_stat, mass_at = lasting(mass)
    return new_stat, mass_stat, (new_at if new_stat else mass_at)


def colour_place(frames: np.ndarray, bins: int = 18, reach: int = 16, reference: int = 3, persist: int = 3,
                 min_saturation: int = 90, min_value: int = 50, mover_steps: float = 0.25, min_pixels: int = 3,
                 threshold: float = 30, coarse: bool = False) -> tuple[float, int]:
    """Largest lasting fraction of the frame in a strong colour that was nowhere within `reach` pixels
    of that place in the first `reference` frames (hue bins +-1): a thing that appears, is copied or
    turns into a colour the scene has only elsewhere (new_colour misses those: it asks whether a colour
    is new to the whole frame). Colours of what moves are left out: a hue bin in which at least
    `min_pixels` strongly coloured pixels change (by `threshold`) in at least `mover_steps` of the steps
    is the robot's, or what it carries, and goes wherever the robot goes; a hallucination changes once,
    or over a few frames. Taken as the smallest over `persist` frames. `coarse`: see COARSE_COLOUR."""
    if coarse:
        min_value = max(min_value, COARSE_MIN_VALUE)
    t_len, h, w = frames.shape[:3]
    if t_len < max(reference, persist) + 1:
        return 0.0, 0
    hsv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in frames])
    strong = (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= min_value)
    hue = (hsv[..., 0].astype(int) * bins) // 180
    blurred = blur(frames)
    moved = (np.abs(np.diff(blurred, axis=0)).max(axis=-1) > threshold) & strong[1:]
    per_step = np.stack([np.bincount(hue[t + 1][moved[t]], minlength=bins)[:bins] for t in range(t_len - 1)])
    mover = (per_step >= min_pixels).mean(axis=0) >= mover_steps
    mover |= np.roll(mover, 1) | np.roll(mover, -1)
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    known = np.stack([cv2.dilate((strong[:reference] & (hue[:reference] == b)).any(axis=0).astype(np.uint8), kernel)
                      for b in range(bins)]).astype(bool)
    known |= np.roll(known, 1, axis=0) | np.roll(known, -1, axis=0)  # lighting shifts hue a little
    known[mover] = True
    rows, cols = np.indices((h, w))
    new = [strong[t] & ~known[hue[t], rows, cols] for t in range(t_len)]
    fraction = np.array([(solid_part(m, COARSE_SOLID) if coarse else m).mean() for m in new])
    floor = np.array([fraction[t:t + persist].min() for t in range(t_len - persist + 1)])
    return float(floor.max()), int(floor.argmax())


def blob_counts(frames: np.ndarray, min_area: int = 6) -> np.ndarray:
    """Number of foreground blobs per frame (weight-free segmenter: difference to the median plate)."""
    masks = foreground_masks(frames, saturation_threshold=None, min_area=min_area)
    return np.array([cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] - 1 for m in masks])


def objects(frames: np.ndarray, reference: int = 3, persist: int = 5) -> tuple[float, int]:
    """Lasting change in the foreground blob count from the first frames: the smallest absolute
    change over `persist` consecutive frames, maximised over time."""
    counts = blob_counts(frames)
    ref = float(np.median(counts[:reference]))
    delta = np.abs(counts - ref)
    if len(delta) < persist:
        return 0.0, 0
    floor = np.array([delta[t:t + persist].min() for t in range(len(delta) - persist + 1)])
    return float(floor.max()), int(floor.argmax())


def large_blobs(mask: np.ndarray, min_area: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def first_frame_objects(hsv0: np.ndarray, min_saturation: int, max_fraction: float) -> list[np.ndarray]:
    """Masks of the small strongly coloured blobs of the first frame, less the largest one (the robot)."""
    strong = ((hsv0[..., 1] >= min_saturation) & (hsv0[..., 2] >= 40)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if len(areas) == 0:
        return []
    largest = int(np.argmax(areas)) + 1
    return [labels == i for i in range(1, n)
            if i != largest and 3 <= areas[i - 1] <= max_fraction * strong.size]


def objects_persist(frames: np.ndarray, min_saturation: int = 150, reach: int = 1, persist: int = 2,
                    max_fraction: float = 0.02, search: int = 6, min_mover: float = 0.01,
                    min_pixels: int = 3) -> tuple[float, int]:
    """Largest lasting |log2(area / first area)| of a first-frame object (clipped at 4: gone), counted
    only until a mover (a foreground blob of at least `min_mover` of the frame: the robot) first comes
    within `reach` pixels of where the object lay: after a touch the object may rightly be carried,
    pushed or hidden. Its area is the blob of its colour (hue
    within 10, value within 50) that overlaps where it lay, within `search` pixels of it; the change must
    hold for `persist` frames and be at least `min_pixels`. A morph grows it, a vanish takes it away, both with the robot near."""
    hsv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in frames]).astype(np.int16)
    strong = (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= 40)
    objects = first_frame_objects(hsv[0], min_saturation, max_fraction)
    # what differs from the episode's median plate (editors/segment.py), undilated: touching is touching
    foreground = foreground_masks(frames, saturation_threshold=None, dilate=0, min_area=6) if objects else None
    worst, at = 0.0, 0
    for footprint in objects:
        reached, near = _widened(footprint, reach), _widened(footprint, search)
        hue = int(np.median(hsv[0][footprint][:, 0]))
        value = float(np.median(hsv[0][footprint][:, 2]))
        hue_off = np.abs((hsv[..., 0] - hue + 90) % 180 - 90)
        same = strong & (hue_off <= 10) & (np.abs(hsv[..., 2] - value) < 50)
        first = max(int((same[0] & footprint).sum()), 1)
        change = []
        for t in range(len(frames)):
            # a mover is a large foreground blob (the robot, a door it swings) not in the object's own
            # colour: an object that grows must not count as something touching it
            other = foreground[t] & ~same[t]
            if (other & reached).any() and (large_blobs(other, min_mover * other.size) & reached).any():
                break
            _, labels = cv2.connectedComponents((same[t] & near).astype(np.uint8), connectivity=8)
            ids = np.unique(labels[footprint & same[t]])
            area = int(np.isin(labels, ids[ids > 0]).sum())
            # a blob of a few pixels gains or loses one or two to shading: that is not a change of size
            change.append(min(abs(float(np.log2(max(area, 1e-3) / first))), 4.0) if abs(area - first) >= min_pixels else 0.0)
        for t in range(len(change) - persist + 1):
            lasting = min(change[t:t + persist])
            if lasting > worst:
                worst, at = lasting, t
    return worst, at


def _widened(mask: np.ndarray, pixels: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)).astype(bool)


def action_outside(action: np.ndarray, q01: np.ndarray, q99: np.ndarray, margin: float = 0.1) -> float:
    """Fraction of action values outside [q01, q99] widened by `margin` of that range on each side."""
    span = np.maximum(q99 - q01, 1e-6)
    lo, hi = q01 - margin * span, q99 + margin * span
    outside = (action < lo) | (action > hi)
    return float(outside.mean()) if outside.size else 0.0
