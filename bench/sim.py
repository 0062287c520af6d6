#!/usr/bin/env python
"""Benchmark: the embedded simulator on this machine, now, on one core.

    python bench/sim.py [--quick] [--frames N] [--rounds R]

render
    frames/s of ``sim.render.Renderer.render`` for one 640x360 camera (fov 90) on
    an ego driving through a synthetic town (0.1 m/px ground raster), giving RGB,
    labels, depth and instance ids, with about 20 actors in view (cars ahead and
    oncoming, pedestrians, traffic lights). Three cases, all with an episode
    appearance drawn from a seed (vehicle shapes, road texture, sensor noise):
    ``render_actors`` (the actors only: the "about 20 objects in view" case of the
    target), ``render`` (the actors plus the town's scenery from
    ``sim.render.scenery``: about 200 more boxes in the view frustum) and
    ``render_weather`` (that, with fog and rain on: the most per-frame work).
floor
    the bare ground warp at the same size, the least any renderer of this design
    does per frame: ``cv2.warpPerspective`` of the label raster (nearest) and the
    BGR colour raster (bilinear) into the image rows below the horizon (the rows
    above it would sample the ground behind the camera).

Every measurement runs in rounds that alternate the cases, so a change in the
machine's load hits all alike; each figure is the median over the rounds. One core:
``cv2.setNumThreads(1)`` and single-threaded BLAS. Prints a table, then as the last
line one JSON object: ``render_actors_fps``, ``render_fps``, ``render_weather_fps``,
``floor_fps``, ``render_vs_floor`` (render_fps / floor_fps), ``objects_in_view``
(mean actors with at least one pixel), ``scenery_boxes``, ``frames``, ``rounds``,
``target_fps`` (100), ``target_met`` (render_actors_fps >= target_fps) and
``target_met_with_scenery`` (render_fps >= target_fps).

full_step
    a whole tick of the embedded simulator on the town_grid map with 30 NPCs and 10
    pedestrians: world step, front camera render with scenery, and the tick's
    messages built; ``full_step_fps`` against ``scene_render_fps`` (render alone)
    and ``world_step_fps`` (world alone), measured in the same rounds.

A new measurement is a function of (frames, rounds) returning its figures as a
dict, added to ``MEASUREMENTS``; ``main`` runs each and merges the figures.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from typing import Any  # noqa: E402

# Run as ``python bench/sim.py``, sys.path[0] is bench/: put the repository root first.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.measure import run_and_report  # noqa: E402
from bus.messages import Rotation, Transform, Vector3  # noqa: E402
from sim.labels import Label  # noqa: E402
from sim.render import (  # noqa: E402
    Appearance,
    CameraSpec,
    GroundRaster,
    Renderer,
    RenderObject,
    default_ground_colors,
)
from sim.render.camera import camera_pose  # noqa: E402
from sim.render.ground import image_from_raster  # noqa: E402
from sim.render.scenery import place_scenery, traffic_light_objects  # noqa: E402

TARGET_FPS = 100.0
SEED = 7
DT = 0.05  # s per frame (20 Hz, the leaderboard's step)
EGO_SPEED = 10.0  # m/s
LANE = 3.5  # m
CAR_EXTENT = (2.3, 0.95, 0.75)
PED_EXTENT = (0.25, 0.3, 0.9)


# ------------------------------------------------------------------------- the town
def synthetic_town(size: float = 400.0, block: float = 100.0, mpp: float = 0.1) -> GroundRaster:
    """A grid town: two-lane-each-way roads every ``block`` metres along x and y
    (yellow centre line, dashed white lane lines, white edge lines), 3 m sidewalks,
    terrain between. World x, y in [-size/2, size/2) m; road centre lines at
    multiples of ``block``."""
    n = round(size / mpp)
    coords = -size / 2 + np.arange(n) * mpp
    # distance to the nearest road centre line, along each axis (1-D, broadcast)
    off = np.abs((coords + block / 2) % block - block / 2)
    along = (coords % 9.0) < 3.0  # dashes: 3 m painted, 6 m gap
    half_road, half_paved = 2 * LANE, 2 * LANE + 3.0
    road_x, road_y = off[None, :] < half_road, off[:, None] < half_road  # cols ~ x, rows ~ y
    paved = (off[None, :] < half_paved) | (off[:, None] < half_paved)
    junction = road_x & road_y

    def lines(o: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centre = np.abs(o - 0.15) < 0.06  # a double yellow line at +-0.15 m
        white = (np.abs(o - LANE) < 0.07) & a | (np.abs(o - (half_road - 0.3)) < 0.07)
        return centre, white

    cy, wy = lines(off[:, None], along[None, :])  # roads along x: lines offset in y
    cx, wx = lines(off[None, :], along[:, None])
    labels = np.full((n, n), Label.TERRAIN, np.uint8)
    labels[paved] = Label.SIDEWALKS
    labels[road_x | road_y] = Label.ROADS
    yellow = ((cy & road_y) | (cx & road_x)) & ~junction
    white = ((wy & road_y) | (wx & road_x)) & ~junction
    labels[yellow | white] = Label.ROAD_LINES
    colors = default_ground_colors(labels)
    colors[yellow] = (20, 190, 230)
    return GroundRaster(labels, colors, origin_x=-size / 2, origin_y=-size / 2,
                        metres_per_pixel=mpp)


@dataclass(frozen=True)
class Scene:
    """What one frame of the drive looks like: the ego pose and the actors."""

    ego: Transform
    objects: list[RenderObject]


def drive(frames: int) -> list[Scene]:
    """The ego drives +x in the right lane of the road y = 0 from x = -170 m at
    ``EGO_SPEED``; NPC cars drive ahead in both lanes and oncoming, pedestrians walk
    the sidewalks, and the lights at each junction ahead cycle."""
    rng = np.random.default_rng(SEED)
    ahead = [(rng.uniform(8, 90), lane, rng.uniform(6, 11)) for lane in (1, 2) for _ in range(5)]
    oncoming = [(rng.uniform(20, 160), lane, rng.uniform(8, 12)) for lane in (1, 2)
                for _ in range(3)]
    walkers = [(rng.uniform(5, 70), side * rng.uniform(8.0, 9.5), rng.uniform(-1.4, 1.4))
               for side in (-1, 1) for _ in range(3)]
    scenes = []
    for k in range(frames):
        t = k * DT
        ex = -170.0 + EGO_SPEED * t
        objects: list[RenderObject] = []
        iid = 1
        for x0, lane, v in ahead:
            x = ex + x0 + (v - EGO_SPEED) * t
            objects.append(RenderObject(iid, Label.CAR, Transform(
                Vector3(x, (lane - 0.5) * LANE, CAR_EXTENT[2]), Rotation(yaw=0.0)), CAR_EXTENT))
            iid += 1
        for x0, lane, v in oncoming:
            x = ex + x0 - (v + EGO_SPEED) * t % 200.0
            objects.append(RenderObject(iid, Label.CAR, Transform(
                Vector3(x, -(lane - 0.5) * LANE, CAR_EXTENT[2]), Rotation(yaw=180.0)),
                CAR_EXTENT))
            iid += 1
        for x0, y, v in walkers:
            objects.append(RenderObject(iid, Label.PEDESTRIANS, Transform(
                Vector3(ex + x0 + v * t, y, PED_EXTENT[2]),
                Rotation(yaw=0.0 if v > 0 else 180.0)), PED_EXTENT))
            iid += 1
        lamp = ("green", "yellow", "red")[int(t // 4) % 3]
        for jx in (-100.0, 0.0, 100.0):  # the lights facing the ego at the junctions ahead
            if jx > ex:
                objects += traffic_light_objects(iid, Transform(
                    Vector3(jx - 10.5, 10.5, 0.0), Rotation(yaw=180.0)), lamp)
                iid += 1
        scenes.append(Scene(Transform(Vector3(ex, LANE / 2, 0.0)), objects))
    return scenes


# --------------------------------------------------------------------- measurement
def _time_rounds(cases: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each case, over rounds that alternate the cases."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            t0 = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def bench_render(frames: int, rounds: int) -> dict[str, Any]:
    """Render frames/s against the ground-warp floor (see the module docstring)."""
    ground = synthetic_town()
    scenery = place_scenery(ground, SEED)
    camera = CameraSpec("front")
    look = replace(Appearance.sample(SEED), fog_density=0.0, rain=0.0)
    weather = replace(look, fog_density=0.01, rain=0.6)
    renderers = {"render_actors": Renderer(ground, [camera], look),
                 "render": Renderer(ground, [camera], look, scenery),
                 "render_weather": Renderer(ground, [camera], weather, scenery)}
    scenes = drive(frames)

    in_view = []
    for scene in scenes[:: max(1, frames // 10)]:
        ids = np.unique(renderers["render"].render(scene.ego, scene.objects)["front"].instances)
        in_view.append(int((ids > 0).sum()))

    K = camera.intrinsics
    top = int(np.ceil(K.cy))  # level camera: the horizon is the middle row
    size = (K.width, K.height - top)
    band = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    homographies = [np.linalg.inv(image_from_raster(camera_pose(s.ego, camera.mount), K,
                                                    ground)) @ band for s in scenes]
    labels_out = np.empty((K.height - top, K.width), np.uint8)
    colors_out = np.empty((K.height - top, K.width, 3), np.uint8)

    def floor() -> None:
        for m in homographies:
            cv2.warpPerspective(ground.labels, m, size, dst=labels_out,
                                flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST)
            cv2.warpPerspective(ground.colors, m, size, dst=colors_out,
                                flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)

    def renders(renderer: Renderer) -> Callable[[], None]:
        def run() -> None:
            for k, scene in enumerate(scenes):
                renderer.render(scene.ego, scene.objects, tick=k)
        return run

    cases = {"floor": floor, **{name: renders(r) for name, r in renderers.items()}}
    for run in cases.values():  # warm-up: caches, page-ins
        run()
    seconds = _time_rounds(cases, rounds)
    fps = {name: frames / s for name, s in seconds.items()}
    return {
        "render_actors_fps": round(fps["render_actors"], 1),
        "render_fps": round(fps["render"], 1),
        "render_weather_fps": round(fps["render_weather"], 1),
        "floor_fps": round(fps["floor"], 1),
        "render_vs_floor": round(fps["render"] / fps["floor"], 3),
        "objects_in_view": round(float(np.mean(in_view)), 1),
        "scenery_boxes": len(scenery),  # one box per scenery object
        "image": f"{K.width}x{K.height}",
        "target_fps": TARGET_FPS,
        "target_met": bool(fps["render_actors"] >= TARGET_FPS),
        "target_met_with_scenery": bool(fps["render"] >= TARGET_FPS),
    }


def bench_full_step(frames: int, rounds: int) -> dict[str, Any]:
    """A whole simulator tick on the town_grid map with 30 NPC vehicles and 10
    pedestrians: the world step (ego dynamics, traffic, lights, infractions), the
    front camera's render (640x360, scenery) and building the tick's bus messages
    (EgoState, GroundTruth, Image), against the render alone in the same rounds."""
    from bus.messages import VehicleControl
    from sim.maps import load_map
    from sim.scenario import Scenario, TrafficConfig
    from sim.scene import SceneRenderer
    from sim.world import MapSource, World

    loaded = load_map("town_grid")
    scenario = Scenario(map="town_grid", seed=SEED,
                        traffic=TrafficConfig(vehicles=30, pedestrians=10))
    world = World(scenario, MapSource(loaded.name, loaded.xodr, loaded.map))
    scene = SceneRenderer(world, scenario.cameras, scenario.weather, SEED)
    control = VehicleControl(throttle=0.3)

    def full() -> None:
        for _ in range(frames):
            world.step(control)
            world.ego_state()
            world.ground_truth()
            scene.render(world)

    def render_only() -> None:
        for _ in range(frames):
            scene.render(world)

    def world_only() -> None:
        for _ in range(frames):
            world.step(control)

    cases = {"full_step": full, "render_only": render_only, "world_step": world_only}
    full()  # warm-up
    seconds = _time_rounds(cases, rounds)
    fps = {name: frames / sec for name, sec in seconds.items()}
    return {
        "full_step_fps": round(fps["full_step"], 1),
        "world_step_fps": round(fps["world_step"], 1),
        "scene_render_fps": round(fps["render_only"], 1),
        "full_step_vs_render": round(fps["full_step"] / fps["render_only"], 3),
        "full_step_npcs": len(world.traffic.npcs),
        "full_step_walkers": len(world.pedestrians.walkers),
    }


MEASUREMENTS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "render": bench_render, "full_step": bench_full_step}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few frames and rounds")
    parser.add_argument("--frames", type=int, default=None, help="frames per round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case")
    args = parser.parse_args(argv)
    frames = args.frames or (20 if args.quick else 200)
    rounds = args.rounds or (3 if args.quick else 7)
    cv2.setNumThreads(1)
    run_and_report(MEASUREMENTS, frames, rounds, {"frames": frames, "rounds": rounds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
