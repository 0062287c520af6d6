"""``drivestack eval SUITE``: many closed-loop runs, in parallel, one table.

SUITE is either a suite YAML::

    name: smoke                       # optional
    oracle: false                     # default for every run (overridable per run)
    duration: 60                      # optional default cap, simulated seconds
    map_dir: ../shared/maps/carla     # optional default, relative to the file
    runs:
      - {scenario: town_grid_route, seed: 1}
      - {scenario: pedestrian_steps_out, oracle: true}
      - {route: ../shared/routes/carla_lb1_town01_town02.xml, route_id: "0"}

(every key checked; paths relative to the suite file), or a CARLA leaderboard route
XML: one run per route whose town map is found (``--map-dir``, else a built-in map
of that name); the others are listed as skipped.

Each run is a whole ``drivestack run`` in its own process and its own bus namespace
(``OUT/<run name>/``: scenario.yaml, drive.mcap, metrics.json, log.txt), so runs
never share state and a crash costs one run. ``--workers N`` runs N at once from a
thread pool that waits on the processes; ``--ray ADDRESS`` runs each as a Ray task on
a cluster instead (every node needs drivestack installed; ``OUT`` must be on a
shared file system). ``OUT/results.json``: each run's options, exit status and
metrics, and the means of driving score, route completion and infraction penalty
over the runs that left metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from launch.run import RunOptions
from launch.signals import handled_signals

_SUITE_KEYS = ("name", "oracle", "duration", "map_dir", "runs")
_RUN_KEYS = ("name", "scenario", "map", "route", "route_id", "map_dir", "seed", "duration",
             "oracle", "realtime", "weights")


class SuiteError(ValueError):
    """A bad suite file or option (one line naming the file and the key)."""


@dataclass(frozen=True)
class SuiteRun:
    name: str
    options: RunOptions


@dataclass
class Suite:
    name: str
    runs: list[SuiteRun]
    skipped: list[str] = field(default_factory=list)  # why each left-out route is


def _resolve(base: Path, value: str) -> str:
    return value if not value or Path(value).is_absolute() else str((base / value).resolve())


def load_suite(path: str | Path, map_dir: str = "", oracle: bool = False,
               duration: float | None = None, record_cameras: bool = True,
               cpu_threads: int | None = None) -> Suite:
    """A suite from YAML or a leaderboard route XML (see the module doc);
    ``record_cameras`` False: no run records its camera images; ``cpu_threads``:
    every run's perception threads (see :func:`threads_per_run`)."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file (a suite YAML or a leaderboard "
                         "route XML)")
    if path.suffix.lower() == ".xml":
        suite = _route_file_suite(path, map_dir, oracle, duration)
    else:
        suite = _yaml_suite(path, map_dir, oracle, duration)
    changes: dict[str, Any] = {}
    if not record_cameras:
        changes["record_cameras"] = False
    if cpu_threads is not None:
        if cpu_threads < 1:
            raise SuiteError(f"--cpu-threads must be >= 1, not {cpu_threads}")
        changes["cpu_threads"] = cpu_threads
    if changes:
        suite.runs = [SuiteRun(r.name, replace(r.options, **changes)) for r in suite.runs]
    return suite


def threads_per_run(workers: int, cpus: int | None = None) -> int:
    """Perception threads for each of ``workers`` runs at once on this machine's
    ``cpus`` (default: all): the run's share of the cores less one for its
    simulator and other nodes, at least 1 and at most 4. Why: PyTorch's OpenMP
    threads spin while they wait, so two runs of two threads each on two cores
    starve each other (perception measured 100-270 ms a frame instead of 28), and
    one run alone on two cores ticks faster with one thread than with two
    (bench/closed_loop.py: 20.2-20.7 against 18.3-19.0 ticks/s). The cap of 4 is
    a guess, not measured: a 320x160 input gives little work to split further."""
    share = (cpus or os.cpu_count() or 1) // max(workers, 1)
    return max(1, min(4, share - 1))


def _yaml_suite(path: Path, map_dir: str, oracle: bool, duration: float | None) -> Suite:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: not a readable YAML file ({exc})".splitlines()[0]) \
            from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping with 'runs'")
    for key in data:
        if key not in _SUITE_KEYS:
            raise SuiteError(f"{path}: unknown key {key!r} (expected {', '.join(_SUITE_KEYS)})")
    base = path.resolve().parent
    runs_data = data.get("runs")
    if not isinstance(runs_data, list) or not runs_data:
        raise SuiteError(f"{path}: runs: expected a non-empty list of runs")
    default_dir = map_dir or _resolve(base, str(data.get("map_dir", "")))
    default_oracle = bool(data.get("oracle", False)) or oracle
    default_duration = duration if duration is not None else data.get("duration")
    runs: list[SuiteRun] = []
    for i, r in enumerate(runs_data):
        key = f"runs[{i}]"
        if not isinstance(r, dict):
            raise SuiteError(f"{path}: {key}: expected a mapping")
        for k in r:
            if k not in _RUN_KEYS:
                raise SuiteError(f"{path}: {key}.{k}: unknown key (expected "
                                 f"{', '.join(_RUN_KEYS)})")
        try:
            opts = RunOptions(
                scenario=_resolve(base, str(r["scenario"])) if str(
                    r.get("scenario", "")).endswith((".yaml", ".yml"))
                else str(r.get("scenario", "town_grid_route")),
                map=_resolve(base, str(r["map"])) if str(r.get("map", "")).endswith(".xodr")
                else str(r.get("map", "")),
                route=_resolve(base, str(r.get("route", ""))),
                route_id=str(r.get("route_id", "")),
                map_dir=_resolve(base, str(r["map_dir"])) if "map_dir" in r else default_dir,
                seed=None if r.get("seed") is None else int(r["seed"]),
                duration=(float(r["duration"]) if r.get("duration") is not None else
                          None if default_duration is None else float(default_duration)),
                oracle=bool(r.get("oracle", default_oracle)),
                realtime=bool(r.get("realtime", False)),
                weights=_resolve(base, str(r.get("weights", ""))), progress=False)
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"{path}: {key}: {exc}") from None
        if opts.route and not opts.route_id:
            raise SuiteError(f"{path}: {key}.route_id: a route file needs a route id")
        name = str(r.get("name") or _default_name(opts, i))
        runs.append(SuiteRun(name, opts))
    names = [r.name for r in runs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SuiteError(f"{path}: run names must be unique; repeated: {', '.join(sorted(dup))}")
    return Suite(str(data.get("name") or path.stem), runs)


def _default_name(opts: RunOptions, i: int) -> str:
    what = (f"route{opts.route_id}" if opts.route
            else Path(opts.scenario).stem if opts.scenario else "run")
    seed = f"_s{opts.seed}" if opts.seed is not None else ""
    return f"{i:02d}_{what}{seed}"


def _route_file_suite(path: Path, map_dir: str, oracle: bool,
                      duration: float | None) -> Suite:
    from sim.maps import MapError, resolve_town
    from sim.routes import RouteError, load_routes

    try:
        routes = load_routes(path)
    except RouteError as exc:
        raise SuiteError(str(exc)) from None
    runs, skipped = [], []
    for r in routes:
        try:
            resolve_town(r.town, map_dir or None)
        except MapError:
            skipped.append(f"route {r.id}: town {r.town} not found "
                           f"({'in ' + map_dir if map_dir else 'no --map-dir'})")
            continue
        runs.append(SuiteRun(f"route{r.id}_{r.town}", RunOptions(
            route=str(path.resolve()), route_id=r.id, map_dir=map_dir, oracle=oracle,
            duration=duration, progress=False)))
    if not runs:
        raise SuiteError(f"{path}: no route whose town map is found ({'; '.join(skipped)})")
    return Suite(path.stem, runs, skipped)


# ------------------------------------------------------------------------ running
def run_command(opts: RunOptions, out: Path) -> list[str]:
    """The ``drivestack run`` command line of one run."""
    cmd = [sys.executable, "-m", "launch.cli", "run", "--no-progress", "--out", str(out),
           "--scenario", opts.scenario]
    for flag, value in (("--map", opts.map), ("--route", opts.route),
                        ("--route-id", opts.route_id), ("--map-dir", opts.map_dir),
                        ("--weights", opts.weights)):
        if value:
            cmd += [flag, value]
    if opts.seed is not None:
        cmd += ["--seed", str(opts.seed)]
    if opts.duration is not None:
        cmd += ["--duration", str(opts.duration)]
    if opts.oracle:
        cmd.append("--oracle")
    if opts.realtime:
        cmd.append("--realtime")
    if not opts.record_cameras:
        cmd.append("--no-record-cameras")
    cmd += ["--cpu-threads", str(opts.cpu_threads)]
    if opts.sim == "carla":
        cmd += ["--sim", "carla", "--host", opts.host, "--port", str(opts.port), "--timeout",
                str(opts.timeout), "--tm-port", str(opts.tm_port), "--ego-blueprint",
                opts.ego_blueprint]
        if opts.town:
            cmd += ["--town", opts.town]
    return cmd


def execute_run(cmd: list[str], out: str,
                started: Callable[[subprocess.Popen[str]], None] | None = None
                ) -> dict[str, Any]:
    """Run one ``drivestack run`` to its end; its exit status, time and metrics. (Also
    the body of a Ray task: plain arguments and result.) ``started`` is told the
    child process as soon as it exists (to signal it)."""
    t0 = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        if started is not None:
            started(proc)
        _, stderr = proc.communicate()
    metrics_path = Path(out) / "metrics.json"
    metrics = None
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except ValueError:
            metrics = None
    err = stderr.strip().splitlines()
    return {"returncode": proc.returncode, "wall_s": round(time.monotonic() - t0, 1),
            "metrics": metrics, "error": err[-1] if proc.returncode and err else None}


def run_suite(suite: Suite, out: Path, workers: int = 1, ray_address: str | None = None,
              progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every run of ``suite`` into ``out/<run name>``; writes and returns results.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if workers < 1:
        raise SuiteError("--workers must be >= 1")
    if out.exists() and any(out.iterdir()):
        raise SuiteError(f"--out {out} exists and is not empty (an evaluation never "
                         "overwrites another)")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(r, run_command(r.options, out / r.name), str(out / r.name)) for r in suite.runs]
    results: dict[str, dict[str, Any]] = {}
    interrupted = False
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  disable=not progress) as bar:
        task = bar.add_task(f"eval {suite.name}", total=len(jobs))
        if ray_address is not None:
            outcomes = _run_on_ray(ray_address, [(c, o) for _, c, o in jobs])
            for (r, _, _), res in zip(jobs, outcomes, strict=True):
                results[r.name] = res
                bar.advance(task)
        else:
            runs = LocalRuns()
            with handled_signals(runs.stop), ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(runs.execute, c, o): r for r, c, o in jobs}
                for f in as_completed(futures):
                    results[futures[f].name] = f.result()
                    bar.advance(task)
            interrupted = runs.interrupted
    report = _report(suite, results, time.monotonic() - t0)
    report["interrupted"] = interrupted
    (out / "results.json").write_text(json.dumps(report, indent=1))
    for line in table_lines(report):
        log(line)
    return report


class LocalRuns:
    """The runs of an evaluation on this machine, as child processes, and how a
    Ctrl-C or SIGTERM to the evaluation ends them: the runs in flight get SIGTERM
    (each stops its nodes and keeps what it recorded, as ``drivestack run`` does on
    a signal), the queued ones are not started (their result says so), and the
    evaluation writes results.json with what was done. Without this, a SIGTERM
    killed the evaluation and left its runs driving on, and a Ctrl-C stopped the
    runs in flight and went on with the next ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[str]] = set()
        self.interrupted = False

    def execute(self, cmd: list[str], out: str) -> dict[str, Any]:
        """:func:`execute_run`, unless the evaluation was interrupted before it began."""
        if self.interrupted:
            return {"returncode": None, "wall_s": 0.0, "metrics": None,
                    "error": "not run: the evaluation was interrupted"}
        proc: subprocess.Popen[str] | None = None

        def started(p: subprocess.Popen[str]) -> None:
            nonlocal proc
            proc = p
            with self._lock:
                self._live.add(p)
                if self.interrupted:  # the signal came while it was starting
                    p.terminate()

        try:
            return execute_run(cmd, out, started)
        finally:
            with self._lock:
                self._live.discard(proc)  # type: ignore[arg-type]

    def stop(self, *_: object) -> None:
        """The signal handler: interrupt the evaluation (idempotent)."""
        with self._lock:
            self.interrupted = True
            for p in self._live:
                if p.poll() is None:
                    p.terminate()


def _run_on_ray(address: str, jobs: Sequence[tuple[list[str], str]]) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise SuiteError("--ray needs the ray package (pip install 'drivestack[ray]')") \
            from None
    ray.init(address=address)
    try:
        task = ray.remote(num_cpus=2)(execute_run)
        return list(ray.get([task.remote(cmd, o) for cmd, o in jobs]))
    finally:
        ray.shutdown()


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return round(sum(vals) / len(vals), 3) if vals else None


def _report(suite: Suite, results: dict[str, dict[str, Any]], wall_s: float) -> dict[str, Any]:
    runs = []
    for r in suite.runs:
        res = results[r.name]
        runs.append({"name": r.name, "options": asdict(r.options), **res})
    scored = [x["metrics"] for x in runs if x["metrics"]]
    return {
        "suite": suite.name, "runs": runs, "skipped": suite.skipped,
        "wall_s": round(wall_s, 1),
        "failed": [x["name"] for x in runs if x["returncode"] not in (0, None)],
        "not_run": [x["name"] for x in runs if x["returncode"] is None],
        "mean": {k: _mean([m.get(k) for m in scored])
                 for k in ("driving_score", "route_completion", "infraction_penalty")},
        "collisions": sum(v for m in scored for k, v in
                          m.get("infractions", {}).get("counts", {}).items()
                          if k.startswith("collision")),
    }


def table_lines(report: dict[str, Any]) -> list[str]:
    def f(v: Any, fmt: str = "{:.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    rows = [("run", "DS", "RC %", "IP", "infractions", "end", "wall s")]
    for x in report["runs"]:
        m = x["metrics"] or {}
        counts = m.get("infractions", {}).get("counts", {})
        infr = ",".join(f"{k}:{v}" for k, v in counts.items() if v) or "-"
        end = m.get("end_reason") or (x["error"] or f"exit {x['returncode']}")
        rows.append((x["name"], f(m.get("driving_score")), f(m.get("route_completion")),
                     f(m.get("infraction_penalty"), "{:.3f}"), infr, str(end),
                     f(x["wall_s"])))
    mean = report["mean"]
    rows.append(("mean", f(mean["driving_score"]), f(mean["route_completion"]),
                 f(mean["infraction_penalty"], "{:.3f}"), f"collisions {report['collisions']}",
                 "", f(report["wall_s"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines += [f"skipped {s}" for s in report["skipped"]]
    return lines
