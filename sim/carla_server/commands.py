"""apply_batch / apply_batch_sync: CARLA's ``rpc::Command`` list, executed in order.

On the wire a command is ``[[variant_index, payload]]`` (``rpc::Command`` is an
array around a ``boost::variant2``). Indices of the 0.9.16 client (traced from
the real client, see tests/sim/carla_server/test_commands.py):

  0 SpawnActor [description, transform, parent optional, attachment type,
    socket name, do_after commands]; 1 DestroyActor [id]; 2 ApplyVehicleControl
    [id, control]; 4 ApplyWalkerControl [id, control]; 6 ApplyTransform [id,
    transform]; 8 ApplyTargetVelocity [id, vector]; 9 ApplyTargetAngularVelocity;
    14 SetSimulatePhysics; 15 SetEnableGravity; 16 SetAutopilot [id, enabled].

``do_after`` commands of a SpawnActor run after it with actor id 0 (the client's
``FutureActor``) replaced by the spawned actor's id. Each command answers a
``CommandResponse`` (``Response<ActorId>``): the actor id, or an error message;
a failed spawn skips its ``do_after``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.carla_server import wire
from sim.carla_server.world import SpawnError

if TYPE_CHECKING:
    from sim.carla_server.server import CarlaServer

SPAWN_ACTOR = 0
DESTROY_ACTOR = 1
APPLY_VEHICLE_CONTROL = 2
APPLY_WALKER_CONTROL = 4
APPLY_TRANSFORM = 6
APPLY_TARGET_VELOCITY = 8
APPLY_TARGET_ANGULAR_VELOCITY = 9
SET_SIMULATE_PHYSICS = 14
SET_ENABLE_GRAVITY = 15
SET_AUTOPILOT = 16

NAMES = {SPAWN_ACTOR: "SpawnActor", DESTROY_ACTOR: "DestroyActor",
         APPLY_VEHICLE_CONTROL: "ApplyVehicleControl", APPLY_WALKER_CONTROL: "ApplyWalkerControl",
         APPLY_TRANSFORM: "ApplyTransform", APPLY_TARGET_VELOCITY: "ApplyTargetVelocity",
         APPLY_TARGET_ANGULAR_VELOCITY: "ApplyTargetAngularVelocity",
         SET_SIMULATE_PHYSICS: "SetSimulatePhysics", SET_ENABLE_GRAVITY: "SetEnableGravity",
         SET_AUTOPILOT: "SetAutopilot"}


def unwrap(command: Any) -> tuple[int, list]:
    """(variant index, payload) of one wire command; ValueError if malformed."""
    if isinstance(command, list) and len(command) == 1 and isinstance(command[0], list):
        command = command[0]
    if (not isinstance(command, list) or len(command) != 2 or not isinstance(command[0], int)
            or not isinstance(command[1], list)):
        raise ValueError(f"malformed command {command!r}")
    return command[0], command[1]


def apply_batch(server: CarlaServer, commands: list) -> list:
    """Run ``commands``; one CommandResponse per top-level command. The caller holds
    the world lock."""
    if not isinstance(commands, list):
        raise ValueError("apply_batch: expected a list of commands")
    return [_run(server, c, future_id=0) for c in commands]


def _run(server: CarlaServer, command: Any, future_id: int) -> list:
    try:
        index, p = unwrap(command)
        actor_id = _execute(server, index, p, future_id)
        return [[1, actor_id]]
    except (KeyError, ValueError, SpawnError, TypeError, IndexError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return [[0, [str(message)]]]


def _actor_id(value: Any, future_id: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an actor id, got {value!r}")
    return future_id if value == 0 and future_id else value


def _execute(server: CarlaServer, index: int, p: list, future_id: int) -> int:
    world = server.world
    if index == SPAWN_ACTOR:
        desc = wire.Description.from_msg(p[0])
        tf = wire.parse_transform(p[1])
        parent_opt = p[2] if len(p) > 2 else [False]
        parent = int(parent_opt[1]) if isinstance(parent_opt, list) and len(parent_opt) > 1 \
            and parent_opt[0] is True else 0
        actor = world.spawn(desc, tf, _actor_id(parent, future_id) if parent else 0)
        for after in (p[5] if len(p) > 5 and isinstance(p[5], list) else []):
            response = _run(server, after, future_id=actor.id)
            if response[0][0] == 0:
                raise ValueError(f"spawned actor {actor.id}, then: {response[0][1][0]}")
        return actor.id
    actor_id = _actor_id(p[0] if p else None, future_id)
    if index == DESTROY_ACTOR:
        if not world.destroy(actor_id):
            raise KeyError(f"DestroyActor: actor {actor_id} not found")
        server.streams.close_stream(actor_id)
    elif index == APPLY_VEHICLE_CONTROL:
        world.apply_control(actor_id, wire.parse_control(p[1]))
    elif index == APPLY_WALKER_CONTROL:
        control = p[1]
        world.apply_walker_control(actor_id, wire.parse_vector(control[0]),
                                   float(control[1]) if len(control) > 1 else 0.0)
    elif index == APPLY_TRANSFORM:
        world.set_transform(actor_id, wire.parse_transform(p[1]))
    elif index == APPLY_TARGET_VELOCITY:
        world.set_target_velocity(actor_id, wire.parse_vector(p[1]))
    elif index in (APPLY_TARGET_ANGULAR_VELOCITY, SET_SIMULATE_PHYSICS, SET_ENABLE_GRAVITY):
        if actor_id not in world.actors:
            raise KeyError(f"{NAMES[index]}: actor {actor_id} not found")
    elif index == SET_AUTOPILOT:
        world.set_autopilot(actor_id, bool(p[1]))
    else:
        raise ValueError(f"command type {index} is not supported by the drivestack server")
    return actor_id
