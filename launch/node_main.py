"""Entry point of one node process: ``python -m launch.node_main --node mod:Class ...``.

The launcher starts every node this way. The contract:
  * bus namespace from ``DRIVESTACK_NS``;
  * once the node is ready (every subscription connected), ``ready`` is written to
    the pipe whose fd is in ``DRIVESTACK_READY_FD`` (if set);
  * SIGINT/SIGTERM stop it cleanly (sockets and registry files removed), exit 0;
  * a user error (bad parameters, unknown topic, ...) prints one line and exits 2;
    a strict lockstep deadline missed (``bus.DeadlineMissed``, whose message names
    the late node) prints one line and exits 1; a crash prints the traceback and
    exits 1.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import logging
import os
import sys
import time

from bus import ConfigError, DeadlineMissed, Executor, Node, install_signal_handlers
from bus.node import ShutdownRequested, default_context
from bus.topics import UnknownTopicError
from bus.transport import TransportError

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


def load_node_class(spec: str) -> type[Node]:
    """``package.module:Class`` -> the class; ValueError with a clear message."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"node {spec!r}: expected 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"node {spec!r}: cannot import {module_name} ({exc})") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise ValueError(f"node {spec!r}: {module_name} has no Node class {class_name}")
    return cls


def parse_remaps(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"remap {item!r}: expected FROM:=TO")
        out[src] = dst
    return out


def _signal_ready(ready_fd: int | None) -> None:
    if ready_fd is None:
        return
    try:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    except OSError:
        pass  # the launcher went away; it will not read it


def run_node(node: Node, ready_fd: int | None) -> None:
    """Spin ``node`` until a signal; report readiness once (see module docstring)."""
    executor = Executor(node.context, [node])
    install_signal_handlers(executor)
    reported = False
    last_notice = time.monotonic()
    try:
        while True:
            executor.spin_once(0.05)
            if reported:
                continue
            if node.is_ready():
                node.state = "ready"
                _signal_ready(ready_fd)
                reported = True
            elif time.monotonic() - last_notice > 5.0:
                last_notice = time.monotonic()
                node.get_logger().info("waiting for publishers of %s",
                                       ", ".join(node.unready_topics()))
    except (KeyboardInterrupt, ShutdownRequested):
        pass
    finally:
        executor.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.node_main")
    parser.add_argument("--node", required=True, help="module:Class")
    parser.add_argument("--name", required=True)
    parser.add_argument("--params-json", default="{}")
    parser.add_argument("--params-source", default="parameters")
    parser.add_argument("--remap", action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    fd = os.environ.get("DRIVESTACK_READY_FD")
    ready_fd = int(fd) if fd else None
    try:
        cls = load_node_class(args.node)
        params = json.loads(args.params_json)
        node = cls(args.name, context=default_context(), params=params or None,
                   params_source=args.params_source, remaps=parse_remaps(args.remap))
    except (ValueError, ConfigError, UnknownTopicError, TransportError, TypeError) as exc:
        print(f"error: node {args.name}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        run_node(node, ready_fd)
    except DeadlineMissed as exc:
        print(f"error: node {args.name}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def exit_now(code: int) -> None:
    """Exit with ``code`` without the interpreter's finalization: by then
    :func:`run_node` has destroyed the node (sockets, registry entries, files
    closed) and the atexit handlers and logging are flushed here. Finalizing a
    process with torch and onnxruntime loaded took 4.7 s after the node had
    stopped, on a loaded 2-core VM: past the launcher's SIGTERM grace, which then
    killed the node and failed the run."""
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
