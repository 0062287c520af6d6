"""``drivestack``: the command line.

Every subcommand is a thin wrapper; the work lives in the packages. A user error
(bad file, unknown topic, no bus to attach to) prints one ``error:`` line and exits
2; nothing prints a traceback for it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bus.config import ConfigError
from bus.topics import TOPICS, UnknownTopicError, lookup
from bus.transport import TransportError
from sim.maps import MapError

EXIT_USER_ERROR = 2
NO_RECORD_CAMERAS_HELP = ("drive.mcap without the camera images (about 0.5 MB a tick): "
                          "replay can then re-run planning and control only")

class UserError(Exception):
    """An error the user can fix; printed as one line."""


def _context(ns: str | None):  # type: ignore[no-untyped-def]
    from bus.transport import ZmqConfig, ZmqContext, resolve_namespace

    return ZmqContext(ZmqConfig.from_env(namespace=resolve_namespace(ns)))


def _tool_node(ns: str | None, kind: str):  # type: ignore[no-untyped-def]
    """A diagnostics-free node on the live bus for a tool, and its executor."""
    from bus import Executor, Node

    ctx = _context(ns)
    node = Node(f"{kind}_{os.getpid()}", context=ctx, diagnostics=False)
    return node, Executor(ctx, [node])


def _spin_until_signal(executor) -> None:  # type: ignore[no-untyped-def]
    """Spin until Ctrl-C/SIGTERM (or executor.shutdown()), then release the bus."""
    from bus import install_signal_handlers

    install_signal_handlers(executor)
    try:
        executor.spin()
    finally:
        executor.destroy()
        executor.context.close()


# ---------------------------------------------------------------------------- topics
def cmd_topics(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    live: dict[str, list[str]] = {}
    if args.live:
        live = _context(args.ns).live_topics()
    table = Table(title="drivestack topics" + (f" (namespace {args.ns or 'live'})"
                                              if args.live else ""))
    for col in ("topic", "type", "rate Hz", "recorded", "latched", "QoS"):
        table.add_column(col, no_wrap=True)
    table.add_column("description")
    if args.live:
        table.add_column("publishers")
    for name, s in TOPICS.items():
        row = [name, s.msg_type.__name__, f"{s.rate_hz:g}" if s.rate_hz else "event",
               "yes" if s.recorded else "no", "yes" if s.latched else "no", s.qos.history,
               s.description]
        if args.live:
            prefix = name.split("<")[0]
            pubs = [f"{t}: {', '.join(n)}" for t, n in live.items()
                    if t == name or ("<" in name and t.startswith(prefix))]
            row.append("\n".join(pubs))
        table.add_row(*row)
    console = Console()
    Console(width=console.width if console.is_terminal else 160).print(table)
    return 0


# ------------------------------------------------------------------------------ echo
def _plain(value: Any, full_arrays: bool) -> Any:
    import numpy as np

    from bus.schema import is_struct, struct_fields

    if is_struct(type(value)):
        return {f.name: _plain(getattr(value, f.name), full_arrays)
                for f in struct_fields(type(value))}
    if isinstance(value, list):
        return [_plain(v, full_arrays) for v in value]
    if isinstance(value, np.ndarray):
        if full_arrays or value.size <= 16:
            return value.tolist()
        summary = f"<{value.dtype} array {'x'.join(map(str, value.shape))}"
        if value.size and value.dtype.kind in "iuf":
            summary += f", min {value.min():g}, max {value.max():g}, mean {value.mean():g}"
        return summary + ">"
    return value


def cmd_echo(args: argparse.Namespace) -> int:
    import yaml

    spec = lookup(args.topic)
    node, executor = _tool_node(args.ns, "echo")
    printed = 0

    def show(msg: Any) -> None:
        nonlocal printed
        printed += 1
        text = yaml.safe_dump(_plain(msg, args.full_arrays), sort_keys=False, width=100)
        print(text.rstrip() + "\n---", flush=True)
        if args.count and printed >= args.count:
            executor.shutdown()

    node.create_subscription(spec.msg_type, args.topic, show)
    _spin_until_signal(executor)
    return 0


# -------------------------------------------------------------------------------- hz
class RateMeter:
    """Message rate over a sliding window of arrival times (like ``ros2 topic hz``)."""

    def __init__(self, window: int) -> None:
        self.times: deque[float] = deque(maxlen=window + 1)
        self.count = 0

    def tick(self, t: float) -> None:
        self.times.append(t)
        self.count += 1

    def stats(self) -> tuple[float, float, float, float, int] | None:
        """(rate Hz, min period s, max period s, period std dev s, window) or None."""
        if len(self.times) < 2:
            return None
        ts = list(self.times)
        periods = [b - a for a, b in itertools.pairwise(ts)]
        mean = sum(periods) / len(periods)
        std = math.sqrt(sum((p - mean) ** 2 for p in periods) / len(periods))
        return 1.0 / mean if mean > 0 else math.inf, min(periods), max(periods), std, len(
            periods)


def cmd_hz(args: argparse.Namespace) -> int:
    spec = lookup(args.topic)
    node, executor = _tool_node(args.ns, "hz")
    meter = RateMeter(args.window)
    node.create_subscription(spec.msg_type, args.topic, lambda _m: meter.tick(time.monotonic()),
                             raw=True)
    reported = 0

    def report() -> None:
        nonlocal reported
        s = meter.stats()
        if s is None or meter.count == reported:
            print(f"no new messages on {args.topic}", flush=True)
            return
        reported = meter.count
        rate, lo, hi, std, n = s
        print(f"average rate: {rate:.3f}\n\tmin: {lo:.4f}s max: {hi:.4f}s std dev: "
              f"{std:.5f}s window: {n}", flush=True)

    node.create_timer(1.0, report)
    _spin_until_signal(executor)
    return 0


# -------------------------------------------------------------------------- launch
def cmd_launch(args: argparse.Namespace) -> int:
    from launch.launcher import launch_main

    return launch_main(args.file, args.overrides, namespace=args.ns)


# -------------------------------------------------------------------------- record
def git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def cmd_record(args: argparse.Namespace) -> int:
    from bus import Executor
    from bus.recorder import Recorder

    ctx = _context(args.ns)
    output = args.output or time.strftime("runs/record-%Y%m%d-%H%M%S/drive.mcap")
    for t in args.topics:
        lookup(t)
    try:
        rec = Recorder("recorder", context=ctx, params={
            "output": output, "topics": args.topics, "compression": args.compression,
            "metadata": {"command": " ".join(sys.argv), "git": git_revision()}})
    except OSError as exc:
        ctx.close()
        raise UserError(f"cannot write the recording {output}: {exc.strerror}") from None
    print(f"recording namespace {ctx.namespace} to {output} (Ctrl-C to stop)", flush=True)
    _spin_until_signal(Executor(ctx, [rec]))
    print(f"recorded {rec.recorded} messages to {output}")
    return 0


# --------------------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    """The embedded simulator behind CARLA 0.9.16's RPC and streaming ports until
    Ctrl-C (or SIGTERM)."""
    import signal
    import threading

    from sim.carla_server import CARLA_VERSION
    from sim.carla_server.server import CarlaServer, ServerConfig, ServerStartError

    if args.map_dir and not Path(args.map_dir).is_dir():
        raise UserError(f"--map-dir {args.map_dir}: not a directory")
    for name in ("port", "streaming_port", "tm_port"):
        value = getattr(args, name)
        if not 0 <= value <= 65535:
            raise UserError(f"--{name.replace('_', '-')} {value}: expected a port 0..65535")
    if args.vehicles < 0 or args.walkers < 0:
        raise UserError("--vehicles and --walkers: expected counts >= 0")
    config = ServerConfig(map=args.map, map_dir=args.map_dir or "", seed=args.seed,
                          vehicles=args.vehicles, walkers=args.walkers, host=args.host,
                          port=args.port, streaming_port=args.streaming_port,
                          tm_port=args.tm_port)
    try:
        server = CarlaServer(config)
    except ServerStartError as exc:
        raise UserError(f"{exc} (another server running? choose --port, --streaming-port, "
                        "--tm-port)") from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.world.sensors.wait_ready()  # cameras' ground and scenery, before clients come
        server.start()
        print(f"drivestack serve: CARLA {CARLA_VERSION} server, map {server.world.loaded.name}, "
              f"on {args.host}:{server.port} (streaming {server.streaming_port}, traffic "
              f"manager {server.tm.port}); Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("drivestack serve: stopped", flush=True)
    return 0


# ---------------------------------------------------------------------------- maps
def cmd_maps(args: argparse.Namespace) -> int:
    if args.action == "render":
        return _maps_render(args)
    from rich.console import Console
    from rich.table import Table

    from sim.maps import builtin_maps, load_map, map_info

    table = Table(title="drivestack built-in maps (drivestack maps render NAME -o map.png)")
    for col in ("map", "driving lanes km", "junctions", "traffic lights", "stop signs",
                "crosswalks", "speed km/h", "file"):
        table.add_column(col, no_wrap=True)
    for name, path in builtin_maps().items():
        info = map_info(load_map(name))
        speed = (f"{info.speed_kmh[0]:g}-{info.speed_kmh[1]:g}" if info.speed_kmh else "-")
        table.add_row(name, f"{info.driving_km:.1f}", str(info.junctions),
                      str(info.traffic_lights), str(info.stop_signs), str(info.crosswalks),
                      speed, str(path))
    console = Console()
    Console(width=console.width if console.is_terminal else 160).print(table)
    return 0


def _maps_render(args: argparse.Namespace) -> int:
    from sim.maps import load_map
    from sim.maps.render import render_png
    from sim.spawn import spawn_points

    if args.resolution is not None and not args.resolution > 0:
        raise UserError(f"--resolution must be > 0 m/px, not {args.resolution:g}")
    loaded = load_map(args.map)
    output = Path(args.output or f"{loaded.name}.png")
    if not output.parent.is_dir():
        raise UserError(f"cannot write {output}: no directory {output.parent}")
    spawns = spawn_points(loaded.map) if args.spawn_points else ()
    try:
        w, h = render_png(loaded, output, args.resolution, spawns)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    except ValueError as exc:  # too many pixels for the resolution
        raise UserError(f"cannot render {args.map}: {exc}") from None
    print(f"wrote {output} ({w} x {h} px)")
    return 0


# ------------------------------------------------------------------------- collect
def _image_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x360, not {text!r}")\
            from None
    return w, h


def _collect_only_options(args: argparse.Namespace) -> dict[str, object]:
    """The CollectConfig fields that only ``collect`` has options for (eval-perception
    collects its held-out set with their defaults), where given."""
    given: dict[str, object] = {
        k: tuple(getattr(args, k)) for k in ("vehicle_density", "pedestrian_density")
        if getattr(args, k, None) is not None}
    if getattr(args, "drop_crosswalks", None) is not None:
        given["drop_crosswalks"] = args.drop_crosswalks
    return given


def _collect(args: argparse.Namespace, out: Path, resume: bool,
             image_size: tuple[int, int] = (640, 360)) -> None:
    """``drivestack collect``'s options (shared with eval-perception) into a data set;
    with ``--sim carla`` from a CARLA server (perception.collect_carla)."""
    from perception.collect import CollectConfig, CollectError, collect

    sim = _sim_options(args) if hasattr(args, "sim") else {"sim": "embedded"}
    cfg = CollectConfig(out=out, maps=tuple(args.maps), episodes=args.episodes,
                        frames_per_episode=args.frames_per_episode, seed=args.seed,
                        every=args.every, image_size=image_size, resume=resume,
                        jobs=args.jobs, map_dir=Path(args.map_dir) if args.map_dir else None,
                        **_collect_only_options(args))
    episode = None
    try:
        if sim["sim"] == "carla":
            from perception.collect_carla import CarlaTarget, check_target, episode_runner

            target = CarlaTarget(host=sim.get("host", "127.0.0.1"), port=sim.get("port", 2000),
                                 timeout_s=sim.get("timeout", 10.0),
                                 tm_port=sim.get("tm_port", 8000))
            check_target(cfg, target)
            episode = episode_runner(target)
        collect(cfg, progress=not args.no_progress, episode=episode)
    except CollectError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write the data set in {out}: "
                        f"{exc.strerror or exc}") from None


def cmd_collect(args: argparse.Namespace) -> int:
    _collect(args, Path(args.out), args.resume, args.image_size)
    return 0


# --------------------------------------------------------------------------- train
@contextmanager
def _user_errors(doing: str, *errors: type[Exception]) -> Iterator[None]:
    """``errors`` (the command's own, one line each) and a file that cannot be read
    or written, while ``doing`` (e.g. "training"), as one-line UserErrors."""
    try:
        yield
    except errors as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{doing} failed reading or writing a file: "
                        f"{exc.strerror or exc}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from perception.train import TrainConfig, TrainError, train

    cfg = TrainConfig(data=tuple(Path(d) for d in args.data), out=Path(args.out),
                      epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, device=args.device,
                      seed=args.seed, input_size=args.input_size, max_iters=args.max_iters,
                      cpu_threads=args.threads, depth_grad_weight=args.depth_grad_weight,
                      far_obstacles_m=args.far_obstacles, paste_walkers=args.paste_walkers,
                      init=Path(args.init) if args.init else None, model=args.model,
                      workers=args.workers)
    with _user_errors("training", TrainError, ValueError):
        result = train(cfg, progress=not args.no_progress)
    best = result.best
    print(f"wrote {result.weights} (+ .sha256): best validation mIoU {best['miou']:.3f}, "
          f"depth AbsRel {best['depth_absrel']:.3f} (epoch {best['epoch']})")
    return 0


# ------------------------------------------------------------------- eval-perception
def _weights_file(args: argparse.Namespace, hint: str = "pass --weights PATH") -> Path:
    """``--weights`` (default: the shipped weights), which must exist."""
    from perception.inference import DEFAULT_WEIGHTS

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    if not weights.is_file():
        raise UserError(f"weights file {weights} not found ({hint})")
    return weights


def cmd_eval_perception(args: argparse.Namespace) -> int:
    from perception.dataset import DatasetError
    from perception.evaluate import EvalConfig, EvalError, evaluate_perception
    from perception.inference import WeightsError

    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    if not args.data:  # collect a held-out data set first (resumable)
        _collect(args, data, resume=True)
    weights = _weights_file(args, "train with `drivestack train`, or pass --weights PATH")
    ecfg = EvalConfig(data=data, weights=weights, out=out, device=args.device,
                      cpu_threads=args.threads, max_samples=args.max_samples)
    with _user_errors("evaluation", EvalError, WeightsError, DatasetError):
        result = evaluate_perception(ecfg, progress=not args.no_progress)
    print(f"wrote {result.metrics_path}" + (f" and {result.examples_path}"
                                            if result.examples_path else ""))
    return 0


# ------------------------------------------------------------------------- calibrate
def cmd_calibrate(args: argparse.Namespace) -> int:
    from perception.calibrate import CalibrateConfig, CalibrateError, calibrate
    from perception.dataset import DatasetError
    from perception.inference import WeightsError

    weights = _weights_file(args)
    with _user_errors("calibration", CalibrateError, WeightsError, DatasetError):
        cfg = CalibrateConfig(weights=weights, data=tuple(Path(d) for d in args.data),
                              out=Path(args.out) if args.out else None, samples=args.samples,
                              labels=tuple(args.labels), device=args.device,
                              cpu_threads=args.threads)
        result = calibrate(cfg, progress=not args.no_progress)
    print(f"wrote {result.out} (+ .sha256) in {result.seconds:.0f} s")
    return 0


# ----------------------------------------------------------------------- export-onnx
def cmd_export_onnx(args: argparse.Namespace) -> int:
    from perception.export import export_onnx
    from perception.inference import WeightsError

    weights = _weights_file(args)
    try:
        out = export_onnx(weights, args.out)
    except WeightsError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {out} (+ .sha256)")
    return 0


# ----------------------------------------------------------------------------- sim
SIMS = ("embedded", "carla")
CARLA_FLAGS = ("host", "port", "timeout", "tm_port", "ego_blueprint", "town")


def _add_sim_args(p: argparse.ArgumentParser, blueprint: bool = True) -> None:
    """``--sim`` and the CARLA server's address (run, eval, collect)."""
    p.add_argument("--sim", default="embedded", metavar="SIM",
                   help="simulator: embedded (default) or carla (a CARLA 0.9.16 server, or "
                        "`drivestack serve`, at --host:--port)")
    p.add_argument("--host", help="--sim carla: the server's host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="--sim carla: its RPC port (default 2000)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="--sim carla: seconds every RPC and tick may take (default 10)")
    p.add_argument("--tm-port", type=int,
                   help="--sim carla: the Traffic Manager's port (default 8000)")
    if blueprint:
        p.add_argument("--ego-blueprint", metavar="ID",
                       help="--sim carla: the ego's blueprint (default "
                            "vehicle.lincoln.mkz_2020)")
    if blueprint:  # run and eval (collect loads each of its --maps)
        p.add_argument("--town", metavar="NAME",
                       help="--sim carla: 'current' drives the server's loaded world "
                            "(default: load the scenario's town when the server has it)")


def _sim_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions fields of ``--sim`` and the CARLA flags, checked: an unknown
    simulator or a CARLA flag without ``--sim carla`` is a user error."""
    if args.sim not in SIMS:
        raise UserError(f"--sim {args.sim}: expected one of {', '.join(SIMS)}")
    given = [f for f in CARLA_FLAGS if getattr(args, f, None) is not None]
    if args.sim != "carla":
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} needs --sim carla")
        return {"sim": args.sim}
    out: dict[str, Any] = {"sim": "carla"}
    for f in given:
        out[f] = getattr(args, f)
    if "port" in out and not 1 <= out["port"] <= 65535:
        raise UserError(f"--port {out['port']}: expected a port 1..65535")
    if "tm_port" in out and not 1 <= out["tm_port"] <= 65535:
        raise UserError(f"--tm-port {out['tm_port']}: expected a port 1..65535")
    if "timeout" in out and not (out["timeout"] > 0 and math.isfinite(out["timeout"])):
        raise UserError(f"--timeout {out['timeout']}: expected seconds > 0")
    return out


def _probe_carla(sim: dict[str, Any]) -> None:
    """The CARLA server of ``--sim carla`` answers (a user error naming it if not)."""
    from sim.carla_bridge.client import BridgeConfig, BridgeError, probe

    try:
        probe(BridgeConfig(sim.get("host", "127.0.0.1"), sim.get("port", 2000),
                           sim.get("timeout", 10.0)))
    except BridgeError as exc:
        raise UserError(str(exc)) from None


# ----------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from launch.run import RunError, RunOptions, run_closed_loop

    opts = RunOptions(scenario=args.scenario, map=args.map or "", route=args.route or "",
                      route_id=args.route_id or "", map_dir=args.map_dir or "",
                      seed=args.seed, duration=args.duration, oracle=args.oracle,
                      realtime=args.realtime, weights=args.weights or "",
                      cpu_threads=args.cpu_threads, out=args.out or "",
                      progress=not args.no_progress,
                      record_cameras=not args.no_record_cameras, live=args.live,
                      live_port=RunOptions.live_port if args.live_port is None
                      else args.live_port, **_sim_options(args))
    if opts.route and not opts.route_id:
        raise UserError("--route needs --route-id (the id of a route in the file)")
    if args.live_port is not None and not args.live:
        raise UserError("--live-port needs --live")
    try:
        return run_closed_loop(opts)
    except RunError as exc:
        raise UserError(str(exc)) from None


# ---------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses

    from launch.suite import SuiteError, SuiteRun, load_suite, run_suite, threads_per_run

    sim = _sim_options(args)
    if sim["sim"] == "carla" and (args.workers != 1 or args.ray):
        raise UserError("--sim carla drives one run at a time on one server: --workers 1, "
                        "no --ray")
    out = Path(args.out) if args.out else Path("runs") / (
        f"eval-{time.strftime('%Y%m%d-%H%M%S')}-{Path(args.suite).stem}")
    try:
        suite = load_suite(args.suite, map_dir=args.map_dir or "", oracle=args.oracle,
                           duration=args.duration, record_cameras=not args.no_record_cameras,
                           cpu_threads=args.cpu_threads if args.cpu_threads is not None
                           else threads_per_run(args.workers))
        if sim["sim"] == "carla":
            _probe_carla(sim)
            suite.runs = [SuiteRun(r.name, dataclasses.replace(r.options, **sim))
                          for r in suite.runs]
        report = run_suite(suite, out, workers=args.workers, ray_address=args.ray,
                           progress=not args.no_progress)
    except SuiteError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out / 'results.json'}")
    if report.get("interrupted"):
        done = len(report["runs"]) - len(report["not_run"])
        print(f"error: interrupted: {done} of {len(report['runs'])} run(s) started, the "
              "ones in flight were stopped", file=sys.stderr)
        return 130
    if report["failed"]:
        print(f"error: {len(report['failed'])} run(s) failed: {', '.join(report['failed'])} "
              f"(see their log.txt under {out})", file=sys.stderr)
        return 1
    return 0


# -------------------------------------------------------------------------- replay
def cmd_replay(args: argparse.Namespace) -> int:
    import traceback

    from launch.replay import (
        ReplayError,
        ReplayFailure,
        ReplayOptions,
        Tolerance,
        parse_nodes,
        parse_params,
        replay,
    )

    try:
        params = parse_params(args.param)
        opts = ReplayOptions(
            path=Path(args.file), nodes=parse_nodes(args.nodes) if args.nodes else None,
            params=params, tolerance=Tolerance(args.atol, args.rtol), update=args.update,
            provenance={"command": " ".join(sys.argv), "git": git_revision()})
        result = replay(opts)
    except ReplayError as exc:
        raise UserError(str(exc)) from None
    except ReplayFailure as exc:
        traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.lines():
        print(line)
    return 1 if args.check and not result.ok else 0


# ----------------------------------------------------------------------------- viz
def cmd_viz(args: argparse.Namespace) -> int:
    from launch.viz import VideoOptions, VizError, make_video, to_foxglove

    if not args.output and not args.foxglove:
        raise UserError("viz writes nothing without -o VIDEO.mp4 or --foxglove OUT.mcap")
    recording = Path(args.file)
    try:
        if args.output:
            video = make_video(VideoOptions(
                recording=recording, output=Path(args.output), camera=args.camera,
                fps=args.fps, weights=Path(args.weights) if args.weights else None,
                segmentation=not args.no_segmentation, start_s=args.start, end_s=args.end),
                progress=not args.no_progress)
            print(f"wrote {video.path}: {video.frames} frames, {video.width} x "
                  f"{video.height} px, {video.fps:g} fps")
        if args.foxglove:
            fox = to_foxglove(recording, Path(args.foxglove), args.start, args.end)
            print(f"wrote {fox.path}: {fox.messages} messages on {len(fox.topics)} topics "
                  "(Foxglove schemas)")
    except VizError as exc:
        raise UserError(str(exc)) from None
    return 0


# --------------------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from launch.bench import (
        DEFAULT_BENCH_DIR,
        BenchError,
        describe,
        discover,
        report,
        run_benches,
        summary_lines,
    )

    bench_dir = Path(args.bench_dir) if args.bench_dir else DEFAULT_BENCH_DIR
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be positive seconds, not {args.timeout:g}")
    try:
        if args.list:
            for name, script in discover(bench_dir).items():
                print(f"{name:<14}{describe(script)}")
            return 0
        results, interrupted = run_benches(bench_dir, args.names, quick=args.quick,
                                           timeout_s=args.timeout)
    except BenchError as exc:
        raise UserError(str(exc)) from None
    figures = report(results, interrupted)
    print("== summary")
    for line in summary_lines(results):
        print(line)
    if args.out:
        try:
            Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {args.out}")
    print(json.dumps(figures))
    if interrupted:
        print("error: interrupted: the running benchmark was stopped", file=sys.stderr)
        return 130
    if figures["failed"]:
        print(f"error: {len(figures['failed'])} benchmark(s) failed: "
              f"{', '.join(figures['failed'])}", file=sys.stderr)
        return 1
    if args.check and figures["targets_missed"]:
        print(f"error: target(s) missed: {', '.join(figures['targets_missed'])}",
              file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drivestack",
        description="Camera-based autonomous-driving stack for simulation: CNN perception, "
                    "planning and control in a closed loop over a ZeroMQ bus.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int]):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    ns_help = "bus namespace (default: $DRIVESTACK_NS, else the only live one)"

    p = add("run", "drive a closed-loop scenario: simulator, CNN perception (or --oracle), "
                   "planning, control and recorder as processes; prints the driving score",
            cmd_run)
    p.add_argument("--scenario", default="town_grid_route",
                   help="built-in scenario name or scenario YAML (default town_grid_route)")
    p.add_argument("--map", help="map: built-in name or .xodr file (overrides the scenario's)")
    p.add_argument("--route", metavar="FILE.xml", help="CARLA leaderboard route file")
    p.add_argument("--route-id", metavar="ID", help="the route's id in --route")
    p.add_argument("--map-dir", help="where a route's town is found as <town>.xodr")
    p.add_argument("--seed", type=int, help="scenario seed (overrides the scenario's)")
    p.add_argument("--duration", type=float, help="simulated seconds at most")
    p.add_argument("--oracle", action="store_true",
                   help="ground-truth objects and lights instead of the CNN")
    p.add_argument("--realtime", action="store_true",
                   help="real-time lockstep (late commands reused, counted) instead of strict")
    p.add_argument("--weights", help="perception weights (default: the shipped ones)")
    p.add_argument("--cpu-threads", type=int, default=1, metavar="N",
                   help="perception's inference threads on the CPU (default 1: in the "
                        "loop a second one competes with the other nodes for the cores; "
                        "bench/closed_loop.py measures both)")
    p.add_argument("--out", help="run directory (default runs/<time>-<scenario>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-record-cameras", action="store_true", help=NO_RECORD_CAMERAS_HELP)
    p.add_argument("--live", action="store_true",
                   help="serve the running bus to Foxglove at ws://127.0.0.1:PORT (needs "
                        "pip install 'drivestack[viz]')")
    p.add_argument("--live-port", type=int, metavar="PORT",
                   help="port of the --live WebSocket server (default 8765)")
    _add_sim_args(p)

    p = add("eval", "many closed-loop runs (a suite YAML or a CARLA leaderboard route XML) "
                    "in parallel, one table and results.json", cmd_eval)
    p.add_argument("suite", help="suite YAML, or a leaderboard route XML (every route whose "
                                 "town is found)")
    p.add_argument("--workers", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run on a Ray cluster (e.g. auto or ray://host:10001)")
    p.add_argument("--map-dir", help="where routes' towns are found as <town>.xodr")
    p.add_argument("--oracle", action="store_true", help="every run in oracle mode")
    p.add_argument("--duration", type=float, help="cap every run at this many sim seconds")
    p.add_argument("--no-record-cameras", action="store_true", help=NO_RECORD_CAMERAS_HELP)
    p.add_argument("--cpu-threads", type=int, metavar="N",
                   help="each run's perception threads (default: the CPUs / --workers "
                        "less one for the run's other nodes, 1 to 4)")
    p.add_argument("--out", help="output directory (default runs/eval-<time>-<suite>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_sim_args(p)

    p = add("replay", "re-run perception, planning and control on a recording's inputs and "
                      "compare their outputs with the recorded ones (regression test)",
            cmd_replay)
    p.add_argument("file", metavar="FILE", help="the recording (drive.mcap of a run directory)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 when an output differs from the recording")
    mode.add_argument("--update", action="store_true",
                      help="rewrite the recording with the replayed outputs (atomically)")
    p.add_argument("--nodes", metavar="LIST",
                   help="nodes to re-run, e.g. planning,control (default perception,planning,"
                        "control; planning,control for an --oracle recording)")
    p.add_argument("--atol", type=float, default=1e-6,
                   help="absolute float tolerance, in each field's unit (default 1e-6)")
    p.add_argument("--rtol", type=float, default=1e-6,
                   help="relative float tolerance (default 1e-6)")
    p.add_argument("--param", action="append", default=[], metavar="NODE.KEY=VALUE",
                   help="override a node parameter (YAML value), e.g. planning.max_speed=5")

    p = add("viz", "draw a recording as a video (camera with segmentation and 3D boxes, "
                   "bird's-eye view) and/or convert it to Foxglove's schemas", cmd_viz)
    p.add_argument("file", metavar="FILE.mcap", help="the recording (drive.mcap of a run)")
    p.add_argument("-o", "--output", metavar="VIDEO.mp4", help="write the video here")
    p.add_argument("--foxglove", metavar="OUT.mcap",
                   help="write a Foxglove MCAP here (needs pip install 'drivestack[viz]')")
    p.add_argument("--fps", type=float, help="video frame rate (default: the camera's)")
    p.add_argument("--camera", default="front", help="camera of the video (default front)")
    seg = p.add_mutually_exclusive_group()
    seg.add_argument("--weights", metavar="W",
                     help="perception weights for the overlay (default: the shipped ones)")
    seg.add_argument("--no-segmentation", action="store_true",
                     help="no segmentation overlay (skips the network)")
    p.add_argument("--start", type=float, metavar="S", help="from this sim time (s)")
    p.add_argument("--end", type=float, metavar="S", help="up to this sim time (s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("bench", "run the benchmarks of bench/ (each measures against a baseline in "
                     "the same run), sum up their targets; figures as JSON on the last line",
            cmd_bench)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmarks to run, in this order (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--quick", action="store_true",
                   help="each script's --quick: few samples, a smoke run")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="stop a benchmark still running after S seconds (a failure)")
    p.add_argument("--out", metavar="FILE.json", help="also write every figure here")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a benchmark misses a target, too")
    p.add_argument("--bench-dir", metavar="DIR",
                   help="folder of the scripts (default: bench/ of this source checkout)")

    p = add("collect", "collect perception training data (RGB, labels, depth, boxes) from "
                       "the embedded simulator on the built-in maps", cmd_collect)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--maps", nargs="+", default=["town_grid", "rural", "highway"],
                   metavar="MAP", help="maps, used in turn: built-in names, or <MAP>.xodr in "
                                       "--map-dir (default: the three built-in maps)")
    p.add_argument("--episodes", type=int, default=6, help="episodes in all (default 6)")
    p.add_argument("--frames-per-episode", type=int, default=50,
                   help="samples per episode (default 50)")
    p.add_argument("--every", type=int, default=5, help="sim ticks between samples (default 5)")
    p.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    p.add_argument("--image-size", type=_image_size, default=(640, 360), metavar="WxH",
                   help="camera image size (default 640x360)")
    p.add_argument("--resume", action="store_true",
                   help="continue a collection: keep finished episodes, redo the rest")
    p.add_argument("--jobs", type=int, default=1,
                   help="episodes collected in parallel, one process each (default 1)")
    p.add_argument("--vehicle-density", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="NPC vehicles per spawn point near the ego, drawn per episode in "
                        "[LOW, HIGH] (default 0.4 1.0; 0 0.1 for empty junctions)")
    p.add_argument("--pedestrian-density", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="pedestrians per spawn point near the ego, drawn per episode in "
                        "[LOW, HIGH] (default 0.5 1.0)")
    p.add_argument("--drop-crosswalks", type=float, metavar="P",
                   help="share of the map's crosswalks left unpainted, drawn per episode "
                        "(default 0; junctions without zebras, as in Town01)")
    _add_sim_args(p, blueprint=False)
    p.add_argument("--map-dir", help="directory of other maps, as <MAP>.xodr (evaluation "
                                     "data on maps never trained on)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("train", "train the perception network on a collected data set", cmd_train)
    p.add_argument("--data", required=True, nargs="+", metavar="DIR",
                   help="data set directories (drivestack collect), trained on as one set")
    p.add_argument("--out", required=True, help="weights file to write (+ .sha256)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--input-size", type=_image_size, default=(320, 160), metavar="WxH",
                   help="network input size, multiples of 32 (default 320x160)")
    p.add_argument("--model", default="small",
                   help="network size: small (the shipped CPU network) or large (for a "
                        "GPU, with --input-size 640x352; default small)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="data-loading processes (default 0: in the training process, the "
                        "samples kept decoded in memory; on a GPU use several)")
    p.add_argument("--max-iters", type=int, help="stop after this many steps")
    p.add_argument("--init", help="start from these weights (fine-tuning; tensors whose "
                                  "shape changed start fresh)")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--paste-walkers", type=float, default=0.0, metavar="P",
                   help="probability that a training sample gets one or two walkers cut "
                        "from other samples pasted, most over vehicles (default 0: off)")
    p.add_argument("--depth-grad-weight", type=float, default=1.0, metavar="W",
                   help="weight of the depth-gradient loss that keeps depth steps at "
                        "object outlines sharp; 0 = off (default 1)")
    p.add_argument("--far-obstacles", type=float, default=0.0, metavar="M",
                   help="vehicle and pedestrian pixels count more in the depth loss with "
                        "the square of their distance beyond 10 m, out to M m (each object "
                        "then about equal); 0 = off (default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("eval-perception", "measure perception weights on held-out data: mIoU, depth, "
                               "detection precision/recall, tracking, lights",
            cmd_eval_perception)
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
    p.add_argument("--out", default="runs/eval-perception",
                   help="output directory: metrics.json, examples.png "
                        "(default runs/eval-perception)")
    p.add_argument("--data", help="a collected data set to evaluate on; without it one is "
                                   "collected into OUT/data with the options below")
    p.add_argument("--maps", nargs="+", default=["town_grid", "rural", "highway"],
                   metavar="MAP", help="maps to collect on: built-in names, or <MAP>.xodr in "
                                       "--map-dir (default: the three built-in maps)")
    p.add_argument("--map-dir", help="directory of other maps, as <MAP>.xodr")
    p.add_argument("--episodes", type=int, default=6, help="episodes to collect (default 6)")
    p.add_argument("--frames-per-episode", type=int, default=30,
                   help="samples per episode (default 30)")
    p.add_argument("--every", type=int, default=6, help="sim ticks between samples (default 6)")
    p.add_argument("--seed", type=int, default=1000,
                   help="collection seed, other than the training data's (default 1000)")
    p.add_argument("--jobs", type=int, default=1, help="collection processes (default 1)")
    p.add_argument("--max-samples", type=int, help="evaluate at most this many samples")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("calibrate", "fit how far perception weights misplace objects in range, on "
                         "their training data, and write it into the weights file",
            cmd_calibrate)
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="collected data sets (the weights' training data)")
    p.add_argument("--out", help="weights file to write (default: --weights, in place)")
    p.add_argument("--samples", type=int, default=400,
                   help="samples per data set, evenly spread (default 400)")
    p.add_argument("--labels", nargs="+", default=["vehicle", "pedestrian"],
                   help="labels to fit, each needing 30 matches; the others keep their "
                        "curves (default vehicle pedestrian)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("export-onnx", "export perception weights to ONNX (for the onnxruntime backend)",
            cmd_export_onnx)
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
    p.add_argument("--out", required=True, help="ONNX file to write (+ .sha256)")

    p = add("topics", "print the topic table", cmd_topics)
    p.add_argument("--live", action="store_true", help="also show live publishers")
    p.add_argument("--ns", help=ns_help)

    p = add("echo", "print the messages on a topic of a live bus", cmd_echo)
    p.add_argument("topic")
    p.add_argument("--ns", help=ns_help)
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N messages")
    p.add_argument("--full-arrays", action="store_true", help="print arrays in full")

    p = add("hz", "print the rate of a topic of a live bus", cmd_hz)
    p.add_argument("topic")
    p.add_argument("--ns", help=ns_help)
    p.add_argument("-w", "--window", type=int, default=100, help="messages in the window")

    p = add("launch", "start the nodes of a launch file (name or path)", cmd_launch)
    p.add_argument("file", help="launch file: a path, or a name in launch/files (e.g. demo)")
    p.add_argument("overrides", nargs="*", metavar="arg:=value")
    p.add_argument("--ns", help="bus namespace (default: a new one for this launch)")

    p = add("record", "record a live bus to MCAP until Ctrl-C", cmd_record)
    p.add_argument("-o", "--output", help="MCAP file (default runs/record-<time>/drive.mcap)")
    p.add_argument("--topics", nargs="*", default=[], help="only these topics")
    p.add_argument("--compression", choices=("lz4", "zstd", "none"), default="lz4")
    p.add_argument("--ns", help=ns_help)

    p = add("serve", "the embedded simulator as a CARLA 0.9.16 server: the unmodified "
                     "carla client (and CARLA scripts) drive it", cmd_serve)
    p.add_argument("--map", default="town_grid",
                   help="built-in map name or .xodr file (default town_grid)")
    p.add_argument("--map-dir", help="directory of more .xodr maps that load_world can load")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--vehicles", type=int, default=0, help="NPC vehicles (default 0)")
    p.add_argument("--walkers", type=int, default=0, help="NPC walkers (default 0)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=2000, help="RPC port (default 2000)")
    p.add_argument("--streaming-port", type=int, default=2001,
                   help="sensor streaming port (default 2001)")
    p.add_argument("--tm-port", type=int, default=8000,
                   help="traffic manager port (default 8000)")

    p = add("maps", "list the built-in maps, or render one to a PNG", cmd_maps)
    p.set_defaults(action=None)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    r = actions.add_parser("render", help="draw a map top-down to a PNG",
                           description="Draw a map top-down (lanes, sidewalks, markings, "
                                       "junctions, crosswalks, traffic lights) to a PNG.")
    r.add_argument("map", help="built-in map name (see `drivestack maps`) or .xodr file")
    r.add_argument("-o", "--output", help="PNG file (default: <map>.png)")
    r.add_argument("--resolution", type=float, metavar="M_PER_PX",
                   help="metres per pixel (default: the finest that fits 4096 px)")
    r.add_argument("--spawn-points", action="store_true", help="also draw spawn points")
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, UnknownTopicError, TransportError, ConfigError, MapError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `drivestack echo ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
