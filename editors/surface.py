"""Structure-preserving table re-texturing (weight-free): the same robot doing the same task on
another table.

The work surface (editors/workspace.workspace_masks: the table the objects lie on) gets a new
texture - an image from a folder or a seeded procedural one, the same for the whole episode - and
keeps its geometry and shading: the texture is modulated by the table's own smooth luminance
(light falloff, the shaded side faces) and, per frame, by how much darker the frame is than the
plate there (the arm's shadow moves over the new texture as it did over the old). Robot, objects and
backdrop are kept pixel for pixel but for their outline over the old table, which is unmixed (their
share kept, the old table's replaced); state, actions and task are untouched. A table no coloured
object marks (pusht's canvas) is found as the region things slide on.
"""

from __future__ import annotations


import dataclasses

import cv2
import numpy as np

from augment.episode import Episode
from augment.stage import Stage, derive_seed
from editors.background import BackgroundStage, named, procedural_texture, write_review
from editors.compose import dilate
from editors.workspace import Workspace, continues_from, fill_from_around, fill_holes, workspace_masks
from editors.specs import SurfaceSpec


class SurfaceStage(Stage):
    spec: SurfaceSpec

    def setup(self) -> None:
        self.source = BackgroundStage(self.spec.textures_spec)
        self.source.setup()

    def texture(self, height: int, width: int, seed: int) -> tuple[np.ndarray, str]:
        if not self.source.images:
            return table_texture(height, width, seed, self.spec.contrast), f"procedural:{seed}"
        return self.source.background(height, width, seed)

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            cameras = self.spec.cameras or list(episode.frames)
            # salted: chained after `background` (same seed, same uid at one variant) the table would get
            # the backdrop's own colours and vanish into it
            seeds = [derive_seed(self.spec.seed, "surface", episode.uid, v) for v in range(self.spec.variants)]
            found, edited, chosen = {}, {}, {}
            for key in cameras:
                video = episode.frames[key]
                found[key] = workspace_masks(video, self.spec.diff_threshold)
                # the table an earlier edit found on the source's own frames and kept pixel for pixel
                # (Episode.surfaces: `background`'s survey); found again on its output, a new backdrop
                # with a tinted band at the bottom edge passed for the table. What moves, the plate and
                # the objects are those of the video edited here. Where that survey found no table (none
                # of 18 press demos at 64 px in corner2 now; 8 before workspace._table took unmarked
                # wood), it is looked for here, or the variant would be dropped.
                given = episode.surfaces.get(key)
                if given is not None and given.shape == video.shape[1:3] and given.any():
                    found[key] = dataclasses.replace(found[key], surface=given)
                textures = [self.texture(video.shape[1], video.shape[2], derive_seed(seed, key)) for seed in seeds]
                chosen[key] = [name for _, name in textures]
                edited[key] = retexture(video, found[key], [t for t, _ in textures], self.spec.shading_blur)
            areas = {k: round(float(found[k].surface.mean()), 4) for k in cameras}
            for variant, seed in enumerate(seeds):
                uid = episode.uid if self.spec.variants == 1 else f"{episode.uid}-surface{variant}"
                new = episode.replace(frames={**episode.frames, **{k: edited[k][variant] for k in cameras}}, uid=uid)
                names = {k: chosen[k][variant] for k in cameras}
                self.record(new, variant=variant, seed=seed, texture=names, surface_fraction=areas)
                if not any(areas.values()):  # not an edit: the copy would be the source, labelled as new
                    out.append(self.drop(new, f"no work surface found in {', '.join(cameras)}"))
                    continue
                self.record_edit(new, "a new table surface" + named(names.values()))
                write_review(self, episode, new, {k: np.broadcast_to(found[k].surface, episode.frames[k].shape[:3])
                                                  for k in cameras})
                out.append(new)
        return out


def table_texture(height: int, width: int, seed: int, contrast: float = 0.35) -> np.ndarray:
    """A seeded procedural texture for a table: a table is not a poster, so the procedural colours
    are pulled towards their mean (`contrast`: SurfaceSpec's)."""
    image = procedural_texture(height, width, seed)
    mean = image.reshape(-1, 3).mean(axis=0)
    return (mean + (image - mean) * contrast * 2).clip(0, 255).astype(np.uint8)


def surface_variants(frames: np.ndarray, found: Workspace, seeds: list[int], blur: int = 4) -> list[np.ndarray]:
    """One copy of a camera's video per seed, its work surface re-textured (the `surface` edit's
    recipe with a procedural texture): the edited copies of a camera that sees no backdrop."""
    height, width = frames.shape[1:3]
    return retexture(frames, found, [table_texture(height, width, seed) for seed in seeds], blur)


def retexture(frames: np.ndarray, found: Workspace, textures: list[np.ndarray], blur: int) -> list[np.ndarray]:
    """One copy of `frames` per texture: new pixels on the work surface where nothing moves in front of
    it; every other pixel is kept. What to paint, the shadow and the seam are worked out once per frame
    for every texture.

    new = texture * shading * shadow, where shading is the plate's luminance over the surface,
    smoothed across small steps only (bilateral: the old grain goes, the faces' shading stays) and
    divided by its mean, and shadow is the frame's luminance over the table's (the plate's on the
    surface; 1 within codec noise). The painted pixels next to a kept one (an object's or the arm's
    anti-aliased rim over the old surface) are unmixed: their share of the kept colour stays, the old
    surface's share becomes the new. The objects' anti-aliased rims lie in the surface's regions: the
    surface is taken less the objects grown by 1 px, and those rims are unmixed.
    """
    surface, moving, plate = found.surface & ~dilate(found.objects, 1), found.moving, found.plate
    lum = cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # edge-preserving smoothing: the wood grain's small steps go, the rim's and legs' shading stays
    smooth = np.where(surface, lum, float(lum[surface].mean()) if surface.any() else 128.0).astype(np.float32)
    for _ in range(2):
        smooth = cv2.bilateralFilter(smooth, 2 * blur + 1, 24, blur)
    shading = smooth / max(float(smooth[surface].mean()), 1.0) if surface.any() else np.ones_like(smooth)
    bases = [texture.astype(np.float32) * shading[..., None] for texture in textures]
    plate_lab = cv2.cvtColor(plate, cv2.COLOR_RGB2LAB).astype(np.float32)
    # the old surface's own colour next to every pixel (its blended outline left out): what a rim
    # pixel is unmixed against, and what the table looks like where a resting thing hid it
    core = cv2.erode(surface.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    clean = fill_from_around(plate, ~core) if core.any() else plate
    clean_lab = cv2.cvtColor(clean, cv2.COLOR_RGB2LAB).astype(np.float32)
    within = fill_holes(surface)  # the table with the places of the things that rest on it
    # the luminance the frame's is measured against: the plate on the surface, the table's around elsewhere
    ref_lum = np.where(surface, lum, cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY).astype(np.float32))
    outs = [frames.copy() for _ in textures]
    for t, frame in enumerate(frames):
        lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
        # a moving pixel on the surface that is the surface darker, same hue, is the arm's shadow
        shadow = (np.abs(lab[..., 1:] - plate_lab[..., 1:]).max(axis=-1) < 6) & (lab[..., 0] < plate_lab[..., 0])
        shadow &= ~dilate(moving[t] & ~shadow, 1)  # not the blended rim of the arm or a carried object
        # nor a sliver under 3 px wide: the edge of a grey thing over a pale table moving by a pixel
        shadow = cv2.morphologyEx(shadow.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        # the table where an object stood in the plate (even most of the time) and has left: moving
        # pixels that continue the still surface next to them without an edge. The growth starts 2 px
        # away from what moves: a blended rim pixel next to a grey block would lead it into the block.
        mover = moving[t] & ~shadow
        near = dilate(mover, 2) & ~mover
        revealed = continues_from(frame, surface & ~moving[t] & ~near, mover | (near & surface), tolerance=15.0) & mover
        # where a resting thing was, cut off from the still table by its own outline: the table's colour there
        revealed |= mover & within & (np.linalg.norm(lab - clean_lab, axis=-1) < 12)
        paint = (surface & (~moving[t] | shadow)) | revealed
        ratio = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / np.maximum(ref_lum, 1)
        ratio = np.where(np.abs(ratio - 1) < 0.04, 1.0, ratio.clip(0.2, 1.2))  # codec noise: no shimmer
        seam = unmixed_seam(frame, ~paint, clean)
        for out, base in zip(outs, bases):
            out[t][paint] = (base[paint] * ratio[paint][:, None]).round().clip(0, 255).astype(np.uint8)
            if seam is not None:
                ring, a, f = seam
                out[t][ring] = (a * f + (1 - a) * base[ring]).round().clip(0, 255).astype(np.uint8)
    return outs


def unmixed_seam(frame: np.ndarray, kept: np.ndarray, clean: np.ndarray):
    """The outline between kept and painted pixels, 1 px each side, unmixed: a pixel there is a blend
    of the most unlike kept colour f in its 3x3 neighbourhood (an object's or the arm's own colour) and
    the old surface's colour `clean`; its share a of f stays and the rest becomes the new surface.
    (background.unmixing takes the nearest kept pixel, which on a 3 px wide bar is itself a blend.)
    Returns (ring (H, W) bool, a (n, 1), f (n, 3)), or None when nothing is painted or kept."""
    if kept.all() or not kept.any():
        return None
    h, w = kept.shape
    ring = kept ^ dilate(kept, 1) | (kept & dilate(~kept, 1))
    ys, xs = np.nonzero(ring)
    b = clean[ys, xs].astype(np.float32)
    c = frame[ys, xs].astype(np.float32)
    f, span = np.zeros_like(c), np.full(len(ys), -1.0, np.float32)
    for dy in (-1, 0, 1):  # only the ring's pixels: the seam is a few % of the frame
        for dx in (-1, 0, 1):
            y, x = ys + dy, xs + dx
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            y, x = y.clip(0, h - 1), x.clip(0, w - 1)
            g = frame[y, x].astype(np.float32)
            d = np.where(inside & kept[y, x], ((g - b) ** 2).sum(-1), -1.0)
            better = d > span
            f[better], span[better] = g[better], d[better]
    a = (((c - b) * (f - b)).sum(-1) / np.maximum(span, 1)).clip(0, 1)
    inner = kept[ring]
    # a kept pixel stays as it is unless it is clearly a blend (under 70% of f) or it and its kept
    # neighbours all look like the old surface (where a resting object's outline was, once it left)
    a = np.where(span <= 100, 0.0, np.where(inner & (a >= 0.7), 1.0, a))[:, None]
    return ring, a, f
