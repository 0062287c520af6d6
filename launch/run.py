"""``drivestack run``: one closed-loop drive, start to score.

1. The scenario (a built-in name or a YAML file) is loaded, the command line's
   overrides applied (map, seed, duration, route file and id, map_dir, realtime), its
   route resolved, and the result written to ``OUT/scenario.yaml``: every node reads
   that one file, and the run directory says exactly what was driven.
2. ``launch/files/closed_loop.yaml`` starts the simulator, perception (or the
   ground-truth oracle with ``--oracle``), planning, control and the recorder as
   separate processes in a fresh bus namespace; their output goes to ``OUT/log.txt``.
   With ``--live`` the launch also serves the bus to Foxglove over a WebSocket
   (``launch.live``, a passive viewer outside the lockstep), and the address to
   open in Foxglove is printed first.
3. Meanwhile a bus listener in this process draws a progress bar from the
   simulator's progress on /diagnostics (sim time, distance, route %, ticks/s: the
   same figures it scores with) and the infractions on /run/events.
4. At the end the simulator's ``OUT/metrics.json`` is summarised in a table.

The exit status is 0 when the run completed (whatever the score), 1 when a node
failed or the run left no metrics, 2 for a user error (bad scenario, map, route).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RUN_LAUNCH_FILE = "closed_loop"
CARLA_LAUNCH_FILE = "carla"
SIMS = ("embedded", "carla")


class RunError(ValueError):
    """A user error in the run's settings (one line)."""


@dataclass(frozen=True)
class RunOptions:
    scenario: str = "town_grid_route"
    map: str = ""
    route: str = ""
    route_id: str = ""
    map_dir: str = ""
    seed: int | None = None
    duration: float | None = None
    oracle: bool = False
    realtime: bool = False
    weights: str = ""
    cpu_threads: int = 1  # perception's inference threads on the CPU (bench/closed_loop.py)
    out: str = ""
    progress: bool = True
    record_cameras: bool = True  # false: drive.mcap without camera images
    live: bool = False  # serve the bus to Foxglove (launch.live)
    live_port: int = 8765
    # the simulator: "embedded", or "carla" (a CARLA server at host:port, through
    # sim.carla_bridge; launch/files/carla.yaml)
    sim: str = "embedded"
    host: str = "127.0.0.1"
    port: int = 2000
    timeout: float = 10.0  # seconds every CARLA RPC and tick may take
    tm_port: int = 8000
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    town: str = ""  # "" the scenario's map; "current": the server's loaded world


def resolve_scenario(opts: RunOptions) -> Any:
    """The scenario to drive, with the options applied and its route resolved."""
    from sim.maps import MapError
    from sim.routes import RouteError
    from sim.scenario import apply_overrides, find_scenario, load_scenario

    try:
        scenario = apply_overrides(
            load_scenario(find_scenario(opts.scenario)), map=opts.map or "",
            map_dir=str(Path(opts.map_dir).resolve()) if opts.map_dir else "",
            route_file=str(Path(opts.route).resolve()) if opts.route else "",
            route_id=opts.route_id or "", seed=opts.seed, duration_s=opts.duration,
            mode="realtime" if opts.realtime else "")
        if scenario.map.endswith(".xodr") or "/" in scenario.map:
            scenario.map = str(Path(scenario.map).resolve())
        from sim.maps import load_map

        load_map(scenario.map)  # a bad map fails here, not in a node
    except (MapError, RouteError, ValueError, OSError) as exc:
        raise RunError(str(exc)) from None
    return scenario


def write_scenario(scenario: Any, path: Path) -> None:
    data = dataclasses.asdict(scenario)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def default_out(scenario_name: str) -> Path:
    stem = Path(scenario_name).stem if scenario_name.endswith((".yaml", ".yml")) \
        else scenario_name
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"


# ------------------------------------------------------------------------ progress
class _Progress:
    """Listens on the run's bus namespace in a thread: the simulator's own progress
    (sim time, distance, route %, ticks/s, from its /diagnostics message) and the
    infractions on /run/events."""

    def __init__(self, namespace: str, has_route: bool, sim_node: str = "sim") -> None:
        self.namespace = namespace
        self.sim_node = sim_node
        self.sim_time = 0.0
        self.distance = 0.0
        self.route_pct: float | None = 0.0 if has_route else None
        self.ticks_per_s = 0.0
        self.infractions = 0
        self.end: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="run-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _spin(self) -> None:
        from bus import Executor, Node, ZmqConfig, ZmqContext
        from bus.messages import NodeStatus, RunEvent
        from sim.evaluation import END_KINDS, PENALTIES
        from sim.run_metrics import parse_progress

        ctx = ZmqContext(ZmqConfig.from_env(namespace=self.namespace))
        node = Node("run_progress", context=ctx, diagnostics=False)

        def on_status(msg: NodeStatus) -> None:
            if msg.node != self.sim_node:
                return
            p = parse_progress(msg.message)
            self.sim_time = p.get("sim_time_s", self.sim_time)
            self.distance = p.get("distance_m", self.distance)
            self.ticks_per_s = p.get("ticks_per_s", self.ticks_per_s)
            if self.route_pct is not None:
                self.route_pct = p.get("route_pct", self.route_pct)

        def on_event(msg: RunEvent) -> None:
            if msg.kind in PENALTIES or msg.kind == "off_route":
                self.infractions += 1
            elif msg.kind in END_KINDS:
                self.end = msg.kind

        node.create_subscription(NodeStatus, "/diagnostics", on_status)
        node.create_subscription(RunEvent, "/run/events", on_event)
        ex = Executor(ctx, [node])
        try:
            while not self._stop.is_set():
                ex.spin_once(0.1)
        finally:
            node.destroy()
            ctx.close()

    def line(self) -> str:
        route = "n/a" if self.route_pct is None else f"{self.route_pct:5.1f} %"
        return (f"sim {self.sim_time:6.1f} s | {self.distance:7.1f} m | route {route} | "
                f"{self.ticks_per_s:5.1f} ticks/s | {self.infractions} infractions")


# --------------------------------------------------------------------------- run
def launch_args(opts: RunOptions, scenario_file: Path, out: Path) -> dict[str, Any]:
    """The arguments of ``launch/files/closed_loop.yaml`` (``carla.yaml`` with
    ``--sim carla``) for a run."""
    args: dict[str, Any] = {
        "scenario": str(scenario_file.resolve()), "out": str(out.resolve()),
        "oracle": opts.oracle,
        "weights": str(Path(opts.weights).resolve()) if opts.weights else "",
        "cpu_threads": opts.cpu_threads,
        "record_cameras": opts.record_cameras, "live": opts.live,
        "live_port": opts.live_port}
    if opts.sim == "carla":
        args.update(host=opts.host, port=opts.port, timeout=opts.timeout,
                    tm_port=opts.tm_port, ego_blueprint=opts.ego_blueprint, town=opts.town)
    return args


def check_carla(opts: RunOptions, scenario: Any) -> str | None:
    """With ``--sim carla``: the options checked and the server probed (it answers
    within ``--timeout`` and has the scenario's town) before any node starts, so a
    wrong address is one error line; returns the server's version. None for the
    embedded simulator."""
    if opts.sim not in SIMS:
        raise RunError(f"--sim {opts.sim}: expected one of {', '.join(SIMS)}")
    if opts.sim != "carla":
        return None
    from sim.carla_bridge.client import BridgeConfig, BridgeError, probe, town_name

    town = "" if opts.town == "current" else (opts.town or town_name(scenario.map))
    try:
        config = BridgeConfig(opts.host, opts.port, opts.timeout, scenario.dt, town)
        if not 1 <= opts.tm_port <= 65535:
            raise ValueError(f"tm port {opts.tm_port}: expected 1..65535")
    except ValueError as exc:
        raise RunError(f"--sim carla: {exc}") from None
    try:
        return probe(config)
    except BridgeError as exc:
        raise RunError(str(exc)) from None


def check_live(opts: RunOptions) -> str | None:
    """With ``--live``: the address to open in Foxglove, once what the live node
    needs is checked here, before any node starts (a problem is then one line on
    the console rather than a node's error in log.txt): the foxglove-sdk package
    and a free port. None without ``--live``. A port taken between this check and
    the node's start still fails the node, with the same message, in log.txt; the
    run goes on without the view."""
    if not opts.live:
        return None
    from launch import viz
    from launch.live import DEFAULT_HOST, live_url

    if viz.foxglove is None:
        raise RunError(f"--live needs the foxglove-sdk package: {viz.INSTALL_FOXGLOVE}")
    port = opts.live_port
    if not 1 <= port <= 65535:
        raise RunError(f"--live-port must be 1..65535, not {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the server binds: a port left in TIME_WAIT by an earlier view is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((DEFAULT_HOST, port))
        except OSError as exc:
            why = ("is already in use (another run's live view, or another program)"
                   if exc.errno == errno.EADDRINUSE else
                   f"cannot be listened on ({exc.strerror or exc})")
            raise RunError(f"--live-port {port}: port {port} on {DEFAULT_HOST} {why}: "
                           "choose another with --live-port N") from None
    return live_url(DEFAULT_HOST, port)


def run_closed_loop(opts: RunOptions) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from launch.launcher import Launcher, default_namespace
    from launch.launchfile import LaunchFileError, load_launch_file

    scenario = resolve_scenario(opts)
    out = Path(opts.out) if opts.out else default_out(opts.scenario)
    if out.exists() and any(out.iterdir()):
        raise RunError(f"--out {out} exists and is not empty (runs never overwrite a run)")
    if opts.weights and not Path(opts.weights).is_file():
        raise RunError(f"weights file {opts.weights} not found")
    if opts.cpu_threads < 1:
        raise RunError(f"--cpu-threads must be >= 1, not {opts.cpu_threads}")
    url = check_live(opts)
    carla_version = check_carla(opts, scenario)
    try:
        out.mkdir(parents=True, exist_ok=True)
        scenario_file = out / "scenario.yaml"
        write_scenario(scenario, scenario_file)
        log = (out / "log.txt").open("w")
    except OSError as exc:
        raise RunError(f"cannot write the run directory {out}: {exc.strerror or exc}") \
            from None
    try:
        description = load_launch_file(
            CARLA_LAUNCH_FILE if opts.sim == "carla" else RUN_LAUNCH_FILE,
            launch_args(opts, scenario_file, out))
    except LaunchFileError as exc:
        log.close()
        raise RunError(str(exc)) from None
    namespace = default_namespace()
    mode = "oracle" if opts.oracle else "CNN perception"
    where = "" if carla_version is None else \
        f" on the CARLA {carla_version} server at {opts.host}:{opts.port}"
    print(f"drivestack run: {Path(opts.scenario).stem} on {Path(scenario.map).stem}{where}, "
          f"seed {scenario.seed}, {mode}; run directory {out} (node output in {out / 'log.txt'})",
          flush=True)
    if url is not None:
        print(f"live view: open {url} in Foxglove (Open connection -> Foxglove WebSocket)",
              flush=True)
    progress = _Progress(namespace, has_route=bool(scenario.route.waypoints))
    progress.start()
    launcher = Launcher(description, namespace=namespace, log=log)
    done = threading.Event()

    def draw() -> None:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      disable=not opts.progress, transient=False) as bar:
            total = 100.0 if progress.route_pct is not None else scenario.duration_s
            task = bar.add_task(progress.line(), total=total)
            while not done.wait(0.25):
                value = (progress.route_pct if progress.route_pct is not None
                         else progress.sim_time)
                bar.update(task, completed=value, description=progress.line())
            bar.update(task, description=progress.line())

    drawer = threading.Thread(target=draw, name="run-bar", daemon=True)
    drawer.start()
    try:
        code = launcher.run()
    finally:
        done.set()
        drawer.join(2.0)
        progress.stop()
        log.close()
    return finish(out, code)


def finish(out: Path, launch_code: int) -> int:
    """Print the summary of ``OUT/metrics.json``; the run's exit status."""
    path = out / "metrics.json"
    if not path.is_file():
        print(f"error: the run left no metrics ({path}); see {out / 'log.txt'}",
              file=sys.stderr)
        return 1
    try:
        m = json.loads(path.read_text())
    except ValueError:
        print(f"error: {path} is not JSON", file=sys.stderr)
        return 1
    for line in summary_lines(m):
        print(line)
    if launch_code != 0:
        why = f": {m['error']}" if m.get("error") else ""  # the simulator's own failure
        print(f"error: a node failed{why} (see {out / 'log.txt'})", file=sys.stderr)
        return 1
    return 0


def summary_lines(m: dict[str, Any]) -> list[str]:
    def num(key: str, fmt: str = "{:.1f}") -> str:
        v = m.get(key)
        return "n/a" if v is None else fmt.format(v)

    counts = m.get("infractions", {}).get("counts", {})
    infr = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"
    lat = m.get("latency_ms", {}).get("end_to_end", {})
    rows = [
        ("driving score", num("driving_score")),
        ("route completion", num("route_completion", "{:.1f} %")),
        ("infraction penalty", num("infraction_penalty", "{:.3f}")),
        ("infractions", infr),
        ("end", str(m.get("end_reason"))),
        ("duration", num("duration_s", "{:.1f} s")),
        ("distance", num("distance_m", "{:.1f} m")),
        ("ticks/s", num("ticks_per_s")),
        ("end-to-end latency", "n/a" if not lat else
         f"p50 {lat.get('p50', float('nan')):.1f} ms, p99 {lat.get('p99', float('nan')):.1f} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]
