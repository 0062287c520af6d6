"""A CARLA 0.9.16-compatible server over the embedded simulator (``drivestack serve``).

The unmodified ``carla==0.9.16`` client connects to the RPC port (msgpack-rpc, see
:mod:`sim.carla_server.rpc`) and subscribes to streams on the streaming port
(:mod:`sim.carla_server.streaming`). Layouts of everything on the wire are in
:mod:`sim.carla_server.wire`; the world behind it (:mod:`sim.carla_server.world`) is
the embedded simulator's own maps, dynamics, traffic, lights, pedestrians and
renderer. ../shared/design/CARLA_PROTOCOL.md has the protocol facts.
"""

CARLA_VERSION = "0.9.16"
