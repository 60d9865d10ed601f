"""Lighting and colour shifts (weight-free): the same robot doing the same task under another light.

What a deployment changes without moving anything: the lamps' colour temperature and tint, how bright
the room is, and from which side the light falls. Each is applied where light adds up, in linear
RGB (sRGB decoded), as a physical change would be:

    linear' = linear * exposure * white_balance * falloff(x, y)

exposure is 2**stops; white_balance the per-channel gains that take a 6500 K white to a black body
of the drawn temperature (plus a green-magenta tint), scaled to keep luminance; falloff a smooth
gradient across the view (a light from one side, 1 at the image centre). One draw per episode and
variant, the same in every frame (no flicker: two equal source frames stay equal); the exposure and
colour are shared by every camera (one room), the falloff direction is drawn per camera (it is seen
from another side). Every pixel changes, robot and objects included: a new light falls on them too,
so this edit is not pixel-exact on the workspace the way `background` and `surface` are. State,
actions and task are untouched.
"""

from __future__ import annotations


import numpy as np

from augment.episode import Episode
from augment.stage import Stage, derive_seed
from editors.background import write_review
from editors.specs import LightingSpec

REFERENCE_K = 6500.0  # sRGB's white point, about D65
LUMA = np.array([0.2126, 0.7152, 0.0722])  # linear-RGB luminance weights (Rec. 709)


def blackbody_rgb(kelvin: float) -> np.ndarray:
    """Linear RGB of a black body at `kelvin`, green = 1 (Tanner Helland's fit of the Planckian
    locus in sRGB, good to a few percent from 1000 to 40000 K); one line of colour science instead
    of a colour library."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    srgb = np.clip([r, g, b], 1.0, 255.0) / 255.0
    return to_linear(srgb) / to_linear(srgb)[1]


def to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def white_balance(kelvin: float, tint: float) -> np.ndarray:
    """Per-channel gains that light a 6500 K-white scene with a `kelvin` light, luminance kept."""
    gains = blackbody_rgb(kelvin) / blackbody_rgb(REFERENCE_K)
    gains = gains * np.array([1.0, 1.0 + tint, 1.0])
    return gains / float(gains @ LUMA)


def falloff_map(height: int, width: int, strength: float, angle: float) -> np.ndarray:
    """(H, W) gain, 1 at the centre, 1 +- strength at the edges along `angle`: a light from one side."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xx / max(width - 1, 1) - 0.5) * np.cos(angle) + (yy / max(height - 1, 1) - 0.5) * np.sin(angle)
    return (1.0 + 2.0 * strength * u).astype(np.float32)


def relight(frames: np.ndarray, gains: np.ndarray, falloff: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) under the new light, through a 256-entry decode table (fast, and equal
    source pixels give equal output pixels)."""
    linear = to_linear(np.arange(256) / 255.0).astype(np.float32)[frames]
    light = (falloff[..., None] * gains.astype(np.float32))[None]
    return np.round(to_srgb(linear * light) * 255).astype(np.uint8)


class LightingStage(Stage):
    spec: LightingSpec

    def draw(self, seed: int) -> dict:
        """The episode's light: exposure, temperature and tint shared by every camera."""
        rng = np.random.default_rng(seed)
        return {"exposure_stops": round(float(rng.uniform(*self.spec.exposure)), 3),
                "temperature_k": round(float(rng.uniform(*self.spec.temperature))),
                "tint": round(float(rng.uniform(-self.spec.tint, self.spec.tint)), 4)}

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            cameras = self.spec.cameras or list(episode.frames)
            for variant in range(self.spec.variants):
                seed = derive_seed(self.spec.seed, "lighting", episode.uid, variant)  # salted: chained edits draw apart
                light = self.draw(seed)
                gains = white_balance(light["temperature_k"], light["tint"]) * 2.0 ** light["exposure_stops"]
                frames, sides = dict(episode.frames), {}
                for key in cameras:
                    video = episode.frames[key]
                    rng = np.random.default_rng(derive_seed(seed, key))
                    strength, angle = float(rng.uniform(0, self.spec.falloff)), float(rng.uniform(0, 2 * np.pi))
                    sides[key] = {"falloff": round(strength, 3), "angle_deg": round(float(np.degrees(angle)), 1)}
                    frames[key] = relight(video, gains, falloff_map(video.shape[1], video.shape[2], strength, angle))
                uid = episode.uid if self.spec.variants == 1 else f"{episode.uid}-light{variant}"
                new = episode.replace(frames=frames, uid=uid)
                self.record(new, variant=variant, seed=seed, light=light, cameras=sides)
                self.record_edit(new, describe(light))
                write_review(self, episode, new, {k: np.ones(episode.frames[k].shape[:3], bool) for k in cameras})
                out.append(new)
        return out


def describe(light: dict) -> str:
    """Words a prompt can use: 'warm, dimmer lighting'."""
    k, stops = light["temperature_k"], light["exposure_stops"]
    colour = "warm" if k < 5000 else "cool" if k > 7500 else "neutral"
    level = "dimmer" if stops < -0.2 else "brighter" if stops > 0.2 else "similar"
    return f"{colour}, {level} lighting"
