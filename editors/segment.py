"""Weight-free segmentation for a static camera: the fallback segmenter.

Per episode, the per-pixel temporal median is the background plate.
- foreground_masks: a pixel is foreground in a frame when it differs from the plate (something moved
  there) or, optionally, when it is strongly coloured in the plate. The model-backed segmenters'
  robot mask and the object edits use it.
- workspace_masks: what a background edit keeps - the robot (pedestal included), every task object
  (also before it moves) and the table - told apart from the backdrop (walls, floor) on the plate.
  benchmarks/bench_edits.py measures it against the simulator's own segmentation.
Both need no downloaded weights and run on the CPU (workspace_masks: ~2.5 s for 70 frames at 128 px
on a busy 2-core machine).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import cv2
import numpy as np


def background_plate(frames: np.ndarray, max_samples: int = 64) -> np.ndarray:
    """Temporal median of up to `max_samples` evenly spaced frames, uint8 (H, W, 3)."""
    idx = np.linspace(0, len(frames) - 1, min(len(frames), max_samples)).round().astype(int)
    return np.median(frames[idx], axis=0).astype(np.uint8)


def foreground_masks(
    frames: np.ndarray,
    diff_threshold: float = 18.0,
    saturation_threshold: float | None = 0.45,
    dilate: int = 2,
    min_area: int = 12,
) -> np.ndarray:
    """Boolean (T, H, W) masks, True where the foreground (robot, objects) is."""
    plate = background_plate(frames)
    diff = np.abs(frames.astype(np.int16) - plate.astype(np.int16)).max(axis=-1)
    masks = np.stack([cv2.GaussianBlur(d.astype(np.float32), (3, 3), 0) for d in diff]) > diff_threshold
    if saturation_threshold is not None:
        hsv = cv2.cvtColor(plate, cv2.COLOR_RGB2HSV)
        coloured = (hsv[..., 1] / 255.0 > saturation_threshold) & (hsv[..., 2] > 40)
        masks |= coloured[None]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1)) if dilate else None
    out = np.empty_like(masks)
    for t, mask in enumerate(masks.astype(np.uint8)):
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        if kernel is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
            mask = cv2.dilate(mask, kernel)
        out[t] = _drop_specks(mask, min_area)
    return out


def _drop_specks(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


# ---------------------------------------------------------------------------------------------
# The workspace: what a background edit keeps (robot, task objects, the surface they rest on)
#
# Motion alone finds only what moves. The table, the robot's pedestal and objects that have not
# moved yet are as still as the floor and the walls, so they are told apart on the plate instead:
# it is cut into regions of one colour, and two sides grow over the region graph, each across the
# weakest edge first. The backdrop grows from the top edge of the image, and later from the left and
# right edges where nothing moves (walls, floor, sky seen past the workspace), across weak edges only.
# The workspace grows from strongly coloured things (objects, a coloured robot) and the surface the
# small ones lie in, across the stronger edges a table has inside it (grain, a metal rim). What
# neither reaches (a pedestal, the floor seen between table legs) goes to the side it looks like.
# The bottom edge is no seed: a camera that looks down at a workspace has the table or the robot there.
# Per frame, the keep-mask is the still workspace plus what moves, less the backdrop seen again where
# the arm usually stands. Assumptions, measured on MetaWorld (README): a fixed camera, a backdrop at
# the top of the image, objects more colourful than the table.


@dataclass
class Workspace:
    keep: np.ndarray  # bool (T, H, W): robot, objects and work surface in each frame
    moving: np.ndarray  # bool (T, H, W): what differs from the plate in each frame
    static: np.ndarray  # bool (H, W): the still part of the workspace (table, pedestal, resting objects)
    surface: np.ndarray  # bool (H, W): the work surface: grown from under the objects, less what is coloured
    objects: np.ndarray  # bool (H, W): small coloured things in the plate (objects before or after they move)
    plate: np.ndarray  # uint8 (H, W, 3): the per-pixel temporal median


def workspace_masks(frames: np.ndarray, diff_threshold: float = 18.0, edge_contrast: float = 15.0,
                    surface_contrast: float = 30.0, table_contrast: float = 25.0,
                    saturation: float | None = 0.45, min_area: int = 12) -> Workspace:
    plate = background_plate(frames)
    moving = moving_masks(frames, plate, diff_threshold, min_area)
    regions, lab = plate_regions(plate)
    n = int(regions.max()) + 1
    area = np.bincount(regions.ravel(), minlength=n)

    def region_mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(regions.ravel(), weights=values.ravel(), minlength=n) / np.maximum(area, 1)

    mean = np.stack([region_mean(lab[..., c]) for c in range(3)], 1)
    in_hull = region_mean(motion_hull(moving))
    hsv = cv2.cvtColor(plate, cv2.COLOR_RGB2HSV).astype(np.float32)
    coloured = np.zeros(n, bool) if saturation is None else (
        (region_mean(hsv[..., 1]) / 255 > saturation) & (region_mean(hsv[..., 2]) > 40))
    neighbours = _adjacency(regions, n)

    # Three growths on the region graph, each across the weakest edge first (a watershed):
    # 1. the backdrop from the regions at the image's top edge (walls, sky), across weak edges only
    #    (`edge_contrast`);
    # 2. the workspace from strongly coloured things (objects, a coloured robot) and the surface small
    #    ones rest on (the regions touching them inside the motion hull), across the edges a work
    #    surface has inside it (wood grain, a metal rim: `surface_contrast`);
    # 3. the backdrop again from what else touches the left or right edge where nothing moves (floor).
    # Objects are coloured blobs that stay small when joined with the coloured regions they touch
    # (a red arm is cut into many small regions by its shading; together they are large).
    blob = _components(coloured, neighbours)
    small = coloured & (np.bincount(blob, weights=area, minlength=n)[blob] < 0.01 * regions.size)
    side = np.zeros(n, np.int8)  # 1 workspace, 2 backdrop, 0 not yet
    side[coloured] = 1
    for i in np.nonzero(small)[0]:
        side[[j for j in neighbours[i] if in_hull[j] >= 0.5]] = 1
    top = np.zeros(n, bool)
    top[np.unique(regions[0])] = True
    side[top & (side == 0)] = 2
    _grow(side, 2, mean, neighbours, edge_contrast)
    _grow(side, 1, mean, neighbours, surface_contrast)
    sides = np.zeros(n, bool)
    sides[np.unique(regions[:, 0])] = sides[np.unique(regions[:, -1])] = True
    # The floor seen at the sides is one material: the largest such region and those like it (or like
    # the wall at the top), not a dark pedestal that also reaches the image's edge.
    candidates = np.nonzero(sides & (side == 0) & (in_hull < 0.5) & (area >= min_area))[0]
    if len(candidates):
        references = [candidates[np.argmax(area[candidates])], *np.nonzero(top & (side == 2))[0]]
        for r in candidates:
            if min(np.linalg.norm(mean[r] - mean[q]) for q in references) < surface_contrast:
                side[r] = 2
    _grow(side, 2, mean, neighbours, edge_contrast)
    # 4. what no growth reached (the floor seen between table legs, a pedestal) goes to the side
    #    it looks more like: a workspace region it touches, or a backdrop region it or they touch.
    _settle(side, mean, neighbours)
    # The work surface proper (for edits of the table): grown from each workspace region an object
    # lies in, across edges under `table_contrast`; the largest such growth is the table (another
    # is the rest of a bigger object, e.g. a drawer's faces round its handle).
    blank = np.where((side == 1) & ~coloured, 0, 3).astype(np.int8)
    surface, best = np.zeros(n, bool), 0.0
    for seed in {j for i in np.nonzero(small)[0] for j in neighbours[i] if blank[j] == 0}:
        grown = blank.copy()
        grown[seed] = 1
        _grow(grown, 1, mean, neighbours, table_contrast)
        size = float(area[grown == 1].sum())
        if size > best:
            surface, best = grown == 1, size
    backdrop = side == 2
    # a small object's anti-aliased rim is dull enough to join the backdrop's region: keep it too
    static = ~backdrop[regions] | _dilate(small[regions], 1)
    keep = moving | static[None]
    # Where the plate shows the robot (it stood there most of the episode), the frames it has left
    # show what is behind it; shadows darken the floor. Such pixels differ from the plate but
    # continue the backdrop next to them without an edge: they are grown from it, frame by frame.
    # Seeds: backdrop pixels that look as in the plate (not a fringe of something the mask missed).
    still = np.abs(frames.astype(np.int16) - plate.astype(np.int16)).max(axis=-1) < diff_threshold / 2
    # Also seeds: where the plate shows a coloured thing (the arm's usual pose), moving pixels of the
    # colour of a backdrop region next to that thing's blob (the wall behind the arm, seen again) -
    # unless they also look like a workspace region next to it (a grey rim as grey as the wall).
    def colours_around(wanted: np.ndarray) -> np.ndarray:
        """(n, B, 3) Lab means of the `wanted` regions next to each region's coloured blob (inf pads)."""
        near = [sorted({b for r in np.nonzero(blob == k)[0] for b in neighbours[r] if wanted[b]}) if coloured[k] else []
                for k in range(n)]
        out = np.full((n, max(1, max(len(c) for c in near)), 3), np.inf, np.float32)
        for k, cs in enumerate(near):
            out[k, :len(cs)] = mean[cs]
        return out

    seen_again = np.zeros(moving.shape, bool)
    if coloured.any() and backdrop.any():
        behind_colours = colours_around(backdrop)[blob[regions]]  # (H, W, B, 3)
        surface_colours = colours_around((side == 1) & ~coloured)[blob[regions]]
        robot_px = (coloured & ~small)[regions]  # the arm, not the objects
        for t, frame in enumerate(frames):
            sel = moving[t] & robot_px
            if sel.any():
                lab_t = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)[sel][:, None]
                like_backdrop = (np.linalg.norm(lab_t - behind_colours[sel], axis=-1) < edge_contrast).any(axis=1)
                like_surface = (np.linalg.norm(lab_t - surface_colours[sel], axis=-1) < edge_contrast).any(axis=1)
                seen_again[t][sel] = like_backdrop & ~like_surface
    behind = np.stack([continues_from(f, (~static & ~m & s) | a, m, edge_contrast)
                       for f, m, s, a in zip(frames, moving, still, seen_again)])
    keep &= ~behind
    return Workspace(keep=keep, moving=moving & ~behind, static=static, surface=surface[regions],
                     objects=small[regions], plate=plate)


def continues_from(frame: np.ndarray, seeds: np.ndarray, candidates: np.ndarray, tolerance: float,
                   step: float = 6.0) -> np.ndarray:
    """Candidate pixels reached from the seeds through steps of under `step` (Lab) between
    neighbours, staying within `tolerance` of the seed colour they came from."""
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
    reached = seeds.copy()
    origin = np.where(seeds[..., None], lab, 0)
    for _ in range(64):
        grown = False
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            todo = candidates & ~reached & _shifted(reached, dy, dx)  # next to a reached pixel
            if not todo.any():
                continue
            nb_lab, nb_origin = _shifted(lab, dy, dx), _shifted(origin, dy, dx)
            ok = todo & (np.linalg.norm(lab - nb_lab, axis=-1) < step)
            ok &= np.linalg.norm(lab - nb_origin, axis=-1) < tolerance
            if ok.any():
                reached |= ok
                origin[ok] = nb_origin[ok]
                grown = True
        if not grown:
            break
    return reached & candidates


def moving_masks(frames: np.ndarray, plate: np.ndarray, diff_threshold: float, min_area: int) -> np.ndarray:
    diff = np.abs(frames.astype(np.int16) - plate.astype(np.int16)).max(axis=-1).astype(np.float32)
    out = np.empty(frames.shape[:3], bool)
    for t, d in enumerate(diff):
        mask = (cv2.GaussianBlur(d, (3, 3), 0) > diff_threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        out[t] = _drop_specks(mask, min_area)
    return out


def motion_hull(moving: np.ndarray) -> np.ndarray:
    """The convex hull of every pixel that moves in the episode, (H, W) float32 0/1."""
    hull = np.zeros(moving.shape[1:], np.uint8)
    points = cv2.findNonZero(moving.any(axis=0).astype(np.uint8))
    if points is not None:
        cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull.astype(np.float32)


def plate_regions(plate: np.ndarray, colours: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Cut the plate into connected regions of one colour: k-means in Lab (seeded, so reruns agree),
    then connected components; strips a pixel or two wide (the blend of two colours along an edge)
    join the neighbour they look most like. Returns (int32 labels (H, W), float32 Lab image)."""
    lab = cv2.cvtColor(cv2.bilateralFilter(plate, 5, 20, 5), cv2.COLOR_RGB2LAB).astype(np.float32)
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, cluster, _ = cv2.kmeans(lab.reshape(-1, 3), colours, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    cluster = cluster.reshape(plate.shape[:2])
    regions, count = np.zeros(cluster.shape, np.int32), 0
    for c in range(colours):
        n, cc = cv2.connectedComponents((cluster == c).astype(np.uint8), connectivity=4)
        regions[cluster == c] = cc[cluster == c] + count
        count += n
    area = np.bincount(regions.ravel(), minlength=count)
    pad = np.pad(regions, 1, mode="edge")
    interior = ((pad[1:-1, :-2] == regions) & (pad[1:-1, 2:] == regions)
                & (pad[:-2, 1:-1] == regions) & (pad[2:, 1:-1] == regions))
    core = np.bincount(regions.ravel(), weights=interior.ravel(), minlength=count)
    hsv = cv2.cvtColor(plate, cv2.COLOR_RGB2HSV)
    vivid = np.bincount(regions.ravel(), weights=((hsv[..., 1] > 115) & (hsv[..., 2] > 40)).ravel(), minlength=count)
    strip = ((core < 0.2 * area) | (area < 8)) & (vivid < 0.5 * area)  # a small vivid blob is an object: kept
    labels = np.where(strip[regions], -1, regions)
    for _ in range(32):  # each pass hands the outermost strip pixels to a neighbour
        todo = labels < 0
        if not todo.any():
            break
        valid = ~todo
        m = int(labels.max()) + 1
        cnt = np.bincount(labels[valid], minlength=m)
        mean = np.stack([np.bincount(labels[valid], weights=lab[..., c][valid], minlength=m) for c in range(3)], 1)
        mean /= np.maximum(cnt, 1)[:, None]
        best, choice = np.full(labels.shape, np.inf, np.float32), labels.copy()
        padded = np.pad(labels, 1, constant_values=-1)
        h, w = labels.shape
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            nb = padded[dy:dy + h, dx:dx + w]
            dist = np.where(todo & (nb >= 0), np.linalg.norm(lab - mean[np.maximum(nb, 0)], axis=-1), np.inf)
            choice = np.where(dist < best, nb, choice)
            best = np.minimum(best, dist)
        labels = np.where(todo & np.isfinite(best), choice, labels)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(plate.shape[:2]).astype(np.int32), lab


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


def _grow(side: np.ndarray, label: int, mean: np.ndarray, neighbours: list[list[int]], tolerance: float) -> None:
    """Give `label` to the unlabelled regions reachable from those that have it across edges (mean
    colour distances) under `tolerance`, the weakest edge first; in place."""
    heap = [(float(np.linalg.norm(mean[i] - mean[j])), int(j)) for i in np.nonzero(side == label)[0]
            for j in neighbours[i] if side[j] == 0]
    heapq.heapify(heap)
    while heap:
        cost, j = heapq.heappop(heap)
        if side[j] or cost >= tolerance:
            continue
        side[j] = label
        for k in neighbours[j]:
            if side[k] == 0:
                heapq.heappush(heap, (float(np.linalg.norm(mean[j] - mean[k])), int(k)))


def _settle(side: np.ndarray, mean: np.ndarray, neighbours: list[list[int]]) -> None:
    """Give every unlabelled region the side of the closest-coloured labelled region among its
    workspace neighbours and the backdrop regions within two steps; nearest first, in place."""
    while (side == 0).any():
        best = (np.inf, -1, 0)
        for r in np.nonzero(side == 0)[0]:
            for w in neighbours[r]:
                for cand in [w, *neighbours[w]]:
                    label = side[cand]
                    if label == 0 or (label == 1 and cand != w):
                        continue
                    d = float(np.linalg.norm(mean[r] - mean[cand]))
                    if d < best[0]:
                        best = (d, r, label)
        if best[1] < 0:
            side[side == 0] = 1  # nothing labelled in reach: keep it
            break
        side[best[1]] = best[2]


def _components(members: np.ndarray, neighbours: list[list[int]]) -> np.ndarray:
    """Label of each member region's connected group of members (non-members: their own index)."""
    label = np.arange(len(members))
    for i in np.nonzero(members)[0]:
        if label[i] != i:
            continue
        stack = [i]
        while stack:
            k = stack.pop()
            for j in neighbours[k]:
                if members[j] and label[j] == j and j != i:
                    label[j] = i
                    stack.append(j)
    return label


def _adjacency(regions: np.ndarray, n: int) -> list[list[int]]:
    a = np.concatenate([regions[:, :-1].ravel(), regions[:-1].ravel()])
    b = np.concatenate([regions[:, 1:].ravel(), regions[1:].ravel()])
    pairs = np.unique(np.stack([a[a != b], b[a != b]], 1), axis=0)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        neighbours[i].append(int(j))
        neighbours[j].append(int(i))
    return neighbours
