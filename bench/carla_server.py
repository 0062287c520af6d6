#!/usr/bin/env python
"""Benchmark: the CARLA-compatible server through the real ``carla`` 0.9.16 client,
against the embedded simulator driven directly, in the same run.

    python bench/carla_server.py [--quick] [--ticks N] [--rounds R]

ticks
    synchronous ``world.tick()`` per second from a client process (one vehicle under
    ``apply_control`` each tick, 10 NPC vehicles and 5 walkers on town_grid, no
    camera): ``client_ticks_per_s``; the same world stepped directly in this process
    (``ServerWorld.tick``, which builds the episode state too): ``direct_ticks_per_s``;
    ``client_vs_direct`` is their ratio (the cost of RPC, streaming and the client).
camera
    an 800x600 RGB camera on that vehicle: ticks per second at which the client
    receives every frame (it waits for frame N's image before tick N+1):
    ``client_camera_fps``; rendering and BGRA-encoding the same camera directly:
    ``direct_camera_fps``; ``camera_client_vs_direct``.

Rounds alternate client and direct measurements so a change in the machine's load
hits both; each figure is the median over rounds. Server and client share the
machine (the client is another process). Prints a table, then one JSON object on
the last line (see bench/measure.py).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

CAMERA = (800, 600)


# ------------------------------------------------------------------ client side
def client_main(port: int, ticks: int) -> None:
    """Runs in the client process: only the carla package. Prints one JSON line."""
    import threading

    import carla

    client = carla.Client("127.0.0.1", port)
    client.set_timeout(30.0)
    world = client.get_world()
    s = world.get_settings()
    s.synchronous_mode, s.fixed_delta_seconds = True, 0.05
    world.apply_settings(s)
    lib = world.get_blueprint_library()
    sp = world.get_map().get_spawn_points()
    v = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), sp[0])
    control = carla.VehicleControl(throttle=0.3)
    for _ in range(5):
        world.tick()
    t0 = time.perf_counter()
    for _ in range(ticks):
        v.apply_control(control)
        world.tick()
    tick_rate = ticks / (time.perf_counter() - t0)
    bp = lib.find("sensor.camera.rgb")
    bp.set_attribute("image_size_x", str(CAMERA[0]))
    bp.set_attribute("image_size_y", str(CAMERA[1]))
    cam = world.spawn_actor(bp, carla.Transform(carla.Location(x=1.5, z=2.4)), attach_to=v)
    got = threading.Condition()
    last = [0]

    def on_image(image: carla.Image) -> None:
        with got:
            last[0] = image.frame
            got.notify()

    cam.listen(on_image)
    time.sleep(0.5)
    frames = max(10, ticks // 4)
    received = 0
    t0 = time.perf_counter()
    for _ in range(frames):
        v.apply_control(control)
        frame = world.tick()
        with got:
            if got.wait_for(lambda f=frame: last[0] >= f, timeout=10.0):
                received += 1
    camera_rate = frames / (time.perf_counter() - t0)
    cam.stop()
    cam.destroy()
    v.destroy()
    print(json.dumps({"ticks_per_s": tick_rate, "camera_fps": camera_rate,
                      "camera_frames": frames, "camera_received": received}))


# ------------------------------------------------------------------ server side
def _client_round(port: int, ticks: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--client", str(port),
                          "--ticks", str(ticks)], env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"client failed ({out.returncode}): {out.stdout[-2000:]}"
                           f"{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _direct_round(ticks: int) -> dict[str, float]:
    """The same world, stepped and rendered in this process without RPC."""
    from bus.messages import Rotation, Transform, Vector3
    from sim.carla_server import blueprints as bp
    from sim.carla_server.sensors import Sensors, encode_rgb
    from sim.carla_server.wire import Description, EpisodeSettings
    from sim.carla_server.world import ServerWorld
    from sim.maps import load_map

    world = ServerWorld(load_map("town_grid"), seed=0, vehicles=10, walkers=5,
                        settings=EpisodeSettings(True, False, 0.05))
    world.sensors = Sensors(world, lambda _sid: False)  # no stream: cameras rendered below
    world.sensors.wait_ready()  # not building the renderer while ticks are timed
    t = world.map_spawn_points()[0]
    v = world.spawn(Description(0, "vehicle.lincoln.mkz_2020", {}),
                    Transform(t.location, t.rotation))
    from bus.messages import VehicleControl
    world.apply_control(v.id, VehicleControl(throttle=0.3))
    for _ in range(5):
        world.tick()
    t0 = time.perf_counter()
    for _ in range(ticks):
        world.apply_control(v.id, VehicleControl(throttle=0.3))
        world.tick()
    tick_rate = ticks / (time.perf_counter() - t0)
    attrs = {"image_size_x": (2, str(CAMERA[0])), "image_size_y": (2, str(CAMERA[1]))}
    cam = world.spawn(Description(0, bp.CAMERA_TYPES[0], attrs),
                      Transform(Vector3(1.5, 0.0, 2.4), Rotation()), parent=v.id)
    frames = max(10, ticks // 4)
    t0 = time.perf_counter()
    for _ in range(frames):
        world.apply_control(v.id, VehicleControl(throttle=0.3))
        world.tick()
        frame = world.sensors.render(world, [cam])[cam.id]
        encode_rgb(frame).tobytes()
    camera_rate = frames / (time.perf_counter() - t0)
    world.sensors.close()
    return {"ticks_per_s": tick_rate, "camera_fps": camera_rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="fewer ticks and rounds")
    ap.add_argument("--ticks", type=int, help="ticks per measurement (default 400)")
    ap.add_argument("--rounds", type=int, help="rounds (default 3)")
    ap.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    ticks = args.ticks or (100 if args.quick else 400)
    if args.client is not None:
        client_main(args.client, ticks)
        return
    import cv2

    from bench.measure import run_and_report
    from sim.carla_server.server import CarlaServer, ServerConfig

    cv2.setNumThreads(1)
    rounds = args.rounds or (1 if args.quick else 3)

    def measure(n: int, r: int) -> dict[str, Any]:
        client, direct, received = [], [], []
        for _ in range(r):
            server = CarlaServer(ServerConfig(map="town_grid", seed=0, vehicles=10, walkers=5,
                                              port=0, streaming_port=0, tm_port=0))
            server.world.sensors.wait_ready()  # as `drivestack serve` does before serving
            with server:
                c = _client_round(server.port, n)
            client.append(c)
            received.append(c["camera_received"] == c["camera_frames"])
            direct.append(_direct_round(n))
        med = {f"{side}_{key}": statistics.median(x[key] for x in runs)
               for side, runs in (("client", client), ("direct", direct))
               for key in ("ticks_per_s", "camera_fps")}
        return {
            "client_ticks_per_s": round(med["client_ticks_per_s"], 1),
            "direct_ticks_per_s": round(med["direct_ticks_per_s"], 1),
            "client_vs_direct": round(med["client_ticks_per_s"] / med["direct_ticks_per_s"], 3),
            "client_camera_fps": round(med["client_camera_fps"], 1),
            "direct_camera_fps": round(med["direct_camera_fps"], 1),
            "camera_client_vs_direct": round(med["client_camera_fps"]
                                             / med["direct_camera_fps"], 3),
            "camera_every_frame_received": all(received),
        }

    run_and_report({"carla_server": measure}, ticks, rounds,
                   {"map": "town_grid", "camera": f"{CAMERA[0]}x{CAMERA[1]}", "ticks": ticks,
                    "rounds": rounds})


if __name__ == "__main__":
    main()
