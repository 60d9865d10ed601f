"""The workspace: what a background edit keeps (robot, task objects, the surface they rest on)

Motion alone finds only what moves. The table, the robot's pedestal and objects that have not
moved yet are as still as the floor and the walls, so they are told apart on the plate instead:
it is cut into regions of one colour, and two sides grow over the region graph, each across the
weakest edge first. The backdrop grows from the top edge of the image, and later from the left and
right edges where nothing moves (walls, floor, sky seen past the workspace), across weak edges only.
The workspace grows from strongly coloured things (objects, a coloured robot) and the surface the
small ones lie in, across the stronger edges a table has inside it (grain, a metal rim). What
neither reaches (a pedestal, the floor seen between table legs) goes to the side it looks like.
The bottom edge seeds no backdrop: a camera that looks down at a workspace has the table or the
robot there (a large tinted region there is the table, even where no coloured object marks it).
Per frame, the keep-mask is the still workspace plus what moves, less the backdrop seen again where
the arm usually stands. Assumptions, measured on MetaWorld (README): a fixed camera, a backdrop at
the top of the image, objects more colourful than the table or, if pale, more tinted than a grey backdrop.

benchmarks/bench_edits.py measures it against the simulator's own segmentation (README). Runs on the
CPU, no weights: ~2.5 s for 70 frames at 128 px on a busy 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import cv2
import numpy as np

from editors.regions import adjacency, components, grow, settle, plate_regions
from editors.segment import background_plate, drop_specks, plate_difference, plate_indices


@dataclass
class Workspace:
    keep: np.ndarray  # bool (T, H, W): robot, objects and work surface in each frame
    moving: np.ndarray  # bool (T, H, W): what differs from the plate in each frame
    static: np.ndarray  # bool (H, W): the still part of the workspace (table, pedestal, resting objects)
    surface: np.ndarray  # bool (H, W): the work surface: grown from under the objects, less what is coloured
    objects: np.ndarray  # bool (H, W): small coloured things in the plate (objects before or after they move)
    plate: np.ndarray  # uint8 (H, W, 3): the per-pixel temporal median
    behind: np.ndarray  # uint8 (H, W, 3): the plate, where it shows the arm filled from around it (what is behind)


def workspace_masks(frames: np.ndarray, diff_threshold: float = 18.0, edge_contrast: float = 15.0,
                    surface_contrast: float = 30.0, table_contrast: float = 25.0,
                    saturation: float | None = 0.45, chroma: float = 25.0, min_area: int = 12) -> Workspace:
    """The keep-mask of every frame of one fixed camera's video (T, H, W, 3), and its parts. survey()'s
    Scene, from the whole video at once: its motion masks are computed once, for the survey and the masks."""
    plate = background_plate(frames)
    moving = moving_masks(frames, plate, diff_threshold, min_area)
    scene = Scene.of(plate, moving.sum(axis=0) / len(frames), worked(moving), diff_threshold, edge_contrast,
                     surface_contrast, table_contrast, saturation, chroma, min_area)
    keep, moving = scene.masks(frames, moving)
    return Workspace(keep=keep, moving=moving, static=scene.static, surface=scene.surface, objects=scene.objects,
                     plate=scene.plate, behind=scene.behind)


def survey(chunks: Callable[[], Iterable[dict[str, np.ndarray]]], n: int, cameras: list[str],
           diff_threshold: float = 18.0, edge_contrast: float = 15.0, surface_contrast: float = 30.0,
           table_contrast: float = 25.0, saturation: float | None = 0.45, chroma: float = 25.0,
           min_area: int = 12) -> dict[str, Scene]:
    """The Scene of each of `cameras` over an episode of `n` frames, from two passes over its chunks
    (`chunks()` yields {camera: frames (t, H, W, 3)} in order, from the first frame, at each call):
    the frames background_plate samples, then per pixel how many frames move against that plate
    and where the robot works (worked()).
    It holds a chunk and the plate's samples (up to 64 frames per camera), never the episode."""
    picks = plate_indices(n)
    samples: dict[str, np.ndarray] = {}
    seen = 0
    for chunk in chunks():
        length = len(chunk[cameras[0]])
        slots = np.nonzero((picks >= seen) & (picks < seen + length))[0]
        for key in cameras:
            video = chunk[key]
            if key not in samples:
                samples[key] = np.empty((len(picks), *video.shape[1:]), video.dtype)
            samples[key][slots] = video[picks[slots] - seen]
        seen += length
    if seen != n:
        raise ValueError(f"the chunks hold {seen} frames, the episode {n}")
    plates = {k: np.median(v, axis=0).astype(np.uint8) for k, v in samples.items()}  # background_plate's
    del samples
    moves = {k: np.zeros(p.shape[:2], np.int64) for k, p in plates.items()}
    works = {k: np.zeros(p.shape[:2], bool) for k, p in plates.items()}
    for chunk in chunks():
        for key, count in moves.items():
            moving = moving_masks(chunk[key], plates[key], diff_threshold, min_area)
            count += moving.sum(axis=0)
            works[key] |= worked(moving)
    return {k: Scene.of(plates[k], moves[k] / n, works[k], diff_threshold, edge_contrast, surface_contrast,
                        table_contrast, saturation, chroma, min_area) for k in cameras}


@dataclass
class Scene:
    """What the workspace of one camera's episode is, from the plate and how often each pixel moves
    (survey): the still workspace, the surface and objects, what lies behind the arm. masks() then
    gives the keep-mask of any run of the episode's frames, each frame on its own: a chunk at a time."""

    plate: np.ndarray  # uint8 (H, W, 3): the per-pixel temporal median
    static: np.ndarray  # bool (H, W): the still part of the workspace (table, pedestal, resting objects)
    surface: np.ndarray  # bool (H, W): the work surface
    objects: np.ndarray  # bool (H, W): small coloured things in the plate
    behind: np.ndarray  # uint8 (H, W, 3): the plate, where it shows the arm filled from around it
    g: _RegionGraph
    side: np.ndarray  # per region: 1 workspace, 2 backdrop (_sides)
    seen_again: _SeenAgain
    diff_threshold: float
    edge_contrast: float
    min_area: int

    @classmethod
    def of(cls, plate: np.ndarray, busy: np.ndarray, work: np.ndarray, diff_threshold: float, edge_contrast: float,
           surface_contrast: float, table_contrast: float, saturation: float | None, chroma: float,
           min_area: int) -> Scene:
        """busy: float (H, W), the share of the episode's frames in which each pixel moves (moving_masks);
        work: bool (H, W), where the robot moves in any frame (worked)."""
        g = _RegionGraph.of(plate, busy, work, saturation, chroma)
        side = _sides(g, edge_contrast, surface_contrast, min_area)
        backdrop = side == 2
        # a small object's anti-aliased rim is dull enough to join the backdrop's region: keep it too
        static = ~backdrop[g.regions] | _dilate(g.small[g.regions], 1)
        # (the lower the resolution, the less of a pixel a gap fills: at 64 px the floor seen through
        # the gap between a pedestal and a table is a blend 20-30 Lab from the floor; at 128 px a 1 px
        # white highlight on the wood is 24 from it)
        static &= ~_backdrop_slivers(g, side, float(np.clip(20.0 * np.sqrt(128 / plate.shape[0]), 20.0, 30.0)))
        static = _snap_to_plate(static, g.lab)
        static |= _tinted_edges(static, g, side)
        # Where the plate shows the arm (its usual pose: the coloured robot and the blur of it), what
        # lies behind is not in the plate: it is taken from the nearest pixels around that pose (wall,
        # floor or table), so editors.background unmixes the arm's edge there against the wall, not
        # against the arm itself (which left a grey-pink rim of the old wall trailing the elbow).
        # (Judging the kept pixels there by coverage against it too dropped a carried puck's pixels and
        # made specks of backdrop appear and stay under a resting arm: `augment check` event failures.)
        arm = static & ((g.coloured & ~g.small) | ((side == 1) & ~g.pale & ~g.carriers & (g.busy > 0.3)))[g.regions]
        behind = fill_from_around(plate, _dilate(arm, 2))  # (past the blur's pink fringe)
        table, cut_off = _table(g, side, table_contrast)
        robot = g.coloured & ~g.small & ~table & ~cut_off
        surface = _off_the_table((table | cut_off)[g.regions], robot[g.regions], g, cut_off.any())
        # (after _off_the_table: a thing left out of the table first changes its body's hull)
        surface &= ~_things_on(g, table | cut_off)[g.regions]
        grain = _grain(g, surface)
        surface |= grain[g.regions]
        return cls(plate=plate, static=static, surface=surface, objects=(g.small & ~grain)[g.regions], behind=behind,
                   g=g, side=side, seen_again=_SeenAgain.of(g, side), diff_threshold=diff_threshold,
                   edge_contrast=edge_contrast, min_area=min_area)

    def masks(self, frames: np.ndarray, moving: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(keep, moving): bool (t, H, W) each, for frames (t, H, W, 3) of the episode surveyed
        (`moving`: their moving_masks, when known already)."""
        g, plate, static, threshold = self.g, self.plate, self.static, self.diff_threshold
        if moving is None:
            moving = moving_masks(frames, plate, threshold, self.min_area)
        # Where the plate shows the robot (it stood there most of the episode), the frames it has left
        # show what is behind it; shadows darken the floor. Such pixels differ from the plate but
        # continue the backdrop next to them without an edge: they are grown from it, frame by frame,
        # from backdrop pixels that look as in the plate (not a fringe of something the mask missed) and
        # from the backdrop seen again where the arm usually stands. The growth also passes through
        # backdrop pixels that are neither still nor moving (at 64 px the codec's ring round the arm
        # cut the wall the arm uncovers off from the wall it grows from).
        diff = plate_difference(frames, plate)
        still = diff < threshold / 2
        # where the plate shows the arm, every pixel that differs counts as moving, however small the
        # patch (moving_masks drops specks): a sliver of wall seen between links must not stay "arm"
        moving = moving | ((diff > threshold) & (g.coloured & ~g.small)[g.regions][None])
        seen_again = self.seen_again(frames, moving, self.edge_contrast)
        behind = np.stack([continues_from(f, (~static & ~m & s) | a, m | (~static & ~s & _dilate(m, 2)), self.edge_contrast)
                           for f, m, s, a in zip(frames, moving, still, seen_again)])
        keep = (moving | static[None]) & ~behind
        keep = np.stack([_edge_by_coverage(f, k, plate, static) for f, k in zip(frames, keep)])
        return keep, moving & ~behind


def fill_from_around(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`image` with each `hole` pixel replaced by the nearest pixel outside the hole."""
    if not hole.any() or hole.all():
        return image
    _, nearest = cv2.distanceTransformWithLabels(hole.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(~hole)  # labels number the pixels outside the hole in raster order, from 1
    out = image.copy()
    idx = nearest[hole] - 1
    out[hole] = image[ys[idx], xs[idx]]
    return out


# the Lab chroma from which a region is tinted, not grey: a table's wood is 10-15 on AV1 frames, 9.7-10 at
# 64 px through h264 (its chroma is coarser and paler: under 10, the wood of two door-open and drawer-close
# episodes in corner2 went to the wall, the table with it); a grey floor or wall is 2-5
_TINTED = 8.0


@dataclass
class _RegionGraph:
    regions: np.ndarray  # int32 (H, W): region of each plate pixel
    lab: np.ndarray  # float32 (H, W, 3): the plate in Lab
    area: np.ndarray  # (n,) pixels per region
    mean: np.ndarray  # (n, 3) mean Lab colour per region
    in_hull: np.ndarray  # (n,) share of the region inside the hull of all motion
    in_work: np.ndarray  # (n,) share of the region inside the hull of where the robot works (worked)
    busy: np.ndarray  # (n,) share of the frames in which the region's pixels move (mean over the region)
    coloured: np.ndarray  # (n,) bool: strongly coloured (objects, a coloured robot)
    pale: np.ndarray  # (n,) bool: not strongly coloured but tinted, unlike a grey backdrop (a pale drawer)
    tint: np.ndarray  # (n,) Lab chroma of the region's mean colour (grey floor ~2, wood ~15, pale drawer ~40)
    blob: np.ndarray  # (n,) the coloured group a coloured region belongs to
    small: np.ndarray  # (n,) bool: coloured and small with its group: an object
    neighbours: list[list[int]]
    slivers: np.ndarray  # bool (H, W): lines 1-2 px wide unlike both their sides (thin_lines)
    carriers: np.ndarray  # (n,) bool: a region that surrounds something moving (the surface it slides on)
    thin: np.ndarray  # (n,) bool: at most about 2 px wide (_thin): a blend along an outline, a line

    @classmethod
    def of(cls, plate: np.ndarray, busy_px: np.ndarray, work: np.ndarray, saturation: float | None,
           chroma: float) -> _RegionGraph:
        """busy_px: float (H, W), the share of the frames in which each pixel moves; work: bool (H, W)."""
        regions, lab = plate_regions(plate)
        slivers = thin_lines(plate)
        n = int(regions.max()) + 1
        area = np.bincount(regions.ravel(), minlength=n)

        def region_mean(values: np.ndarray) -> np.ndarray:
            return np.bincount(regions.ravel(), weights=values.ravel(), minlength=n) / np.maximum(area, 1)

        mean = np.stack([region_mean(lab[..., c]) for c in range(3)], 1)
        hsv = cv2.cvtColor(plate, cv2.COLOR_RGB2HSV).astype(np.float32)
        coloured = np.zeros(n, bool) if saturation is None else (
            (region_mean(hsv[..., 1]) / 255 > saturation) & (region_mean(hsv[..., 2]) > 40))
        # Pale but clearly tinted (Lab chroma): MetaWorld's pale-green drawer, ~40, against a wood
        # table's ~15 and a grey floor's ~2 (its HSV saturation, 0.35, is the table's). Such a thing
        # is workspace, though not an arm whose wall-coloured pixels are the wall seen again.
        tint = np.hypot(region_mean(lab[..., 1]) - 128, region_mean(lab[..., 2]) - 128)  # 8-bit Lab: a, b around 128
        pale = ~coloured & (tint > chroma) if saturation is not None else np.zeros(n, bool)
        busy = region_mean(busy_px)
        pale &= busy < 0.3  # not the plate's blur of a moving red arm over a grey wall
        neighbours = adjacency(regions, n)
        # Objects are coloured blobs that stay small when joined with the coloured regions they touch
        # (a red arm is cut into many small regions by its shading; together they are large).
        blob = components(coloured, neighbours)
        small = coloured & (np.bincount(blob, weights=area, minlength=n)[blob] < 0.01 * regions.size)
        moved = busy_px > 0
        return cls(regions, lab, area, mean, region_mean(motion_hull(moved)), region_mean(motion_hull(work)), busy,
                   coloured, pale, tint, blob, small, neighbours, slivers, _carriers(regions, moved, n),
                   _thin(regions, n))


def _carriers(regions: np.ndarray, moved: np.ndarray, n: int, inside: float = 0.95) -> np.ndarray:
    """Per region: does it enclose a patch of motion (at least `inside` of the patch within the
    region's outline, holes filled)? What moves within one region slides on it - a top-down work
    surface (pusht's canvas) - while an arm seen against a wall is joined to its pedestal below it.
    Not the wall holding the image's top corners, though, unless it reaches the bottom edge too (a
    canvas seen from above fills the frame): an arm that moves only in front of the wall is enclosed
    by it (door-open, corner4 at 64 px: the wall as a work surface, the whole backdrop kept)."""
    out = np.zeros(n, bool)
    walls = _top_corners(regions) - set(np.unique(regions[-1]).tolist())
    count, patches = cv2.connectedComponents(moved.astype(np.uint8), connectivity=8)
    kernel = np.ones((5, 5), np.uint8)
    filled: dict[int, np.ndarray] = {}
    for k in range(1, count):
        patch = patches == k
        if patch.sum() < 0.01 * patch.size:  # a speck (a shadow's edge), not something that slides
            continue
        ring = cv2.dilate(patch.astype(np.uint8), kernel).astype(bool) & ~moved
        under = np.bincount(regions[ring], minlength=n)
        for r in np.nonzero(under >= 0.2 * ring.sum())[0]:
            if r in walls:
                continue
            if r not in filled:
                filled[r] = fill_holes(regions == r)
            if filled[r][patch].mean() >= inside:
                out[r] = True
    return out


def _top_corners(regions: np.ndarray) -> set[int]:
    """The regions holding the top edge's corners (a wall, the floor past the table): the most common
    region of the top row's first and last eighths (not a rim's end pixel)."""
    k = max(2, regions.shape[1] // 8)
    return {int(np.bincount(regions[0, :k]).argmax()), int(np.bincount(regions[0, -k:]).argmax())}


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with every hole filled: what the outside cannot reach from the image's border."""
    outside = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] != 2


def _sides(g: _RegionGraph, edge_contrast: float, surface_contrast: float, min_area: int) -> np.ndarray:
    """Per region: 1 workspace, 2 backdrop. Growths on the region graph, each across the weakest
    edge first (a watershed):
    1. the backdrop from the regions at the image's top edge (walls, sky) like those holding its
       corners (one unlike them stands in front: workspace), across weak edges only, not through
       the plate's blur of the arm;
    2. the workspace from strongly coloured things (objects, a coloured robot), the surface small
       ones rest on (the regions touching them inside the motion hull) and a large tinted region at
       the bottom edge (a table), across the edges a work surface has inside it (wood grain, a metal
       rim: `surface_contrast`);
    3. the backdrop again from the floor at the left and right edges where nothing moves (a region
       that meets the backdrop or is near its colour);
    4. what none reached goes to the workspace if one workspace surface encloses it (a grey knob on
       the wood), else to the side it looks more like (the floor seen between table legs, a
       pedestal): a workspace region it touches, or a backdrop region it or they touch."""
    n, regions, mean, neighbours = len(g.area), g.regions, g.mean, g.neighbours
    side = np.zeros(n, np.int8)
    side[g.coloured | g.pale | g.carriers] = 1
    # The backdrop at the top edge is what holds its corners
    corners = _top_corners(regions)
    # the surface an object rests on is what lies under its lower outline (a window standing at the
    # table's far edge also touches the floor behind it, above it in the image)
    under = np.zeros((n, n), np.int32)
    upper, lower = regions[:-1].ravel(), regions[1:].ravel()
    np.add.at(under, (upper[upper != lower], lower[upper != lower]), 1)
    # (a blob the arm passes over in most frames is the plate's blur of the gripper, not a thing at
    # rest: it took the white floor behind a table as its surface; window-open, corner4)
    lying = {}  # per coloured blob: _under_share of its rows below
    for i in np.nonzero(g.small & (g.busy <= 0.5))[0]:  # (a goal marker seen on the wall does not rest on it)
        below = [j for j in neighbours[i] if g.in_hull[j] >= 0.5 and j not in corners and g.busy[j] <= 0.5
                 and not g.coloured[j]]
        # It continues below the thing, too: what shows in a gap under its outline and stops a few pixels
        # lower is behind it (button-press-topdown, corner4 at 256 px: the white floor band behind the
        # table, seen between the button's red cap and its yellow top, was taken for the cap's surface)
        if g.blob[i] not in lying:
            lying[g.blob[i]] = _under_share(regions, g.blob[regions] == g.blob[i], n)
        below = [j for j in below if lying[g.blob[i]][j] >= 0.2]
        if below and under[i, below].max() > 0:
            side[below[int(np.argmax(under[i, below]))]] = 1
    # a large tinted region at the bottom edge is the work surface (a camera that looks down at the
    # workspace has the table there; a floor is grey or white): the wood where no object marks it
    # (door-open, corner4 at 64 px: the dark cabinet is no coloured object, and the wood went to the wall)
    bottom = np.zeros(n, bool)
    bottom[np.unique(regions[-1])] = True
    side[bottom & (side == 0) & (g.tint >= _TINTED) & (g.area >= 0.02 * regions.size)] = 1
    # and so is one where the arm works (mostly inside the hull of all motion) that it does not just blur
    # (door-open, corner2: the wood, with no coloured object on it, was reached from the arm only
    # through the small blends between them, and at 64 px not always)
    # or next to a coloured or pale thing (the robot, an object) where the arm's motion hull does not reach
    top = np.zeros(n, bool)
    # (a 256th of the top row at least, a pixel at 256 px and under: at 480x640 a line 1-2 px wide reaching it
    # is no thing at the top edge; in a top view a floor tile's grout line joined the table's light outer bevel
    # to it. At 64 px the dark side of a button's box reaches it by 2 px)
    top[np.bincount(regions[0], minlength=n) >= np.ceil(regions.shape[1] / 256)] = True
    touches_marked = np.array([any(g.coloured[j] or g.pale[j] for j in neighbours[r]) for r in range(n)])
    side[(side == 0) & (g.tint >= _TINTED) & (g.area >= 0.02 * regions.size) & (g.busy <= 0.3)
         & ((g.in_hull >= 0.5) | (touches_marked & ~top))] = 1
    # and one the arm passes over in up to half the frames, when its hue is not the arm's: the plate's blur
    # of the arm over the table, where it works (door-open, corner2 at 64 px: the wood the arm reaches
    # over to the door, moving in 38% of the frames, the rest of the wood outside the hull; the table
    # was lost). A blur of the arm over a grey wall has the arm's hue, only paler.
    arm = g.coloured & ~g.small
    if arm.any():
        arm_ab = np.average(g.mean[arm, 1:] - 128, axis=0, weights=g.area[arm])
        side[(side == 0) & (g.tint >= _TINTED) & (g.area >= 0.02 * regions.size) & (g.busy <= 0.5)
             & (g.in_work >= 0.5) & (_hue_gap(g, arm_ab) >= 15)] = 1
    # a region at the top edge unlike those holding its corners is something standing in front of the
    # backdrop: a dark cabinet on the table that reaches the top edge between two patches of floor
    # (door-open, top view)
    references = [c for c in corners if side[c] == 0 and g.area[c] >= min_area]
    for r in np.nonzero(top & (side == 0))[0] if references else ():
        if r not in corners and min(np.linalg.norm(mean[r] - mean[c]) for c in references) >= surface_contrast:
            side[r] = 1  # (left unseeded, the floor at the sides took it: it reaches a side by its rim)
    side[top & (side == 0)] = 2
    # a region the arm passes over in most frames is a blur in the plate, its colour no material's:
    # it takes the backdrop but does not pass it on (a 5 px blend of arm and wall bridged the wall
    # to a table's grey rim, then to its wood: door-open, corner4 at 64 px). Nor does one whose pixels
    # lie far from its mean (30 Lab on average): two colours in one region, its mean neither's (the
    # white floor band behind a table, 1-2 px at 64 px, joined to its grey rim: L 211 and 103, mean 130,
    # 5 from the grey wall; through it the wall took the table's near rim, then the robot's dark
    # column as the floor, and the cabinet with it: door-open 2121, corner4 at 64 px)
    spread = np.bincount(regions.ravel(), weights=np.linalg.norm(g.lab - mean[regions], axis=-1).ravel(),
                         minlength=n) / np.maximum(g.area, 1)

    def still(j: int, k: int) -> bool:
        return g.busy[j] <= 0.5 and spread[j] < 30

    grow(side, 2, mean, neighbours, edge_contrast, still)
    # the plate's blur of the arm passing over the wall (moving in most frames) passes the workspace
    # on, but not to a region of the colour of the wall it touches: the wall seen again between the
    # arm's links and the table, cut off from the rest of the wall by that blur
    def passes(j: int, k: int) -> bool:
        return g.busy[j] <= 0.5 or all(np.linalg.norm(mean[k] - mean[b]) >= edge_contrast
                                       for b in neighbours[j] if side[b] == 2)

    grow(side, 1, mean, neighbours, surface_contrast, passes)
    # The floor seen at the sides is one material: the largest such region and those like it (or like
    # the wall at the top), not a dark pedestal that also reaches the image's edge.
    sides = np.zeros(n, bool)
    sides[np.unique(regions[:, 0])] = sides[np.unique(regions[:, -1])] = True
    # (a grey or white floor: a tinted region there is the wood of a table no object marked; outside
    # where the robot works, not the hull of all motion: an h264 encoder's flicker along a dark
    # pedestal's edges at 64 px took the floor at the image's sides into it, and then the floor seen
    # between the table's legs, or all of it in a top view, was kept as workspace)
    outside = np.nonzero(sides & (side == 0) & (g.in_work < 0.5) & (g.area >= min_area) & (g.tint < _TINTED))[0]
    # the floor meets the backdrop or is near its colour (a top view's white floor at the bottom corners,
    # 30-40 Lab lighter than the shaded floor at its top edge); a dark region that does neither is the
    # robot's pedestal (door-open, corner4 at 64 px: as floor, it took the dark cabinet on the table)
    walls = np.nonzero(top & (side == 2))[0]
    outside = np.array([r for r in outside if any(side[j] == 2 for j in neighbours[r])
                        or any(np.linalg.norm(mean[r] - mean[q]) < 2 * surface_contrast for q in walls)], int)
    if len(outside):
        # the largest, but the floor meets the wall: a region that touches the backdrop is preferred to
        # one at most twice its size that does not (at 64 px, corner4's dark pedestal is a little
        # larger than the floor seen at the side; a table's thin far rim in a top view is not)
        meets = np.array([any(side[j] == 2 for j in neighbours[r]) for r in outside])
        floor = outside[np.argmax(g.area[outside])]
        if meets.any() and 2 * g.area[outside[meets]].max() >= g.area[floor]:
            floor = outside[meets][np.argmax(g.area[outside[meets]])]
        references = [floor, *walls]
        # the same floor where the arm passes over it too (a top-down view), by its colour alone
        for r in np.nonzero(sides & (side == 0) & (g.area >= min_area) & (g.tint < _TINTED))[0]:
            if min(np.linalg.norm(mean[r] - mean[q]) for q in references) < surface_contrast:
                side[r] = 2
    grow(side, 2, mean, neighbours, edge_contrast, still)
    # a speck whose colour is a blend of two workspace regions it touches is the edge between them
    # (a pale drawer's side over the wood at 64 px), not the floor it may be as close to
    for r in np.nonzero((side == 0) & (g.area < min_area))[0]:
        ws = [mean[j] for j in neighbours[r] if side[j] == 1]
        if any(_blend_of(mean[r], a, b) for i, a in enumerate(ws) for b in ws[i + 1:]):
            side[r] = 1
    # a tinted region of the hue of a tinted workspace region it touches is that thing's lit or shaded
    # face (a shelf's lit top, 30 Lab lighter than its front, as far from the grey wall; shelf-place,
    # corner2 at 64 px): what tells it from the backdrop is its chroma, not its lightness
    for r in np.nonzero((side == 0) & (g.tint >= 15) & (g.busy <= 0.3))[0]:
        if any(side[j] == 1 and g.tint[j] >= 15 and np.linalg.norm(mean[r, 1:] - mean[j, 1:]) < 10 for j in neighbours[r]):
            side[r] = 1
    # and a still one where the robot works, at least twice as tinted as the still tinted workspace it
    # touches (a larger surface among it), is a thing on that surface paled under `pale` by the codec:
    # drawer-close's green drawer at 64 px through h264 (chroma 24 on wood of 10; 33-40 on AV1 frames) went
    # to the grey floor of its lightness two steps away, and `background` repainted it. (A wood of chroma
    # 20-35 stays a table: `pale` stays 25.)
    for r in np.nonzero((side == 0) & (g.tint >= 15) & (g.busy <= 0.3) & (g.in_work >= 0.5))[0]:
        on = [j for j in neighbours[r] if side[j] == 1 and g.tint[j] >= _TINTED and g.busy[j] <= 0.3]
        if any(g.area[j] > g.area[r] for j in on) and all(2 * g.tint[j] <= g.tint[r] for j in on):
            side[r] = 1
    # a still island in one workspace surface is on it (faucet-open's grey knob on the wood in a top
    # view, 19 px at 64 px, as grey as the floor two steps away), not the backdrop, which is seen past
    # the workspace's edge or through a gap between two things (a pedestal and a table)
    border = np.zeros(n, bool)
    border[np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))] = True
    for r in np.nonzero((side == 0) & (g.busy <= 0.3) & ~border)[0]:
        around = neighbours[r]
        # (the surface is what around it is no small coloured thing: the knob's red handle touches it too)
        surface = [j for j in around if not g.small[j]] or around
        if all(side[j] == 1 for j in around) and max(
                np.linalg.norm(mean[a] - mean[b]) for a in surface for b in surface) < surface_contrast:
            side[r] = 1
    # and an island wholly in the workspace that lies on a tinted thing and is smaller than it is a
    # part of that thing: a drawer's white handle, on the pale drawer's face and the wood, as white as
    # the floor and moving with the drawer in 43% of the frames (drawer-close, corner4 at 480x640:
    # `background` painted it with the new backdrop). The floor seen through a gap lies between a
    # pedestal and a table, neither of them tinted.
    for r in np.nonzero((side == 0) & (g.busy <= 0.5) & ~border)[0]:
        if _part_of_a_thing(g, side, r):
            side[r] = 1
    # the plate's blur of the arm (busy backdrop) does not decide for a large region (a dark cabinet
    # standing beside the arm's path followed such a blur to the wall; door-open, corner4 at 64 px),
    # nor leads a large still region to the wall beyond, and neither does the arm, where a workspace
    # region it touches is near its colour (a table's grey rim, as grey as the wall and 30 Lab from the
    # wood, met the wall only across the red arm standing on it: faucet-open, corner4 at 64 px; the white
    # floor band behind a table, 100 from the wood, still goes to the floor it continues)
    # A speck's colour (a blend of its sides) does not decide for a large region either (door-open,
    # corner4 at 64 px: the white floor band behind the table, unlike all round it, followed a 2 px
    # pink blend of arm and floor into the workspace), nor a coloured thing's, 60 Lab or more from it
    # (button-press-topdown, corner4 at 64 px: that band, 77 from the yellow button and 85 from the
    # grey wall, joined the button)
    # The backdrop two steps away decides only across a thin region (a blend along an outline, 1-2 px wide
    # at any size) or a workspace thing (the floor seen between a table's legs), not through a wider region
    # that is not workspace: at 480x640 a table's bevel seen from above is a gradient 4-8 px wide cut into
    # bands 25-30 Lab apart, and each band took the floor beyond the next, lighter one (then the pedestal's
    # grey top took the bevel: top view, table and robot kept 94%)

    def vouches(r: int, w: int, c: int) -> bool:
        if c != w and side[c] == 2 and side[w] != 1 and not g.thin[w]:
            return False
        if g.area[r] < 0.01 * regions.size:
            return True
        if g.area[c] < min_area:
            return False
        if g.coloured[c] and np.linalg.norm(mean[r] - mean[c]) >= 2 * surface_contrast:
            return False
        if side[c] != 2:
            return True
        across = c != w and (g.busy[w] > 0.5 or g.coloured[w]) and g.busy[r] <= 0.3 and any(
            side[j] == 1 and np.linalg.norm(mean[r] - mean[j]) < 2 * surface_contrast for j in neighbours[r])
        return g.busy[c] <= 0.5 and not across

    settle(side, mean, neighbours, vouches)
    return side


def _part_of_a_thing(g: _RegionGraph, side: np.ndarray, r: int) -> bool:
    """Is region r wholly in the workspace, on a tinted thing (pale or small and coloured) larger than it?
    Undecided blends along its outline (thin regions) do not count."""
    around = [j for j in g.neighbours[r] if side[j] != 0 or not g.thin[j]]
    return all(side[j] == 1 for j in around) and any((g.pale[j] or g.small[j]) and g.area[j] > g.area[r]
                                                     for j in around)


def _material(g: _RegionGraph, pixels: np.ndarray) -> np.ndarray:
    """(2,) the median Lab a, b (less 128) of the plate's `pixels` (bool (H, W)): a surface's own hue."""
    return np.median(g.lab[pixels][:, 1:], axis=0) - 128


def _hue_gap(g: _RegionGraph, ab: np.ndarray) -> np.ndarray:
    """(n,) degrees between each region's mean hue and the hue of `ab` (Lab a, b less 128), in the a-b plane."""
    hue = np.degrees(np.arctan2(g.mean[:, 2] - 128, g.mean[:, 1] - 128))
    return np.abs((hue - np.degrees(np.arctan2(ab[1], ab[0])) + 180) % 360 - 180)


def _thin(regions: np.ndarray, n: int, share: float = 0.15) -> np.ndarray:
    """(n,) bool: regions at most about 2 px wide - under `share` of their pixels have all 8 neighbours in
    the region (a blend along an outline, a line); a surface is wider at any resolution."""
    labels, kernel = regions.astype(np.float32), np.ones((3, 3), np.uint8)  # (labels are exact in float32)
    same = cv2.erode(labels, kernel) == cv2.dilate(labels, kernel)  # the 3x3 around holds one region
    same[[0, -1]] = same[:, [0, -1]] = False
    area = np.bincount(regions.ravel(), minlength=n)
    return np.bincount(regions[same], minlength=n) < share * np.maximum(area, 1)


def _under_share(regions: np.ndarray, thing: np.ndarray, n: int) -> np.ndarray:
    """(n,) share of each region in the rows just below `thing` (bool (H, W)), across its columns: as many
    rows as half its height, at least 2."""
    ys, xs = np.nonzero(thing)
    top, low = int(ys.min()), int(ys.max())
    window = regions[low + 1:low + 1 + max(2, (low - top + 1) // 2), xs.min():xs.max() + 1]
    return np.bincount(window.ravel(), minlength=n) / max(window.size, 1)


def _blend_of(c: np.ndarray, a: np.ndarray, b: np.ndarray, tolerance: float = 6.0) -> bool:
    """Is colour c a mix of a and b (within `tolerance` of the line between them, well inside it)?"""
    ab = b - a
    t = float((c - a) @ ab / max(float(ab @ ab), 1e-6))
    return 0.15 <= t <= 0.85 and float(np.linalg.norm(a + t * ab - c)) < tolerance


def _edge_by_coverage(frame: np.ndarray, keep: np.ndarray, plate: np.ndarray, static: np.ndarray,
                      passes: int = 2) -> np.ndarray:
    """The keep-mask's moving edge over the backdrop, to the pixel: an edge pixel is a blend of the
    thing (the colour F of the nearest kept pixel inside the mask) and the backdrop behind it (the
    plate's B); it stays only if it is at least half the thing - the pixel a renderer would give
    it. The motion threshold alone keeps a blend of a fifth of the arm, which is then the old wall's
    halo; what is dropped here is unmixed over the new backdrop by editors.background."""
    keep = keep.copy()
    frame_f, plate_f = frame.astype(np.float32), plate.astype(np.float32)
    for _ in range(passes):
        inner = cv2.erode(keep.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).astype(bool)
        edge = keep & ~inner & ~static
        if not edge.any() or not inner.any():
            break
        _, nearest = cv2.distanceTransformWithLabels((~inner).astype(np.uint8), cv2.DIST_L2, 3,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        ys, xs = np.nonzero(inner)  # labels number the inner pixels in raster order, from 1
        idx = nearest[edge] - 1
        c, b, f = frame_f[edge], plate_f[edge], frame_f[ys[idx], xs[idx]]
        span = ((f - b) ** 2).sum(-1)
        alpha = ((c - b) * (f - b)).sum(-1) / np.maximum(span, 1)
        drop = (span > 400) & (alpha < 0.5)  # F and B apart enough to tell (20 levels)
        if not drop.any():
            break
        keep[np.nonzero(edge)[0][drop], np.nonzero(edge)[1][drop]] = False
    return keep


def _snap_to_plate(static: np.ndarray, lab: np.ndarray, reach: float = 2.0) -> np.ndarray:
    """The still mask's outline moved to the plate's edges, to the pixel: each pixel next to the
    outline goes to the side whose colour it is closer to - the nearest pixel well inside the mask
    or well outside it, each within `reach` px (a rim's light bevel is rim, not floor). Thin parts
    (a leg, a gap a pixel or two wide) have no such pixels near and are left as they are."""
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(static.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    outer = cv2.erode((~static).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    band = ~inner & ~outer
    if not inner.any() or not outer.any() or not band.any():
        return static

    def nearest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist, label = cv2.distanceTransformWithLabels((~mask).astype(np.uint8), cv2.DIST_L2, 3,
                                                      labelType=cv2.DIST_LABEL_PIXEL)
        ys, xs = np.nonzero(mask)  # labels number the mask's pixels in raster order, from 1
        idx = label[band] - 1
        return dist[band], lab[ys[idx], xs[idx]]

    d_in, f = nearest(inner)
    d_out, b = nearest(outer)
    c = lab[band]
    decided = (d_in <= reach) & (d_out <= reach)
    out = static.copy()
    out[band] = np.where(decided, np.linalg.norm(c - f, axis=-1) < np.linalg.norm(c - b, axis=-1), static[band])
    return out


def _tinted_edges(static: np.ndarray, g: _RegionGraph, side: np.ndarray, passes: int = 2) -> np.ndarray:
    """(H, W): backdrop pixels on the outline of a still tinted thing that share its hue (Lab a, b within
    10), where the backdrop region they were cut into is grey: the thing's lit edge (a shelf's top, a band
    1-2 px high, 30 Lab lighter than its front and as far from the grey wall, which plate_regions gave it
    to; shelf-place at 64 px). Grown `passes` pixels from the thing, each pixel passing on its own hue."""
    ab = g.lab[..., 1:] - 128
    tinted = np.hypot(ab[..., 0], ab[..., 1]) >= 15
    thing = (side == 1) & (g.tint >= 15) & (g.busy <= 0.3)
    grey = (side == 2) & (g.tint < _TINTED) & (g.busy <= 0.3)
    open_ = ~static & tinted & grey[g.regions]
    inside = static & thing[g.regions]
    hue = np.where(inside[..., None], g.mean[g.regions][..., 1:], np.nan)  # the thing's mean a, b per pixel
    out = np.zeros_like(static)
    for _ in range(passes):
        near = np.full(static.shape, np.inf, np.float32)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            d = np.linalg.norm(g.lab[..., 1:] - _shifted(hue, dy, dx), axis=-1)
            near = np.fmin(near, np.where(_shifted(inside, dy, dx), d, np.inf))
        add = open_ & ~out & (near < 10)
        if not add.any():
            break
        out |= add
        inside = inside | add
        hue = np.where(add[..., None], g.lab[..., 1:], hue)
    return out


def thin_lines(plate: np.ndarray, contrast: float = 40.0) -> np.ndarray:
    """(H, W): lines at most 2 px wide much brighter or darker than both their sides (a top-hat on
    the plate's lightness): the floor seen through a narrow gap, a dark seam."""
    lightness = cv2.cvtColor(plate, cv2.COLOR_RGB2LAB)[..., 0]
    kernel = np.ones((3, 3), np.uint8)
    bright = cv2.morphologyEx(lightness, cv2.MORPH_TOPHAT, kernel, borderType=cv2.BORDER_REPLICATE)
    dark = cv2.morphologyEx(lightness, cv2.MORPH_BLACKHAT, kernel, borderType=cv2.BORDER_REPLICATE)
    return (bright > contrast) | (dark > contrast)


def _backdrop_slivers(g: _RegionGraph, side: np.ndarray, tolerance: float) -> np.ndarray:
    """(H, W): sliver pixels of the colour of a backdrop region and unlike the workspace regions
    within 2 px: the floor seen through a gap one or two pixels wide (between a pedestal and a
    table's side), which the region graph is too coarse to hold apart from what it lies between
    (a bright rim edge next to the rim's top is like the rim, and stays)."""
    behind = g.mean[side == 2]
    if not g.slivers.any() or not len(behind):
        return np.zeros_like(g.slivers)
    # (a thin line that is part of a thing is no gap: a drawer's white handle at 256 px, 1-2 px wide)
    parts = np.zeros(len(side), bool)
    for r in np.unique(g.regions[g.slivers]):
        parts[r] = side[r] == 1 and _part_of_a_thing(g, side, r)
    ys, xs = np.nonzero(g.slivers & ~parts[g.regions])
    lab = g.lab[ys, xs]
    to_backdrop = np.linalg.norm(lab[:, None] - behind[None], axis=-1).min(axis=1)
    to_workspace = np.full(len(ys), np.inf, np.float32)
    h, w = g.slivers.shape
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            y, x = (ys + dy).clip(0, h - 1), (xs + dx).clip(0, w - 1)
            r = g.regions[y, x]
            ok = (side[r] == 1) & ~g.slivers[y, x]
            d = np.linalg.norm(lab - g.mean[r], axis=-1)
            to_workspace = np.where(ok, np.minimum(to_workspace, d), to_workspace)
    out = np.zeros_like(g.slivers)
    out[ys, xs] = (to_backdrop < tolerance) & (to_backdrop < to_workspace)
    # a gap is a line (single pixels are noise): at least 6 px, and no blot filling most of a box 3 px
    # or more each way (a knob's dark handle lines at 128 px make a 3x4 blot of floor-grey blends;
    # faucet-open, top view)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8), connectivity=8)
    w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    line = (area >= 6) & ~((np.minimum(w, h) >= 3) & (area >= 0.75 * w * h))
    line[0] = False
    return line[labels]


# a region under this share of the frame can be the blended outline between two things (2 px wide along
# 32 px of an edge at 128 px)
_OUTLINE_SHARE = 0.004
# the least share of the frame a table seen by a workspace camera covers (MetaWorld's: 19-50%)
_TABLE_SHARE = 0.05
# the least share of the work surface inside the hull of all motion (the arm works over it)
_IN_HULL_SHARE = 0.05


def _table(g: _RegionGraph, side: np.ndarray, table_contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """The work surface proper (for edits of the table), per region, and the parts of it the arm cuts off
    (`_across_the_arm`): grown from each workspace region
    an object lies in, across edges under `table_contrast`; the largest such growth is the table
    (another is the rest of a bigger object, e.g. a drawer's faces round its handle). Where no coloured
    object marks it (pusht's pale block and goal), from a region things slide on (a carrier: its canvas);
    not always, as a carrier grown across the table's rim takes in the rim and the legs. Where neither
    does (a button's housing, a handle: MetaWorld's press tasks), from the large still tinted regions
    `_sides` took for the work surface.
    A small region whose colour is a blend of two of its neighbours that differ by `table_contrast` or
    more is the anti-aliased outline between them, not a material: the growth may take it but does not
    cross it from one side to the other, as the edge there is the one between the two sides. (In 25 Lab
    steps through such a blend, 22 px at 128 px, the table's grey rim (L 89) reached the robot's dark
    pedestal (L 52): `surface` on pick-place seed 100, after `background` had changed a few pixels of
    the plate, repainted 70% of the robot.)"""
    # (a strongly coloured region is the robot or an object, unless its group is a coloured table)
    blank = np.where((side == 1) & (~g.coloured | _coloured_table(g)), 0, 3).astype(np.int8)
    mean, neighbours = g.mean, [sorted(set(n)) for n in g.neighbours]
    seedable = (blank == 0) & ~g.pale
    small = g.area < _OUTLINE_SHARE * g.regions.size

    def step(j: int, k: int) -> bool:  # does region j, on the table, pass it on to its neighbour k?
        if blank[k] != 0 or np.linalg.norm(mean[j] - mean[k]) >= table_contrast:
            return False
        return not small[j] or not any(np.linalg.norm(mean[a] - mean[k]) >= table_contrast
                                       and _blend_of(mean[j], mean[a], mean[k]) for a in neighbours[j] if a != k)

    moved = bool(g.in_hull.any())
    # Each set of seeds in turn, until one grows a table (5% of the frame or more; else the largest
    # growth of any): what small coloured things lie in, what things slide on, and the large still
    # tinted regions `_sides` took for the work surface (the wood at the bottom edge or under the arm's
    # work). At 64 px a button's housing is over 1% of the frame, no small object: the survey found no
    # table in 31 of 108 camera-episodes of 17 MetaWorld sets (press, door, shelf, window), and `surface`
    # dropped them. No seed is a region the arm passes over in most frames (the plate's blur of it over
    # the wall, 33 px next to a red speck of the arm, was a button-press-topdown demo's "table"), nor a
    # pale one (drawer-close's pale-green drawer, round its handle, was the "table" and was repainted
    # in 6 of 156 camera-episodes), and a growth under 5% of the frame does not stop the search (a speck
    # on the robot's base seeded its dark ring, 0.6% of the frame, at 128 px in topview). The tinted
    # regions only where the survey found a backdrop the workspace stands out from: in a scene that is
    # all workspace (a colour gradient with a square moving over it) a greyish band of it is no table.
    best = np.zeros(len(g.area), bool)
    tinted = seedable & (g.tint >= _TINTED) & (g.area >= 0.02 * g.regions.size) & (g.busy <= 0.3) & (side == 2).any()
    for seeds in ({j for i in np.nonzero(g.small)[0] for j in neighbours[i] if seedable[j] and g.busy[j] <= 0.5},
                  set(np.nonzero(g.carriers & seedable)[0].tolist()), set(np.nonzero(tinted)[0].tolist())):
        surface = _grown(g, seeds, neighbours, step, moved)
        if g.area[surface].sum() >= _TABLE_SHARE * g.regions.size:
            break
        best = surface if g.area[surface].sum() > g.area[best].sum() else best
    else:
        surface = best
    return surface, _across_the_arm(g, surface, seedable, neighbours, step, moved)


def _coloured_table(g: _RegionGraph, share: float = 0.25, busy: float = 0.15) -> np.ndarray:
    """(n,) bool: the regions of a strongly coloured group that covers `share` of the frame or more and
    hardly moves (`busy`: the share of frames its pixels move, over the group): a saturated table or mat
    (a brown one of HSV saturation 0.53), not a coloured robot. MetaWorld's red arm is 3-16% of the frame
    and moves in 15-96% of the frames over its group; its still red boxes are 1-3% of the frame. The corpus's
    brown tables are half the frame and move in 0-13% (its arm passes over them): taken for the robot, no
    growth entered them, and `surface` re-textured the wall the arm moves over instead."""
    n = len(g.area)
    area = np.bincount(g.blob, weights=g.area * g.coloured, minlength=n)
    moves = np.bincount(g.blob, weights=g.busy * g.area * g.coloured, minlength=n) / np.maximum(area, 1)
    return g.coloured & (area[g.blob] >= share * g.regions.size) & (moves[g.blob] <= busy)


def _across_the_arm(g: _RegionGraph, table: np.ndarray, seedable: np.ndarray, neighbours: list[list[int]],
                    step: Callable[[int, int], bool], moved: bool) -> np.ndarray:
    """(n,) bool: the parts of a tinted table that the arm's usual pose in the plate cuts off the part
    `_table` grew (table: (n,)). Seen from above, the arm lying across the table from its base to a drawer
    at the far edge splits the wood in two, and the growth took one side: `surface` re-textured 38-51% of
    the table in 14 of 32 top views at 480x640 (issue 12's sets), the rest stayed the old wood. A part is
    grown (`step`, over the arm's work) from a region next to the arm where the arm touches the table;
    it is the table's when it is at least `_OUTLINE_SHARE` of the frame and of its material: its median
    Lab a, b within 4 of the table's, its lightness within the table's own spread of its regions."""
    found, tried = np.zeros(len(g.area), bool), np.zeros(len(g.area), bool)
    touching = [a for a in np.nonzero(g.coloured & ~g.small & ~table)[0] if any(table[j] for j in neighbours[a])]
    seeds = {k for a in touching for k in neighbours[a] if seedable[k] and not table[k]}
    if not seeds:
        return found
    material = _material(g, table[g.regions])
    if np.hypot(*material) < _TINTED:  # (a grey table's hue tells nothing: the grey floor would do)
        return found
    light = g.mean[table, 0]
    low, high = np.percentile(light, 5), np.percentile(light, 95)
    for seed in sorted(seeds):
        if tried[seed]:  # (in a part grown already)
            continue
        part = _grown(g, {seed}, neighbours, step, moved) & ~table
        tried |= part
        if g.area[part].sum() < _OUTLINE_SHARE * g.regions.size:
            continue
        mean_l = float((g.mean[part, 0] * g.area[part]).sum() / g.area[part].sum())
        if np.linalg.norm(_material(g, part[g.regions]) - material) < 4 and low <= mean_l <= high:
            found |= part
    return found


def _things_on(g: _RegionGraph, table: np.ndarray) -> np.ndarray:
    """(n,) bool: the things standing on a tinted table (table: (n,), the regions `_table` grew), of
    another material than its wood: the growth reaches them across a low contrast (a grey box of the
    wood's lightness is 16-24 Lab from it at 64 px; a window's dark red-brown frame, 14-15 at 480x640), and
    a small coloured thing on one seeds it there. On issue 12's 47 sets `surface` repainted 97-100% of a
    handle's box seen from above, a door's cabinet, a window's frame. Where most of the table is tinted,
    a region of it (not a thin blend along an outline) is such a thing
    - if it is tinted with another hue (over 30 degrees from the wood's, in the Lab a-b plane: in those
      sets 0.06% of the table's pixels in the tinted regions grown, and all of the objects' there), or
    - if it is untinted, unless it lies on the table's outline (80% of it within 6% of the frame's height,
      5 px or more, of the outside of the table or of the frame: its steel rim, its legs) or is a band (its
      area at least 3.5 times the square of its width: a rim's bevel seen inside a corner; the front rim
      and apron of bench_policy.py's corner2 view at 64 px, 3.9, which the growth reaches past).
    A thing's region shared with the rim (a box at the table's far edge, at 64 px) stays the table's."""
    grey = table & (g.tint < _TINTED)
    if g.area[grey].sum() >= 0.5 * g.area[table].sum():  # (a grey table, or none)
        return np.zeros(len(g.area), bool)
    tinted = table & ~grey
    material = _material(g, tinted[g.regions])
    things = tinted & ~g.thin & (_hue_gap(g, material) > 30)
    filled = np.pad(fill_holes(table[g.regions]), 1).astype(np.uint8)  # (the frame's edge is outside)
    near = cv2.distanceTransform(filled, cv2.DIST_L2, 3)[1:-1, 1:-1] <= max(5.0, 0.06 * g.regions.shape[0])
    on_outline = np.bincount(g.regions[near], minlength=len(g.area)) >= 0.8 * g.area
    for r in np.nonzero(grey & ~g.thin & ~on_outline)[0]:
        ys, xs = np.nonzero(g.regions == r)
        inside = np.pad(g.regions[ys.min():ys.max() + 1, xs.min():xs.max() + 1] == r, 1).astype(np.uint8)
        across = 2 * float(cv2.distanceTransform(inside, cv2.DIST_L2, 3).max())
        things[r] = g.area[r] < 3.5 * across ** 2
    return things


def _grown(g: _RegionGraph, seeds: set[int], neighbours: list[list[int]], step: Callable[[int, int], bool],
           moved: bool) -> np.ndarray:
    """Per region: the largest growth (`step`) from one of `seeds` that lies over the arm's work."""
    surface, best = np.zeros(len(g.area), bool), 0.0
    for seed in seeds:
        grown, front = {seed}, [seed]  # (one side grows: the order of the steps does not change what it reaches)
        while front:
            j = front.pop()
            for k in neighbours[j]:
                if k not in grown and step(j, k):
                    grown.add(k)
                    front.append(k)
        members = list(grown)
        size = float(g.area[members].sum())
        # The arm works over the table: a growth wholly outside the hull of all motion is not it. At 64 px
        # in MetaWorld's corner2 a static red speck at the arm's base seeded the dark pedestal (none of it
        # in the hull; the table 15-31%), and `surface` repainted the robot: 10 of 40 button-press-topdown
        # demos, 5 of 40 handle-press, whose button or handle seeds nothing.
        if moved and (g.in_hull[members] * g.area[members]).sum() < _IN_HULL_SHARE * size:
            continue
        if size > best:
            surface, best = np.isin(np.arange(len(g.area)), members), size
    return surface


def _off_the_table(surface: np.ndarray, robot: np.ndarray, g: _RegionGraph, split: bool = False) -> np.ndarray:
    """The work surface (H, W) less what sticks out of the table's body next to the robot: its grey
    pedestal. A table top seen by a fixed camera is one convex shape (less what stands on it); the
    surface grown over regions can leave it where a grey part of the robot meets the table's grey rim
    without an edge (MetaWorld's topview at 64 px: the pedestal below the front rim, in one region with
    it, 14-25% of the robot repainted by `surface`). The body is the surface opened by a square a
    quarter of its size across (narrow bits go: a rim, the pedestal), its hull what the table can be;
    a part of the surface outside the hull that touches the robot (robot: bool (H, W), its coloured
    regions) is dropped, unless it is of the body's own tinted material (the table's corner the arm lies
    across from above: at 480x640 the arm cut it off the opened body, and its wood stayed under the new
    texture): its still regions that lie mostly outside the hull and have the body's tinted hue (Lab a, b
    within 3 of its median; no outline blend) stay. Other parts outside it (a leg, a side face) stay.
    Nor does what lies within the hull of the body with the gaps between planks closed (a square a
    sixteenth of its size across): the dark gaps, 2-10 px wide at 480x640, are not surface, and they (with
    the arm's band, on a table the arm's pose splits) cut the opened body into blocks whose hull left the
    table's corners out: door-open 9700's top view; from corner2 at 256 px and 480x640 a strip of wood
    behind the arm, with the rim and legs beyond it (one part, touching the arm's base at the rim), in 28
    of issue 12's 44 such views. The closing square is 5 px or more there; where it would be 3 (a table
    under about 90 px across: 64-128 px frames) no gap is resolved, and the closed hull kept 3-5 px of
    handle-press's box and of the robot beside it at 64 px: there only on a table the arm splits
    (`split`: `_across_the_arm` found its other side)."""
    if not surface.any() or not robot.any():
        return surface
    k = int(2 * round(np.sqrt(surface.sum()) / 8) + 1)
    body = cv2.morphologyEx(surface.astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8)).astype(bool)
    if not body.any():
        return surface
    beyond = surface & (motion_hull(body) == 0)
    out = beyond
    c = int(2 * round(k / 16) + 1)
    if split or c >= 5:
        closed = cv2.morphologyEx(surface.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((c, c), np.uint8))
        whole = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((k, k), np.uint8)).astype(bool)
        out = beyond & (motion_hull(whole | body) == 0)
    n, parts = cv2.connectedComponents(out.astype(np.uint8), connectivity=8)
    touching = np.unique(parts[out & _dilate(robot, 1)])
    drop = np.isin(parts, touching[touching > 0])
    # (the median: at 64 px the body's mean is paled by its grey rim, and a region of the wood that reached
    # past the hull into the grey pedestal came within 3 of it)
    material = _material(g, body)
    if np.hypot(*material) >= _TINTED:  # (a grey rim and pedestal are one material: it tells nothing)
        # (and mostly outside the hull: at 64 px the wood's regions next to a button box or a shelf, mostly
        # inside it, reached past it over the thing's own outline, which `surface` then painted)
        outside = np.bincount(g.regions[beyond], minlength=len(g.area)) >= 0.5 * g.area
        wood = ((np.linalg.norm(g.mean[:, 1:] - 128 - material, axis=1) < 3) & (g.tint >= _TINTED) & outside
                & (g.area >= _OUTLINE_SHARE * g.regions.size) & (g.busy <= 0.3))  # (no blend with the arm)
        drop &= ~wood[g.regions]
    return surface & ~drop


def _grain(g: _RegionGraph, surface: np.ndarray, hue: float = 10.0) -> np.ndarray:
    """(n,) bool: the table's grain - small coloured regions (objects to the graph) that are thin dark lines
    (2 px or more below 256 px), and dark streaks left out of the surface, not coloured enough to be objects
    (under `_OUTLINE_SHARE` of the frame): darker than every region round them but blends, still, of the
    tinted surface's own hue (Lab a-b angle within `hue` degrees of its median), lying in it (every region
    round them, and past the blends along their outline, mostly surface).
    MetaWorld's wood has dark streaks 1-2 px wide, strongly coloured, so `surface` kept them as things on the
    table: brown streaks of the old wood through the new texture (drawer-close, corner4 at 480x640). A thing
    on the table has its own hue, moves, or stands out of the surface: a wooden shelf's lighter edges, of the
    wood's hue, on it in a top view, were painted when "most" of the regions round them had to be surface,
    and at 64 px 1-px dark islands of it, inside a region it shares with the wood. At 480x640 the 1-px specks
    and the dark streaks left 421 px a frame of the old wood in specks through the new texture (door-open,
    corner4, seed 9800); now 73, the objects', robot's and backdrop's pixels repainted the same in issue 12's
    312 rows."""
    n = len(g.area)
    out = np.zeros(n, bool)
    if not surface.any():
        return out
    material = _material(g, surface)
    if np.hypot(*material) < _TINTED:  # a grey table: its hue tells nothing
        return out
    share = np.bincount(g.regions[surface], minlength=n) / np.maximum(g.area, 1)
    # (1-px lines from 256 px on: at 64 px a pixel is a detail of a thing, a shelf's dark island in a region
    # it shares with the wood) and the darkest streaks, not coloured enough to be objects: the table's
    # growth stopped at their edge
    least = 1 if g.regions.shape[0] >= 256 else 2
    dark = ~g.coloured & (share < 0.5) & (g.tint >= _TINTED) & (g.area < _OUTLINE_SHARE * g.regions.size)
    line = ((g.small & g.thin) | dark) & (g.busy <= 0.05) & (g.area >= least) & (_hue_gap(g, material) < hue)
    for r in np.nonzero(line)[0]:
        around = [j for j in g.neighbours[r] if not g.thin[j]]  # (blends along its outline aside)
        # and what lies past those blends (a line at a thing's foot meets the thing through them)
        beyond = {k for j in g.neighbours[r] if g.thin[j] and not line[j] for k in g.neighbours[j]
                  if k != r and not g.thin[k]}
        out[r] = (bool(around) and all(share[j] > 0.5 and g.mean[j, 0] > g.mean[r, 0] for j in around)
                  and all(share[k] > 0.5 for k in beyond))
    return out


@dataclass
class _SeenAgain:
    """Where the plate shows the robot (the arm's usual pose), moving pixels of the colour of a
    backdrop region next to the robot (the wall behind the arm, seen again) - unless they also look
    like a workspace region next to it (a grey rim as grey as the wall). Built once per episode
    (of), then called on any run of its frames."""

    group: np.ndarray | None  # int (H, W): each pixel's arm group (components of the arm's regions); None: no arm
    behind_colours: np.ndarray  # (groups, B, 3) Lab means of the backdrop regions next to each arm group (inf pads)
    surface_colours: np.ndarray  # (groups, B, 3) the same for the uncoloured workspace regions
    robot_px: np.ndarray  # bool (H, W): the arm, not the objects
    blur: np.ndarray  # bool (H, W): the arm's uncoloured regions (the plate's blur of it over the wall)

    @classmethod
    def of(cls, g: _RegionGraph, side: np.ndarray, busy_share: float = 0.3) -> _SeenAgain:
        n = len(g.area)
        backdrop = side == 2
        # the arm's usual pose: the coloured robot, and the still-workspace regions where something moves
        # in most frames (the plate there is a blur of the arm over the wall: what is seen when it
        # changes is what lies behind)
        arm = (g.coloured & ~g.small) | ((side == 1) & ~g.coloured & ~g.pale & ~g.carriers & (g.busy > busy_share))
        if not arm.any() or not backdrop.any():
            none = np.zeros((0, 1, 3), np.float32)
            return cls(None, none, none, np.zeros(g.regions.shape, bool), np.zeros(g.regions.shape, bool))
        group = components(arm, g.neighbours)

        def colours_around(wanted: np.ndarray) -> np.ndarray:
            near = [sorted({b for r in np.nonzero(group == k)[0] for b in g.neighbours[r] if wanted[b] and not arm[b]})
                    if arm[k] else [] for k in range(n)]
            out = np.full((n, max(1, max(len(c) for c in near)), 3), np.inf, np.float32)
            for k, cs in enumerate(near):
                out[k, :len(cs)] = g.mean[cs]
            return out

        # (not a tinted backdrop region the arm passes over in most frames: a blend of the arm and the grey
        # wall, pink, which took a shelf's edge for the wall seen again; shelf-place, corner4 at 64 px)
        wall = backdrop & ~((g.busy > 0.5) & (g.tint >= 15))
        return cls(group[g.regions], colours_around(wall), colours_around((side == 1) & ~g.coloured),
                   arm[g.regions], (arm & ~g.coloured)[g.regions])

    def __call__(self, frames: np.ndarray, moving: np.ndarray, tolerance: float) -> np.ndarray:
        """bool (t, H, W) for frames (t, H, W, 3) and their moving masks."""
        seen = np.zeros(moving.shape, bool)
        if self.group is None:
            return seen
        for t, frame in enumerate(frames):
            sel = moving[t] & self.robot_px
            if (sel & self.blur).any():  # not near a coloured thing passing there (a carried puck's rim)
                hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
                sel &= ~(self.blur & _dilate((hsv[..., 1] > 115) & (hsv[..., 2] > 40), 2))
            if sel.any():
                lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)[sel][:, None]
                group = self.group[sel]
                like_backdrop = (np.linalg.norm(lab - self.behind_colours[group], axis=-1) < tolerance).any(axis=1)
                like_surface = (np.linalg.norm(lab - self.surface_colours[group], axis=-1) < tolerance).any(axis=1)
                seen[t][sel] = like_backdrop & ~like_surface
        return seen


def continues_from(frame: np.ndarray, seeds: np.ndarray, candidates: np.ndarray, tolerance: float,
                   step: float = 6.0) -> np.ndarray:
    """Candidate pixels reached from the seeds through steps of under `step` (Lab) between
    neighbours, staying within `tolerance` of the seed colour they came from."""
    out = np.zeros_like(candidates)
    ys, xs = np.nonzero(candidates)
    if not len(ys) or not seeds.any():
        return out
    # the growth stays within the candidates and the pixels next to them: their bounding box, 1 px wider
    h, w = candidates.shape
    box = (slice(max(ys.min() - 1, 0), min(ys.max() + 2, h)), slice(max(xs.min() - 1, 0), min(xs.max() + 2, w)))
    frame, seeds, candidates = frame[box], seeds[box], candidates[box]
    reached = seeds.copy()
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
    origin = np.where(seeds[..., None], lab, 0)
    shifts = ((0, 1), (0, -1), (1, 0), (-1, 0))
    # which candidates a step from each side may enter: fixed per frame, so computed once (the growth
    # below then looks only at the few pixels on its front; it was 70-85% of workspace_masks' time)
    smooth = [candidates & (np.linalg.norm(lab - _shifted(lab, dy, dx), axis=-1) < step) for dy, dx in shifts]
    for _ in range(64):
        grown = False
        for (dy, dx), entered in zip(shifts, smooth):
            ys, xs = np.nonzero(entered & ~reached & _shifted(reached, dy, dx))  # next to a reached pixel
            if not len(ys):
                continue
            came = origin[ys - dy, xs - dx]
            ok = np.linalg.norm(lab[ys, xs] - came, axis=-1) < tolerance
            if ok.any():
                reached[ys[ok], xs[ok]] = True
                origin[ys[ok], xs[ok]] = came[ok]
                grown = True
        if not grown:
            break
    out[box] = reached & candidates
    return out


def moving_masks(frames: np.ndarray, plate: np.ndarray, diff_threshold: float, min_area: int) -> np.ndarray:
    diff = plate_difference(frames, plate).astype(np.float32)
    out = np.empty(frames.shape[:3], bool)
    for t, d in enumerate(diff):
        mask = (cv2.GaussianBlur(d, (3, 3), 0) > diff_threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        out[t] = drop_specks(mask, min_area)
    return out


def worked(moving: np.ndarray, share: float = 0.25, reach: int = 3) -> np.ndarray:
    """bool (H, W): where the robot moves in any of the frames (moving: bool (t, H, W)): in each frame
    the large patches of motion (at least `share` of the largest: an arm, two arms) and the patches
    within `reach` px of them (the arm cut into pieces by its shading, what it holds or pushes). A
    patch apart from them is no work: an h264 encoder at 64 px flickers along a dark pedestal's and a
    table's edges a few frames at a time (on the AV1 sets measured it is every patch of motion)."""
    out = np.zeros(moving.shape[1:], bool)
    for frame in moving:
        count, patches, stats, _ = cv2.connectedComponentsWithStats(frame.astype(np.uint8), connectivity=8)
        if count < 2:
            continue
        area = stats[:, cv2.CC_STAT_AREA]
        large = area >= share * area[1:].max()
        large[0] = False
        if large[1:].all():  # (most frames: no small patch to judge, no dilation needed)
            out |= frame.astype(bool)
            continue
        near = np.zeros(count, bool)
        near[patches[_dilate(large[patches], reach)]] = True
        near[0] = False
        out |= near[patches]
    return out


def motion_hull(moved: np.ndarray) -> np.ndarray:
    """The convex hull of every pixel that moves in the episode (moved: bool (H, W)), (H, W) float32 0/1."""
    hull = np.zeros(moved.shape, np.uint8)
    points = cv2.findNonZero(moved.astype(np.uint8))
    if points is not None:
        cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull.astype(np.float32)


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`a` moved by (dy, dx): out[y, x] = a[y - dy, x - dx], zero where that falls outside."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    dst = (slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0)))
    src = (slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0)))
    out[dst] = a[src]
    return out


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
