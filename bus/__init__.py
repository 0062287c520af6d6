"""The message bus: message types, serialization, topics, transport, nodes, recording.

What other packages use is re-exported here; they never reach into bus internals.
"""

from bus import messages
from bus.config import ConfigError
from bus.lockstep import DeadlineMissed, FrameWaiter
from bus.node import (
    BusFollower,
    Executor,
    Node,
    Publisher,
    Subscription,
    Timer,
    install_signal_handlers,
)
from bus.serialization import DecodeError, decode, encode
from bus.topics import KEEP_ALL, LATEST, TOPICS, QoS, TopicSpec
from bus.transport import InProcessContext, ManualClock, ZmqConfig, ZmqContext

__all__ = [
    "KEEP_ALL", "LATEST", "TOPICS", "BusFollower", "ConfigError", "DeadlineMissed",
    "DecodeError", "Executor", "FrameWaiter", "InProcessContext", "ManualClock", "Node",
    "Publisher", "QoS", "Subscription", "Timer", "TopicSpec", "ZmqConfig", "ZmqContext",
    "decode", "encode", "install_signal_handlers", "messages",
]
