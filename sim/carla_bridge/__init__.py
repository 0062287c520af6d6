"""The CARLA bridge: the stack's simulator topics from a CARLA 0.9.16 server
(or `drivestack serve`) through the real ``carla`` client. See
:mod:`sim.carla_bridge.node`."""
