"""The background plate cut into regions of one colour, and the region graph the workspace is
grown on (editors/workspace.py): adjacency, growth across weak edges first, and the rest."""

from __future__ import annotations

import heapq
from typing import Callable

import cv2
import numpy as np


def plate_regions(plate: np.ndarray, colours: int = 10, like: float = 20.0, far: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Cut the plate into connected regions of one colour: k-means in Lab (seeded, so reruns agree),
    then connected components; strips a pixel or two wide (the blend of two colours along an edge)
    join the neighbour they look most like, one they look like (`like`, Lab) before any other, and
    one much lighter than them (`far`, Lab lightness) only when no nearer one can reach them.
    Returns (int32 labels (H, W), float32 Lab image)."""
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
    h, w = labels.shape
    while (labels < 0).any():  # each pass hands the outermost strip pixels to a neighbour
        valid = labels >= 0
        m = int(labels.max()) + 1
        cnt = np.bincount(labels[valid], minlength=m)
        mean = np.stack([np.bincount(labels[valid], weights=lab[..., c][valid], minlength=m) for c in range(3)], 1)
        mean /= np.maximum(cnt, 1)[:, None]
        ys, xs = np.nonzero(~valid)  # (only the strip pixels: the passes were most of the cut's time)
        colour = lab[ys, xs]
        best, choice = np.full(len(ys), np.inf, np.float32), np.full(len(ys), -1)
        padded = np.pad(labels, 1, constant_values=-1)
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nb = padded[ys + 1 + dy, xs + 1 + dx]
            dist = np.where(nb >= 0, np.linalg.norm(colour - mean[np.maximum(nb, 0)], axis=-1), np.inf)
            choice = np.where(dist < best, nb, choice)
            best = np.minimum(best, dist)
        # a strip pixel waits for a neighbour it looks like (within `like`) while one may still reach
        # it: a grey rim's 1 px outer edge touches the white floor first, and at 64 px it was floor
        reached = np.isfinite(best)
        if not reached.any():
            break
        take = reached & (best < like)
        # else any, but one much darker (`far`, in L) than where it would go waits, the nearest in colour
        # first, while a nearer may reach it (a 64 px window frame's dark bars, 2 px wide between the
        # white floor and the wood, went to the floor on the first pass, 145 Lab away; the wood is 45.
        # Lighter ones do not wait: the floor seen through a gap is lighter than what frames it)
        if not take.any():
            dark = colour[:, 0] < mean[np.maximum(choice, 0), 0] - far  # much darker than where it would go
            take = reached & (~dark | (best < best[reached & dark].min(initial=np.inf) + like))
        labels[ys[take], xs[take]] = choice[take]
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(plate.shape[:2]).astype(np.int32), lab


def adjacency(regions: np.ndarray, n: int) -> list[list[int]]:
    a = np.concatenate([regions[:, :-1].ravel(), regions[:-1].ravel()])
    b = np.concatenate([regions[:, 1:].ravel(), regions[1:].ravel()])
    pairs = np.unique(np.stack([a[a != b], b[a != b]], 1), axis=0)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        neighbours[i].append(int(j))
        neighbours[j].append(int(i))
    return neighbours


def grow(side: np.ndarray, label: int, mean: np.ndarray, neighbours: list[list[int]], tolerance: float,
         passes=None) -> None:
    """Give `label` to the unlabelled regions reachable from those that have it across edges (mean
    colour distances) under `tolerance`, the weakest edge first; in place. `passes(j, k)`, if given,
    says whether a region j that took the label passes it on to its neighbour k."""
    heap = [(float(np.linalg.norm(mean[i] - mean[j])), int(j)) for i in np.nonzero(side == label)[0]
            for j in neighbours[i] if side[j] == 0]
    heapq.heapify(heap)
    while heap:
        cost, j = heapq.heappop(heap)
        if side[j] or cost >= tolerance:
            continue
        side[j] = label
        for k in neighbours[j]:
            if side[k] == 0 and (passes is None or passes(j, k)):
                heapq.heappush(heap, (float(np.linalg.norm(mean[j] - mean[k])), int(k)))


def settle(side: np.ndarray, mean: np.ndarray, neighbours: list[list[int]],
           vouches: Callable[[int, int, int], bool] | None = None) -> None:
    """Give every unlabelled region the side of the closest-coloured labelled region among its
    workspace neighbours and the backdrop regions within two steps; nearest first, in place.
    `vouches(r, w, c)`, if given, says whether labelled region c, reached from r through its
    neighbour w (c == w: a neighbour), may decide region r's side by its colour."""
    while (side == 0).any():
        best = (np.inf, -1, 0)
        for r in np.nonzero(side == 0)[0]:
            for w in neighbours[r]:
                for cand in [w, *neighbours[w]]:
                    label = side[cand]
                    if label == 0 or (label == 1 and cand != w) or (vouches is not None and not vouches(r, w, cand)):
                        continue
                    d = float(np.linalg.norm(mean[r] - mean[cand]))
                    if d < best[0]:
                        best = (d, r, label)
        if best[1] < 0:
            side[side == 0] = 1  # nothing labelled in reach: keep it
            break
        side[best[1]] = best[2]


def components(members: np.ndarray, neighbours: list[list[int]]) -> np.ndarray:
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
