#!/usr/bin/env python
"""Benchmark: the drivestack bus against raw pyzmq PUB/SUB, on this machine, now.

    python bench/bus.py [--quick] [--protocol ipc|tcp] [--profile DIR]

Two paths, each a publisher process and a subscriber process:

  raw         raw pyzmq XPUB -> SUB, multipart [stamp+index (16 B), payload]
  drivestack  a Node publishing with ``create_publisher`` -> a Node with
              ``create_subscription`` + Executor (ZmqContext)

for two messages: ``small``, a ``Chatter`` with a 100-character text, and ``image``,
an ``Image`` of 640x360x3 uint8. The raw payload is sized so that the bytes on the
wire per message are the same as drivestack's (envelope + metadata + array frames).
Both use HWM 0, the same pacing, and the same copy rule (zero-copy for frames of
64 KiB and more; pyzmq copies smaller ones anyway). The raw subscriber does a
blocking ``recv_multipart``. For each message, both pairs are started, then the
measurement runs in rounds that alternate raw and drivestack, so a change in the
machine's load during the run hits both alike.

Latency: the publisher stamps ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, the same
clock in every process) right before ``publish`` (drivestack: in ``header.frame``,
after building the message) or ``send_multipart`` (raw); the subscriber takes the
clock first thing in its callback, so drivestack's figure includes encoding, the
envelope, decoding and the executor's dispatch. Messages are paced (500 Hz small,
100 Hz image), each round after a few warm-up messages that are not counted, and
only once the subscriber is ready (drivestack: ``Node.is_ready()``, i.e. the
publisher's welcome arrived; raw: the XPUB saw the subscription), so nothing is lost
to the slow joiner.

Throughput: the publisher sends N messages back to back (drivestack: built
beforehand, so the figure is the bus's, not the building of messages); the
subscriber measures from the first to the last arrival, (N - 1) / (t_last -
t_first); the median over the rounds is reported.

Each run gets its own bus: DRIVESTACK_RUNTIME_DIR is a fresh directory under /tmp
and DRIVESTACK_NS a unique name; both go away at the end, with every worker process.

Prints a table, then as the last line one JSON object with every figure
(``{raw,drivestack}_{small,image}_{p50_us,p99_us,mean_us,max_us,n,lost,msgs_per_s,
mb_per_s}``), the drivestack/raw ratios (``latency_ratio_p50_small``,
``latency_ratio_p99_image``, ``throughput_ratio_small``, ...) and the targets
(drivestack/raw p50 <= 1.5 small, <= 1.2 image): ``target_met`` {"latency_p50_small":
bool, "latency_p50_image": bool}, also as ``target_met_small``, ``target_met_image``
and ``targets_met`` (both). A figure that could not be measured is null.
``--profile DIR`` runs the drivestack workers under cProfile and writes one .pstats
per worker to DIR (latencies are then inflated: for finding where time goes only).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

# Run as ``python bench/bus.py``, sys.path[0] is bench/ and ``import bus`` would find
# this file instead of the package: put the repository root there instead. (Spawned
# workers inherit this sys.path.) drivestack modules are imported inside functions.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import zmq  # noqa: E402

IMAGE_SHAPE = (360, 640, 3)
SMALL_TEXT = "drivestack bus benchmark: a chatter line of one hundred characters ".ljust(100, ".")
SMALL_TOPIC = "/demo/chatter"
IMAGE_TOPIC = "/sensors/camera/bench"
PUB_NODE, SUB_NODE = "bench_pub", "bench_sub"
RAW_HEAD = struct.Struct("<qq")  # send stamp (perf_counter_ns), index
COPY_THRESHOLD = 65536  # pyzmq copies frames below this even with copy=False
TARGETS = {"small": 1.5, "image": 1.2}  # max drivestack/raw p50 latency ratio


@dataclass(frozen=True)
class Plan:
    """What one publisher/subscriber pair is (the counts come with each order)."""

    case: str  # small | image
    kind: str  # ds | raw
    protocol: str  # ipc | tcp
    raw_payload: int  # bytes of the raw payload frame
    runtime_dir: str
    profile_dir: str = ""


# ------------------------------------------------------------------------ messages
def _image_data() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, IMAGE_SHAPE, dtype=np.uint8)


def _message_factory(case: str):  # type: ignore[no-untyped-def]
    """(make(index) -> message whose header.frame is to be stamped, type, topic)."""
    from bus.messages import Chatter, Header, Image

    if case == "small":
        def make_small(i: int) -> Chatter:
            return Chatter(Header(frame=0), SMALL_TEXT, i)
        return make_small, Chatter, SMALL_TOPIC
    data = _image_data()

    def make_image(i: int) -> Image:
        return Image(Header(frame=0, stamp=float(i)), "bench", "bgr8", data)
    return make_image, Image, IMAGE_TOPIC


def wire_bytes(case: str) -> int:
    """Bytes drivestack puts on the wire per message: envelope + encoded frames."""
    from bus.serialization import encode

    make, _, _ = _message_factory(case)
    msg = make(0)
    msg.header.frame = time.perf_counter_ns()
    envelope = struct.calcsize("<IQq") + len(PUB_NODE.encode())
    return envelope + sum(memoryview(f).nbytes for f in encode(msg))


# ------------------------------------------------------------------------- workers
# Orders, parent -> publisher: ("paced", first_index, n, rate_hz) | ("burst", first, n)
#   | ("exit",); it answers ("sent",).
# Parent -> subscriber: ("expect", n, timeout_s, tag) | ("exit",); it answers
#   ("got", [(index, send_ns, arrival_ns), ...]) and, on exit, ("drops", n).
class _Profiles:
    """cProfile per phase tag when --profile is on (drivestack workers only)."""

    def __init__(self, plan: Plan, role: str) -> None:
        self.on = bool(plan.profile_dir) and plan.kind == "ds"
        self.prefix = os.path.join(plan.profile_dir, f"{plan.kind}-{plan.case}-{role}")
        self.profiles: dict[str, Any] = {}

    def start(self, tag: str) -> None:
        if self.on:
            import cProfile

            self.profiles.setdefault(tag, cProfile.Profile()).enable()

    def stop(self, tag: str) -> None:
        if self.on:
            self.profiles[tag].disable()

    def dump(self) -> None:
        for tag, prof in self.profiles.items():
            prof.dump_stats(f"{self.prefix}-{tag}.pstats")


def _publish_loop(plan: Plan, conn: Any, send_one: Any, idle: Any = None,
                  prebuild: Any = None) -> None:
    """Serve publish orders; ``idle()`` runs until the first order arrives. A burst
    sends messages built beforehand (``prebuild(i)``): it measures the bus, not the
    building of messages."""
    profiles = _Profiles(plan, "pub")
    while True:
        if idle is not None:
            while not conn.poll(0):
                idle()
            idle = None
        cmd = conn.recv()
        if cmd[0] == "exit":
            break
        first, n = cmd[1], cmd[2]
        if cmd[0] == "paced":
            profiles.start(cmd[0])
            period = 1.0 / cmd[3]
            t_next = time.perf_counter()
            for i in range(first, first + n):
                send_one(i)
                t_next += period
                delay = t_next - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        else:
            msgs = [prebuild(i) for i in range(first, first + n)] if prebuild else [None] * n
            profiles.start(cmd[0])
            for i, msg in zip(range(first, first + n), msgs, strict=True):
                send_one(i, msg)
        profiles.stop(cmd[0])
        conn.send(("sent",))
    profiles.dump()


def _subscribe_loop(plan: Plan, conn: Any, records: list, spin: Any, drops: Any) -> None:
    """Serve expect orders: ``spin(n, timeout_s)`` until ``records`` holds n."""
    profiles = _Profiles(plan, "sub")
    while True:
        cmd = conn.recv()
        if cmd[0] == "exit":
            profiles.dump()
            conn.send(("drops", drops()))
            return
        _, n, timeout_s, tag = cmd
        records.clear()
        profiles.start(tag)
        spin(n, timeout_s)
        profiles.stop(tag)
        conn.send(("got", list(records)))


def _ds_context(plan: Plan):  # type: ignore[no-untyped-def]
    from bus.transport import ZmqConfig, ZmqContext

    return ZmqContext(ZmqConfig.from_env(protocol=plan.protocol))


def ds_publisher(plan: Plan, conn: Any) -> None:
    from bus.node import Executor, Node

    make, msg_type, topic = _message_factory(plan.case)
    ctx = _ds_context(plan)
    node = Node(PUB_NODE, context=ctx)
    try:
        pub = node.create_publisher(msg_type, topic)
        conn.send(("bound", pub.endpoint.endpoint))
        perf_ns, publish = time.perf_counter_ns, pub.publish

        def send_one(i: int, msg: Any = None) -> None:
            if msg is None:
                msg = make(i)  # paced: a node builds a message, then publishes it
            msg.header.frame = perf_ns()
            publish(msg)

        # ZeroMQ attaches a new subscriber only when the publisher's socket is used:
        # spin like a real node until the first order (that sends the welcome).
        executor = Executor(ctx, [node])
        _publish_loop(plan, conn, send_one, idle=lambda: executor.spin_once(0.005),
                      prebuild=make)
    finally:
        node.destroy()
        ctx.close()


def ds_subscriber(plan: Plan, conn: Any) -> None:
    from bus.node import Executor, Node

    _, msg_type, topic = _message_factory(plan.case)
    conn.recv()  # ("connect", endpoint): drivestack finds it in the registry itself
    ctx = _ds_context(plan)
    node = Node(SUB_NODE, context=ctx)
    try:
        records: list[tuple[int, int, int]] = []
        perf_ns, append = time.perf_counter_ns, records.append
        if plan.case == "small":
            def on_message(msg: Any) -> None:
                t = perf_ns()
                append((msg.count, msg.header.frame, t))
        else:
            def on_message(msg: Any) -> None:
                t = perf_ns()
                append((int(msg.header.stamp), msg.header.frame, t))
        node.create_subscription(msg_type, topic, on_message)
        executor = Executor(ctx, [node])
        if not executor.spin_until(node.is_ready, timeout_s=15.0):
            raise RuntimeError(f"subscriber not ready: {node.unready_topics()}")
        # Warm-up: the first /diagnostics report after a node's first message stalls
        # it once for 20-40 ms (np.percentile -> np.unique imports numpy.ma lazily).
        # A one-off start-up cost, not the bus's steady state: pay it before measuring.
        np.percentile(np.arange(3.0), 50)
        conn.send(("ready",))
        _subscribe_loop(
            plan, conn, records,
            lambda n, t: executor.spin_until(lambda: len(records) >= n, t),
            lambda: node.stats.drops)
    finally:
        node.destroy()
        ctx.close()


def raw_publisher(plan: Plan, conn: Any) -> None:
    zctx = zmq.Context()
    sock = zctx.socket(zmq.XPUB)
    try:
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.LINGER, 1000)
        if plan.protocol == "tcp":
            sock.bind("tcp://127.0.0.1:*")
        else:
            sock.bind(f"ipc://{plan.runtime_dir}/raw-{plan.case}")
        conn.send(("bound", sock.getsockopt_string(zmq.LAST_ENDPOINT)))
        # XPUB handshake: once the subscription is seen, the subscriber's pipe is attached.
        if not sock.poll(15000) or sock.recv()[:1] != b"\x01":
            raise RuntimeError("raw publisher: no subscription within 15 s")
        payload = bytes(np.random.default_rng(1).integers(0, 256, plan.raw_payload, np.uint8))
        copy = plan.raw_payload < COPY_THRESHOLD
        send, pack, perf_ns = sock.send_multipart, RAW_HEAD.pack, time.perf_counter_ns

        def send_one(i: int, msg: Any = None) -> None:
            send([pack(perf_ns(), i), payload], copy=copy)

        _publish_loop(plan, conn, send_one)
    finally:
        sock.close()
        zctx.term()


def raw_subscriber(plan: Plan, conn: Any) -> None:
    _, endpoint = conn.recv()
    zctx = zmq.Context()
    sock = zctx.socket(zmq.SUB)
    try:
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 100)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        conn.send(("ready",))
        records: list[tuple[int, int, int]] = []
        copy = plan.raw_payload < COPY_THRESHOLD
        recv, unpack, perf_ns = sock.recv_multipart, RAW_HEAD.unpack, time.perf_counter_ns
        append = records.append

        def spin(n: int, timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while len(records) < n:
                try:
                    parts = recv(copy=copy)
                except zmq.Again:
                    if time.monotonic() > deadline:
                        return
                    continue
                t = perf_ns()
                stamp, i = unpack(parts[0] if copy else parts[0].bytes)
                append((i, stamp, t))

        _subscribe_loop(plan, conn, records, spin, lambda: 0)
    finally:
        sock.close()
        zctx.term()


_WORKERS = {("ds", "pub"): ds_publisher, ("ds", "sub"): ds_subscriber,
            ("raw", "pub"): raw_publisher, ("raw", "sub"): raw_subscriber}


def worker_main(role: str, plan: Plan, conn: Any) -> None:
    """Entry point of a worker process; any failure goes back to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        _WORKERS[(plan.kind, role)](plan, conn)
    except (EOFError, BrokenPipeError):
        pass  # the parent went away: just stop
    except BaseException as exc:
        import traceback

        try:
            conn.send(("error", f"{plan.kind}/{plan.case} {role}: "
                                f"{''.join(traceback.format_exception(exc))}"))
        except (OSError, EOFError):
            pass
        raise SystemExit(1) from None


# -------------------------------------------------------------------------- parent
class BenchError(RuntimeError):
    pass


def _expect(conn: Any, what: str, timeout_s: float) -> tuple:
    try:
        if not conn.poll(timeout_s):
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what!r}")
        msg = conn.recv()
    except (OSError, EOFError):
        raise BenchError(f"a worker exited while the bench waited for {what!r}") from None
    if msg[0] == "error":
        raise BenchError(msg[1])
    if msg[0] != what:
        raise BenchError(f"expected {what!r}, got {msg[0]!r}")
    return msg


def _order(conn: Any, msg: tuple) -> None:
    """Send an order to a worker; a worker that died says why (if it could)."""
    try:
        conn.send(msg)
    except (OSError, EOFError):
        reason = "exited"
        try:
            if conn.poll(2.0):
                reply = conn.recv()
                reason = reply[1] if reply[0] == "error" else reason
        except (OSError, EOFError):
            pass
        raise BenchError(f"a worker {reason}") from None


def _stop(procs: list) -> None:
    for p in procs:
        p.join(timeout=3.0)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=2.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=2.0)


class Pair:
    """A publisher process and a subscriber process of one kind and case."""

    def __init__(self, plan: Plan, procs: list) -> None:
        self.plan = plan
        self.next_index = 0
        self.procs: list = []
        mpc = mp.get_context("spawn")
        self.conns: dict[str, Any] = {}
        for role in ("sub", "pub"):
            parent, child = mpc.Pipe()
            p = mpc.Process(target=worker_main, args=(role, plan, child), daemon=True,
                            name=f"bench-{plan.kind}-{plan.case}-{role}")
            procs.append(p)
            self.procs.append(p)
            p.start()
            child.close()
            self.conns[role] = parent
        self.pub, self.sub = self.conns["pub"], self.conns["sub"]

    def connect(self) -> None:
        _, endpoint = _expect(self.pub, "bound", 60.0)
        _order(self.sub, ("connect", endpoint))
        _expect(self.sub, "ready", 60.0)

    def _run(self, order: tuple, n: int, seconds: float, tag: str) -> list:
        _order(self.sub, ("expect", n, seconds + 10.0, tag))
        _order(self.pub, order)
        _expect(self.pub, "sent", seconds + 30.0)
        _, records = _expect(self.sub, "got", seconds + 30.0)
        self.next_index += n
        return records

    def paced(self, warmup: int, n: int, rate_hz: float) -> tuple[list[float], int]:
        """Latencies (us) of n messages after warmup ones, and how many were lost."""
        first = self.next_index + warmup
        records = self._run(("paced", self.next_index, warmup + n, rate_hz), warmup + n,
                            (warmup + n) / rate_hz, "paced")
        lat = [(t - s) / 1e3 for i, s, t in records if i >= first]
        return lat, n - len(lat)

    def burst(self, n: int) -> tuple[float, int]:
        """Messages/s over a burst of n (first to last arrival), and how many lost."""
        records = self._run(("burst", self.next_index, n), n, 30.0, "burst")
        if len(records) < 2 or records[-1][2] <= records[0][2]:
            return float("nan"), n - len(records)
        return (len(records) - 1) / ((records[-1][2] - records[0][2]) / 1e9), n - len(records)

    def close(self) -> int:
        drops = 0
        try:
            _order(self.pub, ("exit",))
            _order(self.sub, ("exit",))
            _, drops = _expect(self.sub, "drops", 10.0)
        finally:
            _stop(self.procs)
            self.pub.close()
            self.sub.close()
        return drops


def measure_case(case: str, counts: tuple, protocol: str, size: int, runtime_dir: str,
                 profile_dir: str, procs: list) -> dict:
    """Raw and drivestack for one message size, interleaved in rounds so that a change
    in the machine's load hits both alike."""
    rounds, warmup, per_round, rate, n_burst = counts
    pairs = {kind: Pair(Plan(case, kind, protocol, size - RAW_HEAD.size, runtime_dir,
                             profile_dir), procs) for kind in ("raw", "ds")}
    for pair in pairs.values():
        pair.connect()
    lat: dict[str, list[float]] = {k: [] for k in pairs}
    rates: dict[str, list[float]] = {k: [] for k in pairs}
    lost = dict.fromkeys(pairs, 0)
    for r in range(rounds):
        for kind in (("raw", "ds") if r % 2 == 0 else ("ds", "raw")):
            got, missing = pairs[kind].paced(warmup, per_round, rate)
            lat[kind] += got
            lost[kind] += missing
    for r in range(rounds):
        for kind in (("raw", "ds") if r % 2 == 0 else ("ds", "raw")):
            got_rate, missing = pairs[kind].burst(n_burst)
            rates[kind].append(got_rate)
            lost[kind] += missing
    out = {}
    for kind, pair in pairs.items():
        drops = pair.close()
        us = np.array(lat[kind]) if lat[kind] else np.array([np.nan])
        rate_med = float(np.median(rates[kind]))
        out[kind] = {
            "p50_us": float(np.percentile(us, 50)),
            "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()),
            "max_us": float(us.max()),
            "n": len(lat[kind]),
            "lost": lost[kind],
            "drops": drops,
            "msgs_per_s": rate_med,
            "mb_per_s": rate_med * size / 1e6,
            "msgs_per_s_rounds": [round(x) if x == x else None for x in rates[kind]],
        }
    return out


def _fmt(x: float, digits: int = 1) -> str:
    return "nan" if x != x else f"{x:,.{digits}f}"


def report(results: dict, sizes: dict, args: argparse.Namespace, elapsed: float) -> dict:
    out: dict[str, Any] = {
        "protocol": args.protocol, "quick": args.quick, "profiled": bool(args.profile),
        "cpus": os.cpu_count(), "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(),
        "python": sys.version.split()[0],
    }
    print(f"\ndrivestack bus vs raw pyzmq over {args.protocol}  ({os.cpu_count()} CPUs, "
          f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"
          f"{', quick' if args.quick else ''}{', PROFILED' if args.profile else ''})\n")
    head = (f"{'case':<6} {'bytes':>8}  {'path':<11} {'p50 us':>9} {'p99 us':>9} "
            f"{'mean us':>9} {'max us':>9} {'n':>5}  {'msgs/s':>9} {'MB/s':>8} {'lost':>4}")
    print(head)
    print("-" * len(head))
    for case in ("small", "image"):
        out[f"bytes_{case}"] = sizes[case]
        for kind, label in (("raw", "raw pyzmq"), ("ds", "drivestack")):
            r = results[(kind, case)]
            name = "raw" if kind == "raw" else "drivestack"
            for key, v in r.items():
                out[f"{name}_{case}_{key}"] = v
            print(f"{case:<6} {sizes[case]:>8}  {label:<11} {_fmt(r['p50_us']):>9} "
                  f"{_fmt(r['p99_us']):>9} {_fmt(r['mean_us']):>9} {_fmt(r['max_us']):>9} "
                  f"{r['n']:>5}  {_fmt(r['msgs_per_s'], 0):>9} {_fmt(r['mb_per_s']):>8} "
                  f"{r['lost']:>4}")
        ds, raw = results[("ds", case)], results[("raw", case)]
        ratios = {
            "latency_ratio_p50": ds["p50_us"] / raw["p50_us"],
            "latency_ratio_p99": ds["p99_us"] / raw["p99_us"],
            "throughput_ratio": ds["msgs_per_s"] / raw["msgs_per_s"],
        }
        for key, v in ratios.items():
            out[f"{key}_{case}"] = v
        print(f"{'':<6} {'':>8}  {'ds/raw':<11} {_fmt(ratios['latency_ratio_p50'], 2) + 'x':>9} "
              f"{_fmt(ratios['latency_ratio_p99'], 2) + 'x':>9} {'':>9} {'':>9} {'':>5}  "
              f"{_fmt(ratios['throughput_ratio'], 2) + 'x':>9}")
        print()
    target_met = {}
    for case, limit in TARGETS.items():
        ratio = out[f"latency_ratio_p50_{case}"]
        ok = bool(ratio <= limit)  # nan -> False
        target_met[f"latency_p50_{case}"] = ok
        out[f"target_met_{case}"] = ok
        print(f"target: {case} p50 drivestack/raw {_fmt(ratio, 2)} <= {limit}: "
              f"{'met' if ok else 'MISSED'}")
    out["target_met"] = target_met
    out["targets_met"] = all(target_met.values())
    out["lost_total"] = sum(r["lost"] for r in results.values())
    out["elapsed_s"] = round(elapsed, 2)
    print(f"({elapsed:.1f} s)")
    return out


def _json_safe(obj: Any) -> Any:
    """NaN/inf (a measurement that got nothing) -> null: the line stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few samples (smoke test, < 15 s)")
    ap.add_argument("--protocol", choices=("ipc", "tcp"), default="ipc")
    ap.add_argument("--rate-small", type=float, default=500.0,
                    help="pacing of the small-message latency samples, Hz")
    ap.add_argument("--rate-image", type=float, default=100.0,
                    help="pacing of the image latency samples, Hz")
    ap.add_argument("--profile", metavar="DIR", default="",
                    help="run the drivestack workers under cProfile, .pstats into DIR")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        args.profile = os.path.abspath(args.profile)
    runtime_dir = tempfile.mkdtemp(prefix="dsb-", dir="/tmp")
    os.environ["DRIVESTACK_RUNTIME_DIR"] = runtime_dir
    os.environ["DRIVESTACK_NS"] = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.environ.pop("DRIVESTACK_PROTOCOL", None)  # ours comes from --protocol

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    procs: list = []
    try:
        sizes = {case: wire_bytes(case) for case in ("small", "image")}
        # rounds (raw and drivestack alternate), then per round: warm-up messages,
        # latency samples, rate (Hz); messages per throughput burst (one per round)
        if args.quick:
            counts = {"small": (2, 50, 200, args.rate_small, 2000),
                      "image": (2, 10, 40, args.rate_image, 100)}
        else:
            counts = {"small": (3, 100, 1000, args.rate_small, 10000),
                      "image": (3, 20, 170, args.rate_image, 300)}
        results = {}
        for case in ("small", "image"):
            print(f"measuring {case} ...", file=sys.stderr, flush=True)
            by_kind = measure_case(case, counts[case], args.protocol, sizes[case],
                                   runtime_dir, args.profile, procs)
            for kind, r in by_kind.items():
                results[(kind, case)] = r
        out = report(results, sizes, args, time.monotonic() - t0)
        out["samples"] = {c: dict(zip(("rounds", "warmup_per_round", "latency_per_round",
                                       "rate_hz", "burst"), v, strict=True))
                          for c, v in counts.items()}
        print(json.dumps(_json_safe(out)), flush=True)
        return 0
    except BenchError as exc:
        print(f"bench/bus.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/bus.py: interrupted", file=sys.stderr)
        return 130
    finally:
        _stop(procs)
        shutil.rmtree(runtime_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
