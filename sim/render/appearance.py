"""Per-episode appearance: what varies so a network learns geometry, not colours.

An :class:`Appearance` is drawn once per episode from a seed
(:meth:`Appearance.sample`): time of day (brightness, tint, sun direction, sky),
fog, rain, sensor noise, road texture, and the colours and body shapes of objects.
:meth:`Appearance.neutral` is the fixed look the tests use (plain boxes, no
texture, fog, rain or noise, unit gain). Appearance changes only the RGB image:
labels, depth and instance ids never depend on it, and vehicle shapes always stay
inside the object's box (the ground-truth bounding box).

Colours are BGR uint8 throughout, like CARLA's raw camera data minus alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim.labels import Label
from sim.render.ground import GroundRaster

__all__ = ["Appearance", "Part", "PostEffects", "textured_ground_colors"]

BGR = tuple[int, int, int]

#: One box of an object's body, in the object's local frame (x forward, y right,
#: z up, m): ``(centre offset from the object's box centre, half sizes)``.
Part = tuple[tuple[float, float, float], tuple[float, float, float]]

_PALETTES: dict[int, tuple[BGR, ...]] = {
    Label.CAR: ((235, 235, 235), (28, 28, 30), (190, 190, 195), (110, 110, 115),
                (40, 40, 190), (120, 50, 30), (190, 110, 40), (60, 110, 50),
                (40, 200, 230), (30, 120, 230), (40, 70, 110), (150, 190, 210)),
    Label.TRUCK: ((220, 220, 220), (60, 60, 160), (150, 90, 40), (40, 150, 200),
                  (90, 90, 90)),
    Label.BUS: ((40, 170, 230), (210, 210, 210), (50, 50, 170), (160, 110, 40)),
    Label.MOTORCYCLE: ((30, 30, 30), (40, 40, 180), (180, 180, 180)),
    Label.BICYCLE: ((30, 30, 30), (40, 150, 40), (180, 80, 40)),
    Label.PEDESTRIANS: ((40, 40, 45), (130, 80, 40), (50, 50, 170), (210, 210, 210),
                        (60, 110, 60), (80, 120, 150), (150, 100, 120)),
    Label.BUILDINGS: ((150, 150, 150), (60, 80, 150), (140, 180, 200), (90, 100, 110),
                      (205, 210, 210), (140, 120, 100), (80, 110, 130)),
    Label.VEGETATION: ((40, 100, 50), (50, 120, 70), (30, 80, 40), (60, 130, 90),
                       (35, 90, 70)),
    Label.POLES: ((100, 100, 105), (70, 70, 72), (130, 135, 135)),
    Label.TRAFFIC_LIGHT: ((40, 40, 40), (30, 90, 110), (60, 60, 55)),
}
_GREY: tuple[BGR, ...] = ((128, 128, 128),)

#: BGR of a lit lamp; unlit lamps are :data:`UNLIT_LAMP`.
LAMP_COLORS: dict[str, BGR] = {"red": (40, 40, 255), "yellow": (30, 210, 255),
                               "green": (120, 255, 60)}
UNLIT_LAMP: BGR = (35, 35, 35)

_MASK64 = (1 << 64) - 1


def _mix(*keys: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): per-object variation that is a
    pure function of (seed, label, key), cheap enough to call per object and frame."""
    h = 0x9E3779B97F4A7C15
    for k in keys:
        h = (h ^ (k & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 29
    return h


def _units(h: int, n: int) -> list[float]:
    """``n`` numbers in [0, 1) drawn from a hash."""
    out = []
    for i in range(n):
        out.append((_mix(h, i) >> 11) / float(1 << 53))
    return out


@dataclass(frozen=True)
class Appearance:
    """The look of one episode. Gains multiply BGR channels (brightness x tint x
    rain darkening); ``sun_direction`` is a world-frame unit vector towards the sun
    (CARLA axes, z up); ``ambient`` is the share of light that reaches faces turned
    away from the sun; ``fog_density`` is in 1/m (a pixel at depth d keeps
    ``exp(-density d)`` of its colour; visibility is about 3 / density);
    ``rain`` and ``road_texture`` are in [0, 1]; ``noise_sigma`` is in grey levels.
    """

    seed: int = 0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sun_direction: tuple[float, float, float] = (0.35, -0.45, 0.82)
    ambient: float = 0.55
    sky_horizon: BGR = (235, 218, 200)
    sky_zenith: BGR = (205, 150, 95)
    fog_density: float = 0.0
    fog_color: BGR = (200, 200, 198)
    rain: float = 0.0
    noise_sigma: float = 0.0
    road_texture: float = 0.0
    vehicle_shapes: bool = False

    @classmethod
    def neutral(cls) -> Appearance:
        """Plain boxes, flat ground colours, no weather or noise: for tests."""
        return cls()

    @classmethod
    def sample(cls, seed: int, night: bool | None = None,
               rain: float | None = None) -> Appearance:
        """Draw an episode's look from ``seed`` (same seed, same look). ``night`` and
        ``rain`` (0..1), when given, replace the drawn ones and the sky follows them
        (a scenario's fixed weather); everything else is drawn as without them."""
        rng = np.random.default_rng([seed, 0xA99E])
        drawn_rain = float(rng.uniform(0.3, 1.0)) if rng.random() < 0.25 else 0.0
        cloudy = drawn_rain > 0.0 or rng.random() < 0.2  # the draws as they always were
        rain = drawn_rain if rain is None else rain
        overcast = cloudy or rain > 0.0
        drawn_night = rng.random() < 0.1
        night = drawn_night if night is None else night
        elevation = np.radians(rng.uniform(4.0, 75.0))
        azimuth = rng.uniform(0.0, 2.0 * np.pi)
        sun = (float(np.cos(elevation) * np.cos(azimuth)),
               float(np.cos(elevation) * np.sin(azimuth)), float(np.sin(elevation)))
        if night:
            brightness = rng.uniform(0.3, 0.45)
            tint = np.array([1.12, 0.98, 0.85])
            horizon, zenith = np.array([70.0, 55.0, 45.0]), np.array([40.0, 25.0, 15.0])
            ambient = rng.uniform(0.75, 0.9)
        else:
            brightness = min(1.05, 0.55 + 0.5 * np.sqrt(np.sin(elevation)))
            warm = float(np.clip(1.0 - np.degrees(elevation) / 25.0, 0.0, 1.0))
            tint = np.array([1.0 - 0.2 * warm, 1.0 + 0.03 * warm, 1.0 + 0.18 * warm])
            horizon = (1 - warm) * np.array([235.0, 218.0, 200.0]) + warm * np.array(
                [140.0, 180.0, 235.0])
            zenith = np.array([205.0, 150.0, 95.0]) * rng.uniform(0.85, 1.1)
            ambient = rng.uniform(0.35, 0.6)
        if overcast:
            grey = rng.uniform(160.0, 200.0)
            horizon = 0.3 * horizon + 0.7 * np.array([grey + 5.0, grey + 5.0, grey])
            zenith = 0.3 * zenith + 0.7 * np.array([grey, grey, grey - 5.0])
            ambient = max(ambient, rng.uniform(0.7, 0.85))
        gain = brightness * tint * (1.0 - 0.35 * rain)
        fog = float(rng.uniform(0.005, 0.04)) if rng.random() < 0.25 else 0.0
        fog_color = horizon * (0.8 if night else 1.0)
        return cls(
            seed=seed,
            gain=(float(gain[0]), float(gain[1]), float(gain[2])),
            sun_direction=sun,
            ambient=float(ambient),
            sky_horizon=_bgr(horizon * (brightness if night else 1.0)),
            sky_zenith=_bgr(zenith * (brightness if night else 1.0)),
            fog_density=fog,
            fog_color=_bgr(fog_color),
            rain=rain,
            noise_sigma=float(rng.uniform(0.0, 4.0)),
            road_texture=float(rng.uniform(0.3, 1.0)),
            vehicle_shapes=True,
        )

    # ------------------------------------------------------------------- objects
    def object_color(self, label: int, key: int) -> BGR:
        """Base (unlit) BGR colour of an object of ``label``: picked from the label's
        palette by (seed, label, key) and jittered by up to 12 % per channel. ``key``
        is the instance id for actors, the object's index for static scenery."""
        palette = _PALETTES.get(label, _GREY)
        r = _units(_mix(self.seed, label, key), 4)
        base = palette[int(r[0] * len(palette))]
        return _bgr([c * (0.88 + 0.24 * x) for c, x in zip(base, r[1:], strict=True)])

    def parts(self, label: int, extent: tuple[float, float, float], key: int) -> list[Part]:
        """The boxes an object of ``label`` and half sizes ``extent`` is drawn as,
        all inside its box. With ``vehicle_shapes`` a car is a body and a narrower,
        shorter cabin, and a truck a cab and a cargo box, with proportions drawn
        from (seed, label, key); everything else is its box."""
        ex, ey, ez = extent
        if not self.vehicle_shapes or label not in (Label.CAR, Label.TRUCK):
            return [((0.0, 0.0, 0.0), (ex, ey, ez))]
        r = _units(_mix(self.seed, label, key, 0x5A9E), 4)
        if label == Label.CAR:
            body = ez * (0.45 + 0.17 * r[0])  # half height of the lower body
            cabin_len = ex * (0.45 + 0.25 * r[1])
            cabin_x = float(np.clip(ex * (-0.24 + 0.34 * r[2]), cabin_len - ex, ex - cabin_len))
            cabin_h = ez - body
            return [((0.0, 0.0, body - ez), (ex, ey, body)),
                    ((cabin_x, 0.0, ez - cabin_h), (cabin_len, ey * (0.82 + 0.13 * r[3]),
                                                   cabin_h))]
        cab_len = ex * (0.22 + 0.08 * r[0])  # truck: cab in front, cargo behind
        gap = 0.04 * ex
        cargo_len = ex - cab_len - gap
        cab_h = ez * (0.7 + 0.15 * r[1])
        return [((ex - cab_len, 0.0, cab_h - ez), (cab_len, ey * 0.96, cab_h)),
                ((cargo_len - ex, 0.0, 0.0), (cargo_len, ey, ez))]

    def shade(self, normals_world: np.ndarray) -> np.ndarray:
        """Per-face brightness (...,) for world-frame unit normals (..., 3): Lambert
        with an ambient floor, ``ambient + (1 - ambient) max(0, n . sun)``."""
        lit = np.maximum(normals_world @ np.asarray(self.sun_direction), 0.0)
        return self.ambient + (1.0 - self.ambient) * lit


def _bgr(values: np.ndarray | list[float]) -> BGR:
    b, g, r = (min(255, max(0, round(float(c)))) for c in values)
    return (b, g, r)


def textured_ground_colors(raster: GroundRaster, appearance: Appearance) -> np.ndarray:
    """The raster's colours as this episode sees them: per-label shade changes
    (asphalt darker or lighter, worn lines, grass tint), low-frequency blotches and
    grain scaled by ``road_texture`` (strongest on roads), then the light gain.
    Texture is fixed to the world (drawn in the raster), so it moves with the ground.
    With the neutral appearance this is the raster's colours, unchanged."""
    if appearance.road_texture == 0.0 and appearance.gain == (1.0, 1.0, 1.0):
        return raster.colors
    rng = np.random.default_rng([appearance.seed, 0x6E0D])
    h, w = raster.labels.shape
    scale = np.ones((256, 3), np.float32)  # per-label colour multiplier
    amplitude = np.full(256, 0.3, np.float32)  # per-label texture strength
    scale[Label.ROADS] = rng.uniform(0.75, 1.2) * rng.uniform(0.95, 1.05, 3)
    scale[Label.ROAD_LINES] = rng.uniform(0.8, 1.0)
    scale[Label.SIDEWALKS] = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
    scale[Label.TERRAIN] = rng.uniform(0.8, 1.2) * rng.uniform(0.85, 1.15, 3)
    amplitude[Label.ROADS] = 1.0
    amplitude[Label.ROAD_LINES] = 0.6
    scale *= np.asarray(appearance.gain, np.float32)
    amplitude *= 0.35 * appearance.road_texture
    # blotches: noise on a grid of ~4 m cells, smoothly upsampled; grain: per pixel
    cell = max(1, round(4.0 / raster.metres_per_pixel))
    coarse = rng.random((h // cell + 2, w // cell + 2), dtype=np.float32)
    blotch = cv2.resize(coarse, ((w // cell + 2) * cell, (h // cell + 2) * cell),
                        interpolation=cv2.INTER_CUBIC)[:h, :w]
    out = np.empty_like(raster.colors)
    for r0 in range(0, h, 512):  # in row chunks: a town raster is ~16 M pixels
        rows = slice(r0, min(h, r0 + 512))
        lab = raster.labels[rows]
        grain = rng.random(lab.shape, dtype=np.float32)
        noise = 0.7 * (blotch[rows] - 0.5) + 0.3 * (grain - 0.5)
        factor = scale[lab] * (1.0 + amplitude[lab] * 2.0 * noise)[..., None]
        out[rows] = np.clip(raster.colors[rows] * factor, 0.0, 255.0).astype(np.uint8)
    return out


class PostEffects:
    """Per-frame image effects for one image size: fog (by depth), rain streaks and
    sensor noise. Streak and noise images are drawn once per episode into small
    banks and picked by the tick, so a frame is a pure function of (seed, tick).
    Not thread-safe: it keeps scratch buffers."""

    BANK = 8

    def __init__(self, appearance: Appearance, width: int, height: int) -> None:
        self.appearance = appearance
        rng = np.random.default_rng([appearance.seed, width, height, 0xEFFE])
        shape = (height, width, 4)
        self._fog = np.empty(shape, np.uint8)
        self._fog[:] = (*appearance.fog_color, 255)
        # scratch for the fog weights: reused, as fresh image-sized temporaries cost
        # page faults every frame
        self._keep = np.empty((height, width), np.float32)
        self._fog_weight = np.empty((height, width), np.float32)
        self._streaks: list[np.ndarray] = []
        if appearance.rain > 0.0:
            slant = rng.uniform(-0.35, 0.35)
            for _ in range(self.BANK):
                layer = np.zeros((height, width), np.uint8)
                n = int(appearance.rain * width * height / 900)
                x0 = rng.uniform(0, width, n)
                y0 = rng.uniform(0, height, n)
                length = rng.uniform(8, 24, n) * height / 360
                level = rng.integers(25, 70, n)
                for x, y, ln, lv in zip(x0, y0, length, level, strict=True):
                    cv2.line(layer, (int(x), int(y)), (int(x + slant * ln), int(y + ln)),
                             int(lv), 1, cv2.LINE_AA)
                self._streaks.append(cv2.cvtColor(layer, cv2.COLOR_GRAY2BGRA))
        self._noise: list[np.ndarray] = []  # zero-mean noise stored with +128
        if appearance.noise_sigma > 0.0:
            for _ in range(self.BANK):
                n = rng.normal(128.0, appearance.noise_sigma, shape)
                self._noise.append(np.clip(np.round(n), 0, 255).astype(np.uint8))

    @property
    def uses_depth(self) -> bool:
        """Whether :meth:`apply` reads the depth (only the fog does)."""
        return self.appearance.fog_density > 0.0

    def apply(self, rgb: np.ndarray, depth: np.ndarray | None, tick: int) -> None:
        """The effects on a BGRA frame (in place) with its depth (m), which may be
        None when not :attr:`uses_depth`."""
        a = self.appearance
        if self.uses_depth:
            if depth is None:
                raise ValueError("the fog needs the frame's depth")
            keep, fog = self._keep, self._fog_weight
            np.multiply(depth, np.float32(-a.fog_density), out=keep)
            cv2.exp(keep, dst=keep)
            np.subtract(np.float32(1.0), keep, out=fog)
            cv2.blendLinear(rgb, self._fog, keep, fog, dst=rgb)
        if self._streaks:
            cv2.add(rgb, self._streaks[tick % self.BANK], dst=rgb)
        if self._noise:
            cv2.addWeighted(rgb, 1.0, self._noise[tick % self.BANK], 1.0, -128.0, dst=rgb)
