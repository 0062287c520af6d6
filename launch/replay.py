"""``drivestack replay``: a recording as a regression test.

The nodes are pure functions of the messages they receive (docs: ARCHITECTURE.md),
so feeding a recording's inputs to the same node classes must give the recorded
outputs again. Replay is open loop: the recorded sensor and state messages are
published, in the recorded (log-time) order, to the real node classes on one
:class:`bus.InProcessContext` (no processes), and after each message the executor
runs every callback it triggers before the next is fed. Each output is then
matched with the recorded output of the same topic and ``header.frame``.

Which nodes. ``perception``, ``planning`` and ``control`` by default; a recording
made with ``--oracle`` (its /perception/objects come from the oracle) has no
perception output to compare, so there its oracle outputs are inputs. A node not
re-run has its recorded outputs fed to the next: ``planning,control`` feeds the
recorded /perception/objects and /perception/traffic_light to planning; ``control``
alone feeds the recorded /planning/trajectory. What is fed is generic: every topic
a re-run node subscribes to that no re-run node publishes.

Node classes and parameters come from the launch file ``drivestack run`` uses
(``launch/files/closed_loop.yaml``) with the run directory's ``scenario.yaml`` (next
to the .mcap: planning's route) as its ``scenario``, since the recorder stores no
node parameters; ``--param node.key=value`` overrides one (a YAML value), e.g.
``perception.weights=W.pt`` for a run made with ``--weights W.pt`` (the default is
the shipped weights) or ``perception.device=cpu``. Perception's inference gets every
core the process may use (``perception.cpu_threads``; the run gives it one).

Comparison. Integers, booleans, strings and array shapes and dtypes must be equal;
floats (scalars and arrays, ``header.stamp`` included: it is sim time) within
``|replayed - recorded| <= atol + rtol * |recorded|``. Wall-clock fields are not
compared because no output carries one: the nodes run without /diagnostics
(NodeStatus), and MCAP log/publish times are not message fields. A recorded output
the replay does not produce, or one produced that the recording lacks, is a
mismatch; outputs for frames after the last recorded output of their topic (a
recording cut short) are counted but not compared.

``--update`` writes the recording again with the re-run outputs in place of the
recorded ones (same inputs, other topics and metadata, plus a ``replay_update``
metadata record saying how), to a temporary file then renamed over the original.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bus import Executor, InProcessContext, Node
from bus.recording import RecordedMessage, Recording, RecordingError, RecordingWriter
from bus.schema import is_struct, struct_fields
from bus.serialization import DecodeError, from_bytes, join_frames
from bus.topics import CAMERA_PREFIX, lookup
from bus.transport import Delivery

#: The nodes replay can re-run, in pipeline order (each feeds the next).
NODE_NAMES = ("perception", "planning", "control")
#: What ``drivestack run`` writes next to drive.mcap: the scenario that was driven.
SCENARIO_FILE = "scenario.yaml"
#: The Metadata record ``--update`` adds (and replaces on a later update).
UPDATE_METADATA = "replay_update"
_ORACLE_TOPIC = "/perception/objects"


class ReplayError(ValueError):
    """A user error (bad file, unknown node or parameter, missing topic): one line
    naming the file or topic and what was expected."""


class ReplayFailure(RuntimeError):
    """A re-run node raised: a regression, reported with the frame and topic being
    fed (the cause holds the node's exception)."""


# ----------------------------------------------------------------------- options
@dataclass(frozen=True)
class Tolerance:
    """How close a replayed float must be to the recorded one, as numpy's ``isclose``
    with the recording as reference: ``|replayed - recorded| <= atol + rtol *
    |recorded|``. ``atol`` is in the field's own unit (m, m/s, s, ...)."""

    atol: float = 1e-6
    rtol: float = 1e-6

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ReplayError(f"--atol and --rtol must be >= 0, got {self.atol:g} and "
                              f"{self.rtol:g}")


@dataclass(frozen=True)
class ReplayOptions:
    """One replay. ``nodes`` None: every node the recording can re-run.
    ``params``: {node: {key: value}} over the launch file's parameters.
    ``provenance``: what ``--update`` stores about itself (command line, git)."""

    path: Path
    nodes: tuple[str, ...] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    tolerance: Tolerance = field(default_factory=Tolerance)
    update: bool = False
    provenance: dict[str, str] = field(default_factory=dict)


def parse_nodes(text: str) -> tuple[str, ...]:
    """``--nodes planning,control`` -> the names in pipeline order."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NODE_NAMES]
    if unknown or not names:
        raise ReplayError(f"--nodes {text!r}: expected a comma-separated subset of "
                          f"{','.join(NODE_NAMES)}" + (f", not {unknown[0]!r}" if unknown
                                                       else ""))
    return tuple(n for n in NODE_NAMES if n in names)


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--param planning.max_speed=3`` -> {"planning": {"max_speed": 3}}; the value
    is read as YAML (numbers, booleans, lists)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, text = item.partition("=")
        node, dot, key = target.partition(".")
        if not sep or not dot or not node or not key:
            raise ReplayError(f"--param {item!r}: expected NODE.KEY=VALUE, e.g. "
                              "planning.max_speed=5")
        if node not in NODE_NAMES:
            raise ReplayError(f"--param {item!r}: unknown node {node!r}, expected one of "
                              f"{', '.join(NODE_NAMES)}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ReplayError(f"--param {item!r}: the value is not a YAML value") from None
        out.setdefault(node, {})[key] = value
    return out


# -------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class FieldDiff:
    """The largest difference found in one output: ``path`` into the message (e.g.
    ``poses[12, 0]``, ``control.throttle``), both values as text, and ``excess`` =
    |replayed - recorded| / (atol + rtol |recorded|) for floats (> 1: outside the
    tolerance), inf for anything compared exactly (or a missing message)."""

    frame: int
    path: str
    recorded: str
    replayed: str
    excess: float

    @property
    def mismatch(self) -> bool:
        return self.excess > 1.0


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.9g}"
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{'x'.join(map(str, value.shape))}]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _worse(a: FieldDiff | None, b: FieldDiff | None) -> FieldDiff | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.excess > a.excess else a


def _float_excess(recorded: np.ndarray, replayed: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Element-wise excess (0 where equal, NaN and infinities included)."""
    a = recorded.astype(np.float64, copy=False)
    b = replayed.astype(np.float64, copy=False)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.abs(b - a) / (tol.atol + tol.rtol * np.abs(a))
    excess = np.where(same, 0.0, excess)
    return np.where(np.isnan(excess), np.inf, excess)


def _array_diff(rec: np.ndarray, rep: np.ndarray, tol: Tolerance, path: str,
                frame: int) -> FieldDiff | None:
    if rec.shape != rep.shape or rec.dtype != rep.dtype:
        return FieldDiff(frame, path, _show(rec), _show(rep), math.inf)
    if rec.size == 0:
        return None
    if rec.dtype.kind == "f":
        excess = _float_excess(rec, rep, tol)
        i = int(np.argmax(excess))
        worst = float(excess.flat[i])
    else:
        differs = rec != rep
        i = int(np.argmax(differs))
        worst = math.inf if bool(differs.flat[i]) else 0.0
    if worst == 0.0:
        return None
    index = ", ".join(map(str, np.unravel_index(i, rec.shape)))
    return FieldDiff(frame, f"{path}[{index}]", _show(rec.flat[i].item()),
                     _show(rep.flat[i].item()), worst)


def field_diff(recorded: Any, replayed: Any, tol: Tolerance, frame: int = 0,
               path: str = "") -> FieldDiff | None:
    """The largest difference between two message values (structs, lists, arrays,
    scalars), or None when they are equal."""
    if is_struct(type(recorded)) and type(replayed) is type(recorded):
        worst = None
        for info in struct_fields(type(recorded)):
            sub = f"{path}.{info.name}" if path else info.name
            worst = _worse(worst, field_diff(getattr(recorded, info.name),
                                             getattr(replayed, info.name), tol, frame, sub))
        return worst
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return FieldDiff(frame, f"len({path})", str(len(recorded)), str(len(replayed)),
                             math.inf)
        worst = None
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            worst = _worse(worst, field_diff(a, b, tol, frame, f"{path}[{i}]"))
        return worst
    if isinstance(recorded, np.ndarray) and isinstance(replayed, np.ndarray):
        return _array_diff(recorded, replayed, tol, path, frame)
    if type(recorded) is float and type(replayed) is float:
        excess = float(_float_excess(np.array(recorded), np.array(replayed), tol))
        return None if excess == 0.0 else FieldDiff(frame, path, _show(recorded),
                                                    _show(replayed), excess)
    if type(recorded) is type(replayed) and recorded == replayed:
        return None
    return FieldDiff(frame, path, _show(recorded), _show(replayed), math.inf)


# ----------------------------------------------------------------------- results
@dataclass
class TopicSummary:
    """One output topic: outputs compared (recorded and replayed pairs), mismatched
    (pairs outside the tolerance, plus ``missing`` and ``extra`` messages),
    ``past_end`` (replayed after the recording's last output: not compared), and
    the worst difference seen."""

    topic: str
    compared: int = 0
    mismatched: int = 0
    missing: int = 0
    extra: int = 0
    past_end: int = 0
    worst: FieldDiff | None = None

    def line(self) -> str:
        text = f"{self.topic}: {self.compared} compared, {self.mismatched} mismatched"
        parts = [f"{n} {what}" for n, what in ((self.missing, "recorded but not replayed"),
                                               (self.extra, "replayed but not recorded"),
                                               (self.past_end, "after the recording's end"))
                 if n]
        if parts:
            text += f" ({', '.join(parts)})"
        w = self.worst
        if w is None:
            return text + "; bit-exact"
        label = "worst" if w.mismatch else "worst (within tolerance)"
        return (f"{text}; {label}: frame {w.frame} {w.path}: recorded {w.recorded}, "
                f"replayed {w.replayed}")


@dataclass
class ReplayResult:
    """What a replay found. ``sim_s``: sim seconds from the first to the last frame
    fed; ``wall_s``: seconds the replay took (reading, running the nodes, comparing;
    not starting them, e.g. loading weights)."""

    path: Path
    nodes: tuple[str, ...]
    topics: list[TopicSummary]
    sim_s: float
    wall_s: float
    notes: list[str] = field(default_factory=list)
    updated: bool = False

    @property
    def ok(self) -> bool:
        return all(t.mismatched == 0 for t in self.topics)

    @property
    def speed(self) -> float:
        """Sim seconds replayed per wall second (x real time)."""
        return self.sim_s / self.wall_s if self.wall_s > 0 else math.inf

    def lines(self) -> list[str]:
        out = [f"replay {self.path}: re-ran {', '.join(self.nodes)}; {self.sim_s:.2f} sim s "
               f"in {self.wall_s:.2f} s wall ({self.speed:.1f}x real time)", *self.notes]
        out += [f"  {t.line()}" for t in self.topics]
        bad = [t.topic for t in self.topics if t.mismatched]
        if bad:
            out.append(f"REGRESSION: {', '.join(bad)} differ from the recording")
        else:
            out.append(f"OK: every output matches the recording "
                       f"({sum(t.compared for t in self.topics)} compared)")
        if self.updated:
            out.append(f"updated {self.path} with the replayed outputs")
        return out


# ------------------------------------------------------------------------ wiring
def _open(path: Path) -> Recording:
    try:
        return Recording.open(path)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None


def _decode(m: RecordedMessage, path: Path) -> Any:
    try:
        return m.decode()
    except DecodeError as exc:
        raise ReplayError(f"{path}: a {m.msg_name} on {m.topic} cannot be read by this "
                          f"build: {exc}") from None


def recorded_with_oracle(rec: Recording) -> bool:
    """True when the recording's perception outputs come from the oracle node."""
    first = next(rec.messages([_ORACLE_TOPIC]), None)
    return first is not None and _decode(first, rec.path).source == "oracle"


def recorded_cameras(rec: Recording) -> bool:
    """True when the recording holds camera images (not made with
    ``--no-record-cameras``)."""
    return any(t.startswith(CAMERA_PREFIX) and info[2] > 0 for t, info in rec.topics().items())


def _choose_nodes(requested: tuple[str, ...] | None, oracle: bool, cameras: bool,
                  path: Path) -> tuple[str, ...]:
    if requested is None:
        return tuple(n for n in NODE_NAMES
                     if not ((oracle or not cameras) and n == "perception"))
    if oracle and "perception" in requested:
        raise ReplayError(f"{path}: recorded with --oracle ({_ORACLE_TOPIC} from the "
                          "oracle): there is no perception output to compare; re-run "
                          "planning,control")
    if not cameras and "perception" in requested:
        raise ReplayError(f"{path}: recorded without camera images (--no-record-cameras): "
                          "perception cannot be re-run; re-run planning,control")
    return requested


def _build_nodes(path: Path, names: tuple[str, ...], oracle: bool,
                 overrides: dict[str, dict[str, Any]], ctx: InProcessContext,
                 notes: list[str]) -> list[Node]:
    """The re-run nodes, as ``drivestack run``'s launch file makes them."""
    from launch.launchfile import LaunchFileError, load_launch_file
    from launch.node_main import load_node_class
    from launch.run import RUN_LAUNCH_FILE

    for node in overrides:
        if node not in names:
            raise ReplayError(f"--param {node}.*: {node} is not re-run (--nodes "
                              f"{','.join(names)})")
    scenario = path.parent / SCENARIO_FILE
    if not scenario.is_file() and "planning" in names \
            and "scenario" not in overrides.get("planning", {}):
        notes.append(f"note: no {scenario}: planning follows the lane ahead (pass --param "
                     "planning.scenario=FILE for the run's route)")
    # in a replay nothing else runs beside perception: it has every core, where the
    # run gave it one of the loop's
    args = {"scenario": str(scenario.resolve()) if scenario.is_file() else "",
            "out": str(path.parent.resolve()), "oracle": oracle, "weights": "",
            "cpu_threads": len(os.sched_getaffinity(0))}
    try:
        specs = {s.name: s for s in load_launch_file(RUN_LAUNCH_FILE, args).nodes}
    except LaunchFileError as exc:
        raise ReplayError(str(exc)) from None
    nodes = []
    for name in names:
        spec = specs[name]
        params = {**spec.params, **overrides.get(name, {})}
        # open loop: every input is fed after all nodes exist, so no start gate
        params.pop("start_when_subscribed", None)
        try:
            cls = load_node_class(spec.node)
            nodes.append(cls(name, context=ctx, params=params,
                             params_source=f"{name} parameters", remaps=spec.remaps,
                             diagnostics=False))
        except (ValueError, OSError, TypeError) as exc:
            raise ReplayError(f"cannot start node {name} for {path}: {exc}") from None
    return nodes


@dataclass(frozen=True)
class _Output:
    """One replayed output: its bytes, its frame, and the log time of the input being
    fed when it was published (where ``--update`` puts a message with no recorded
    counterpart)."""

    topic: str
    frame: int
    data: bytes
    trigger_log_ns: int


def _by_frame(items: list[Any], frame_of: Any) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for item in items:
        out[frame_of(item)].append(item)
    return out


_Kept = list[tuple[_Output, RecordedMessage | None]]


def _compare(topic: str, recorded: list[tuple[int, RecordedMessage]], replayed: list[_Output],
             tol: Tolerance, path: Path) -> tuple[TopicSummary, _Kept]:
    """Match outputs by frame (then by order within a frame) and compare them.
    Returns the summary and the replayed outputs that ``--update`` keeps, each with
    the recorded message it replaces (None: it has none)."""
    summary = TopicSummary(topic)
    rec_by = _by_frame(recorded, lambda r: r[0])
    rep_by = _by_frame(replayed, lambda o: o.frame)
    last = max(rec_by)
    kept: _Kept = []
    for frame in sorted(set(rec_by) | set(rep_by)):
        recs, reps = rec_by.get(frame, []), rep_by.get(frame, [])
        if frame > last:
            summary.past_end += len(reps)
            continue
        for i in range(max(len(recs), len(reps))):
            rec = recs[i][1] if i < len(recs) else None
            rep = reps[i] if i < len(reps) else None
            if rep is not None:
                kept.append((rep, rec))
            if rec is None or rep is None:
                summary.missing += rep is None
                summary.extra += rec is None
                summary.mismatched += 1
                summary.worst = _worse(summary.worst, FieldDiff(
                    frame, "(message)", "none" if rec is None else "a message",
                    "none" if rep is None else "a message", math.inf))
                continue
            summary.compared += 1
            if rec.data == rep.data:
                continue
            diff = field_diff(_decode(rec, path), from_bytes(rep.data), tol, frame)
            summary.worst = _worse(summary.worst, diff)
            summary.mismatched += diff is not None and diff.mismatch
    return summary, kept


def _messages(rec: Recording, topics: list[str]) -> Iterator[RecordedMessage]:
    try:
        yield from rec.messages(topics)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None


# ------------------------------------------------------------------------ replay
def replay(opts: ReplayOptions) -> ReplayResult:
    """Re-run the nodes on ``opts.path``, compare, and with ``update`` rewrite it."""
    path = Path(opts.path)
    with _open(path) as rec:
        oracle = recorded_with_oracle(rec)
        names = _choose_nodes(opts.nodes, oracle, recorded_cameras(rec), path)
        notes: list[str] = []
        ctx = InProcessContext(namespace="replay")
        nodes = _build_nodes(path, names, oracle, opts.params, ctx, notes)
        outputs = sorted({p.topic for n in nodes for p in n.publishers})
        inputs = sorted({s.topic for n in nodes for s in n.subscriptions} - set(outputs))
        present = rec.topics()
        for topic in inputs + outputs:
            if topic not in present or present[topic][2] == 0:
                role = "an output to compare" if topic in outputs else "an input"
                raise ReplayError(f"{path}: no {topic} recorded ({role} of "
                                  f"{', '.join(names)})")

        feeder = Node("replay_feed", context=ctx, diagnostics=False)
        feeds = {t: feeder.create_publisher(lookup(t).msg_type, t) for t in inputs}
        collector = Node("replay_collect", context=ctx, diagnostics=False)
        replayed: dict[str, list[_Output]] = {t: [] for t in outputs}
        trigger = 0

        def collect(topic: str, d: Delivery) -> None:
            data = join_frames(d.frames)
            replayed[topic].append(_Output(topic, from_bytes(data).header.frame, data,
                                           trigger))

        for t in outputs:
            collector.create_subscription(lookup(t).msg_type, t,
                                          lambda d, t=t: collect(t, d), raw=True)
        executor = Executor(ctx, [*nodes, feeder, collector])
        recorded: dict[str, list[tuple[int, RecordedMessage]]] = {t: [] for t in outputs}
        stamps: list[float] = []
        t0 = time.perf_counter()
        try:
            for m in _messages(rec, inputs + outputs):
                header = _decode(m, path).header
                if m.topic in recorded:
                    recorded[m.topic].append((header.frame, m))
                    continue
                stamps.append(header.stamp)
                trigger = m.log_time_ns
                feeds[m.topic].publish_frames(m.frames())
                try:
                    while executor.spin_once(0.0):
                        pass
                except Exception as exc:
                    raise ReplayFailure(f"{path}: a re-run node raised while {m.topic} of "
                                        f"frame {header.frame} was fed: "
                                        f"{type(exc).__name__}: {exc}") from exc
        finally:
            executor.destroy()
        summaries, kept = [], []
        for t in outputs:
            summary, k = _compare(t, recorded[t], replayed[t], opts.tolerance, path)
            summaries.append(summary)
            kept += k
        wall = time.perf_counter() - t0
        result = ReplayResult(path, names, summaries, max(stamps) - min(stamps), wall, notes)
        if opts.update:
            _rewrite(rec, set(outputs), kept, {**opts.provenance, "nodes": ",".join(names),
                                               "params": json.dumps(opts.params)})
            result.updated = True
    return result


def _rewrite(rec: Recording, outputs: set[str], kept: _Kept,
             provenance: dict[str, str]) -> None:
    """Write ``rec`` again with ``kept`` in place of every message on ``outputs``: a
    replayed output takes the log time, publish time and sequence of the recorded
    one it replaces, else the log time of the input that triggered it (and sorts
    after that input). Written to a temporary file in the same directory, then
    renamed over the original (atomic)."""
    path = rec.path
    new = sorted(
        ((r.log_time_ns, r.publish_time_ns, r.sequence, o) if r is not None
         else (o.trigger_log_ns, o.trigger_log_ns, 0, o) for o, r in kept),
        key=lambda item: item[0])
    tmp = path.with_name(f".{path.name}.replay-{os.getpid()}.tmp")
    try:
        with RecordingWriter(tmp) as writer:
            for name, data in rec.metadata().items():
                if name != UPDATE_METADATA:
                    writer.add_metadata(name, data)
            writer.add_metadata(UPDATE_METADATA,
                                {**provenance, "time": time.strftime("%FT%T%z")})
            i = 0
            for m in _messages(rec, list(rec.topics())):
                if m.topic in outputs:
                    continue
                while i < len(new) and new[i][0] < m.log_time_ns:
                    log_ns, pub_ns, seq, o = new[i]
                    writer.write(o.topic, o.data, log_ns, pub_ns, seq)
                    i += 1
                writer.write(m.topic, m.data, m.log_time_ns, m.publish_time_ns, m.sequence)
            for log_ns, pub_ns, seq, o in new[i:]:
                writer.write(o.topic, o.data, log_ns, pub_ns, seq)
        os.replace(tmp, path)
    except (OSError, RecordingError) as exc:
        raise ReplayError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

