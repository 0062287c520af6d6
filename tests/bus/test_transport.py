"""The ZeroMQ bus across processes: no loss, order, latched late joiners, namespaces,
tcp with CURVE, stale publishers."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from bus import DeadlineMissed, Executor, FrameWaiter, Node, ZmqConfig, ZmqContext
from bus.messages import Chatter, ControlCommand, Header, MapData
from bus.transport import TransportError, registry


def wait_ready(proc: subprocess.Popen, r: int, spin: Executor | None = None,
               timeout: float = 15.0) -> None:
    """Wait for the child's ready line, spinning ``spin`` meanwhile: a publisher in
    this process must be serviced for the child's subscription to connect."""
    deadline = time.monotonic() + timeout
    while not select.select([r], [], [], 0 if spin else timeout)[0]:
        assert time.monotonic() < deadline and proc.poll() is None, "node did not report ready"
        if spin is not None:
            spin.spin_once(0.02)
    assert os.read(r, 16) == b"ready\n"


@contextmanager
def ready_node(node: str, name: str, spin: Executor | None = None):
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.node_main", "--node", node, "--name", name],
        env={**os.environ, "DRIVESTACK_READY_FD": str(w)}, pass_fds=[w])
    os.close(w)
    try:
        wait_ready(proc, r, spin)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        os.close(r)


class Sink(Node):
    def __init__(self, name: str, topic: str, msg_type: type = Chatter, **kw) -> None:
        super().__init__(name, diagnostics=False, **kw)
        self.got: list = []
        self.create_subscription(msg_type, topic, self.got.append)


def test_two_processes_exchange_1000_messages_without_loss_or_reordering(bus_env):
    ctx = ZmqContext()
    src = Node("src", context=ctx, diagnostics=False)
    pub = src.create_publisher(Chatter, "/demo/chatter")
    sink = Sink("sink", "/demo/relay", context=ctx)
    ex = Executor(ctx, [src, sink])
    with ready_node("launch.demo_nodes:Relay", "relay", spin=ex) as relay:
        assert ex.spin_until(sink.is_ready, timeout_s=10)
        for i in range(1, 1001):  # no pause: the slow-joiner case
            pub.publish(Chatter(Header(i, i * 0.05), f"m{i}", i))
        assert ex.spin_until(lambda: len(sink.got) >= 1000, timeout_s=20)
        ex.spin_once(0.1)
        assert [m.count for m in sink.got] == list(range(1, 1001))
        assert sink.got[-1].text == "M1000"
        assert sink.stats.drops == 0
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(5) == 0
    ex.destroy()
    ctx.close()
    assert registry(bus_env) == []  # both sides removed their registry entries


def test_latched_topic_reaches_a_late_joiner_once(bus_env):
    ctx = ZmqContext()
    sim = Node("sim", context=ctx, diagnostics=False)
    pub = sim.create_publisher(MapData, "/map/opendrive")
    early = Sink("early", "/map/opendrive", MapData, context=ctx)
    ex = Executor(ctx, [sim, early])
    assert ex.spin_until(early.is_ready, timeout_s=5)
    pub.publish(MapData(Header(0), "town", "<OpenDRIVE/>"))
    assert ex.spin_until(lambda: early.got, timeout_s=5)
    late = Sink("late", "/map/opendrive", MapData, context=ctx)
    ex.add_node(late)
    assert ex.spin_until(lambda: late.got, timeout_s=5)
    ex.spin_until(lambda: False, timeout_s=0.3)  # time for any duplicate to show up
    assert [m.name for m in late.got] == ["town"]
    assert len(early.got) == 1  # the resend for the late joiner is not a new message
    ex.destroy()
    ctx.close()


def test_latched_topic_reaches_a_late_process(bus_env, tmp_path):
    ctx = ZmqContext()
    sim = Node("sim", context=ctx, diagnostics=False)
    pub = sim.create_publisher(MapData, "/map/opendrive")
    ex = Executor(ctx, [sim])
    pub.publish(MapData(Header(0), "town", "<OpenDRIVE/>"))
    code = (
        "import sys\n"
        "from bus import Executor, Node, ZmqContext\n"
        "from bus.messages import MapData\n"
        "ctx = ZmqContext(); n = Node('late', context=ctx, diagnostics=False); got = []\n"
        "n.create_subscription(MapData, '/map/opendrive', got.append)\n"
        "ok = Executor(ctx, [n]).spin_until(lambda: got, timeout_s=10)\n"
        "print(got[0].name if ok else 'nothing'); sys.exit(0 if ok else 1)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    while proc.poll() is None:
        ex.spin_once(0.05)  # the publisher serves the new subscription
    assert proc.returncode == 0
    assert proc.stdout.read().strip() == "town"
    ex.destroy()
    ctx.close()


def test_namespaces_do_not_collide(bus_env):
    a, b = ZmqContext(ZmqConfig(namespace="runa")), ZmqContext(ZmqConfig(namespace="runb"))
    pa = Node("src", context=a, diagnostics=False).create_publisher(Chatter, "/demo/chatter")
    pb = Node("src", context=b, diagnostics=False).create_publisher(Chatter, "/demo/chatter")
    sa, sb = Sink("sink", "/demo/chatter", context=a), Sink("sink", "/demo/chatter", context=b)
    exa, exb = Executor(a, [pa.node, sa]), Executor(b, [pb.node, sb])
    assert exa.spin_until(sa.is_ready, 5) and exb.spin_until(sb.is_ready, 5)
    pa.publish(Chatter(text="a"))
    pb.publish(Chatter(text="b"))
    assert exa.spin_until(lambda: sa.got, 5) and exb.spin_until(lambda: sb.got, 5)
    exa.spin_until(lambda: False, 0.2)
    exb.spin_until(lambda: False, 0.2)
    assert [m.text for m in sa.got] == ["a"] and [m.text for m in sb.got] == ["b"]
    for ex, ctx in ((exa, a), (exb, b)):
        ex.destroy()
        ctx.close()


def test_second_publisher_process_on_a_single_publisher_topic_is_refused(bus_env):
    ctx = ZmqContext()
    Node("talker", context=ctx, diagnostics=False).create_publisher(Chatter, "/demo/chatter")
    proc = subprocess.run(
        [sys.executable, "-m", "launch.node_main", "--node", "launch.demo_nodes:Talker",
         "--name", "talker2"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "already published by node 'talker'" in proc.stderr
    assert "Traceback" not in proc.stderr
    ctx.close()


def test_killed_publisher_is_forgotten_and_its_topic_can_be_taken(bus_env):
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.node_main", "--node", "launch.demo_nodes:Talker",
         "--name", "talker"], env={**os.environ, "DRIVESTACK_READY_FD": str(w)}, pass_fds=[w])
    os.close(w)
    wait_ready(proc, r)
    os.close(r)
    assert {e.node for e in registry(bus_env)} == {"talker"}
    proc.kill()
    proc.wait()
    assert registry(bus_env) == []  # dead pid: not live any more
    ctx = ZmqContext()
    Node("talker2", context=ctx, diagnostics=False).create_publisher(Chatter, "/demo/chatter")
    ctx.close()


def test_tcp_with_curve_admits_only_authorized_keys(bus_env, tmp_path):
    import zmq.auth

    keys, allowed, other = tmp_path / "keys", tmp_path / "allowed", tmp_path / "other"
    for d in (keys, allowed, other):
        d.mkdir()
    pub_cert, secret = zmq.auth.create_certificates(str(keys), "run")
    _, stranger = zmq.auth.create_certificates(str(other), "stranger")
    os.replace(pub_cert, allowed / "run.key")
    cfg = {"namespace": bus_env, "protocol": "tcp", "curve_authorized_dir": str(allowed)}
    server = ZmqContext(ZmqConfig(curve_secret_file=secret, **cfg))
    pub = Node("src", context=server, diagnostics=False).create_publisher(Chatter,
                                                                          "/demo/chatter")
    assert registry(bus_env)[0].endpoint.startswith("tcp://127.0.0.1:")
    friend = ZmqContext(ZmqConfig(curve_secret_file=secret, **cfg))
    intruder = ZmqContext(ZmqConfig(curve_secret_file=stranger, **cfg))
    good, bad = Sink("good", "/demo/chatter", context=friend), Sink(
        "bad", "/demo/chatter", context=intruder)
    exs, exg, exb = Executor(server, [pub.node]), Executor(friend, [good]), Executor(
        intruder, [bad])
    deadline = time.monotonic() + 5
    while not good.is_ready() and time.monotonic() < deadline:
        exs.spin_once(0.01)
        exg.spin_once(0.01)
        exb.spin_once(0.01)
    assert good.is_ready()
    pub.publish(Chatter(text="secret"))
    for _ in range(30):
        exs.spin_once(0.01)
        exg.spin_once(0.01)
        exb.spin_once(0.01)
    assert [m.text for m in good.got] == ["secret"]
    assert bad.got == [] and not bad.is_ready()
    for ex, ctx in ((exs, server), (exg, friend), (exb, intruder)):
        ex.destroy()
        ctx.close()


def test_bad_curve_settings_are_clear_errors(bus_env, tmp_path):
    missing = tmp_path / "none.key_secret"
    with pytest.raises(TransportError, match=r"none\.key_secret"):
        ZmqContext(ZmqConfig(namespace=bus_env, curve_secret_file=str(missing)))
    with pytest.raises(TransportError, match="bad bus namespace"):
        ZmqContext(ZmqConfig(namespace="a/b"))


def test_strict_lockstep_over_zmq_names_the_late_node(bus_env):
    ctx = ZmqContext()
    sim = Node("sim", context=ctx, diagnostics=False)
    waiter = FrameWaiter(sim, ControlCommand, "/control/command", deadline_s=0.3)
    ex = Executor(ctx, [sim])
    ctrl_ctx = ZmqContext()
    ctrl = Node("controller", context=ctrl_ctx, diagnostics=False)
    pub = ctrl.create_publisher(ControlCommand, "/control/command")
    ctrl_ex = Executor(ctrl_ctx, [ctrl])
    deadline = time.monotonic() + 5
    while not sim.is_ready() and time.monotonic() < deadline:
        ex.spin_once(0.01)
        ctrl_ex.spin_once(0.01)
    pub.publish(ControlCommand(header=Header(1)))
    assert waiter.wait(1).header.frame == 1
    with pytest.raises(DeadlineMissed, match=r"frame 2 within 0.3 s: late node: controller"):
        waiter.wait(2)
    for e, c in ((ex, ctx), (ctrl_ex, ctrl_ctx)):
        e.destroy()
        c.close()


def test_publisher_counts_its_subscribers(bus_env):
    ctx = ZmqContext()
    src = Node("src", context=ctx, diagnostics=False)
    pub = src.create_publisher(Chatter, "/demo/chatter")
    ex = Executor(ctx, [src])
    assert pub.subscription_count == 0
    sinks = [Sink(f"s{i}", "/demo/chatter", context=ctx) for i in range(2)]
    for s in sinks:
        ex.add_node(s)
    assert ex.spin_until(lambda: pub.subscription_count == 2, timeout_s=5)
    sinks[0].destroy()
    assert ex.spin_until(lambda: pub.subscription_count == 1, timeout_s=5)
    ex.destroy()
    ctx.close()
