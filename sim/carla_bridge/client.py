"""The connection to a CARLA server: connect, pick the town, synchronous mode,
bounded ticks, and a cleanup that always runs.

:class:`CarlaSession` is a context manager. On entry it connects (``timeout_s``
bounds every RPC, so a closed port or a dead server fails fast), checks the server
answers, loads the scenario's town when the server has it and it is not already
loaded, saves the world's settings and switches to synchronous mode at
``fixed_delta_seconds`` (substepping within CARLA's limit
``max_substep_delta_time * max_substeps >= fixed_delta_seconds``). Every actor
spawned through :meth:`CarlaSession.spawn` is remembered; on exit (normal end,
exception, KeyboardInterrupt) sensors are stopped, every remembered actor is
destroyed (children first) and the original settings are restored. A failure of
the server is a :class:`BridgeError` naming host and port.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: CARLA's limit on physics substeps (max_substeps <= 16)
MAX_SUBSTEPS = 16


class BridgeError(ValueError):
    """The CARLA server cannot be used (one line: what, and host:port)."""


def town_name(map_name: str) -> str:
    """The town a scenario's map names, as CARLA calls it: ``town_grid`` for a
    built-in name, the stem of an .xodr path, the last part of ``/Game/.../Town01``."""
    return Path(map_name).stem if map_name else ""


def substepping(dt: float, max_substep_s: float = 0.01) -> tuple[float, int]:
    """(max_substep_delta_time, max_substeps) covering ``dt`` seconds in substeps of
    at most ``max_substep_s``, with CARLA's cap of 16 substeps."""
    if not dt > 0:
        raise ValueError(f"fixed_delta_seconds must be > 0, not {dt}")
    # ceil with a tolerance: 0.05 // 0.01 is 4.999... in binary floating point
    n = min(MAX_SUBSTEPS, max(1, math.ceil(dt / max_substep_s - 1e-9)))
    return dt / n, n


@dataclass
class BridgeConfig:
    """Where the server is and how the world is driven."""

    host: str = "127.0.0.1"
    port: int = 2000
    timeout_s: float = 10.0  # every RPC and every tick
    dt: float = 0.05  # fixed_delta_seconds
    town: str = ""  # the town to drive ("" : use the current world)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host: expected a host name or address")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port}: expected 1..65535")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout {self.timeout_s}: expected seconds > 0")
        if not 0 < self.dt <= 0.1:
            raise ValueError(f"fixed_delta_seconds {self.dt}: expected (0, 0.1] s")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class CarlaSession:
    """One connection's world, in synchronous mode, with the actors it spawned."""

    config: BridgeConfig
    client: Any = None
    world: Any = None
    actors: list[Any] = field(default_factory=list)  # spawned, in order
    traffic_manager: Any = None  # set when NPCs were handed to it (synchronous)
    _original: Any = None
    _closed: bool = False

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> CarlaSession:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, what: str, exc: BaseException | None = None) -> BridgeError:
        why = f": {_short(exc)}" if exc is not None else ""
        return BridgeError(f"CARLA server {self.config.address}: {what}{why}")

    def open(self) -> None:
        """Connect, check, pick the town, go synchronous (see module docstring)."""
        import carla

        cfg = self.config
        try:
            self.client = carla.Client(cfg.host, cfg.port)
            self.client.set_timeout(cfg.timeout_s)
            version = self.client.get_server_version()
        except RuntimeError as exc:
            raise self.fail(f"no answer within {cfg.timeout_s:g} s (is a server running "
                            "there? start one with CarlaUE4.sh or `drivestack serve`)",
                            exc) from None
        if version != self.client.get_client_version():
            log.warning("CARLA server %s is version %s, this client %s", cfg.address,
                        version, self.client.get_client_version())
        try:
            self.world = self.client.get_world()
            if cfg.town:
                self._load_town(cfg.town)
            self._original = self.world.get_settings()
            settings = self.world.get_settings()
            settings.synchronous_mode = True
            settings.fixed_delta_seconds = cfg.dt
            settings.substepping = True
            settings.max_substep_delta_time, settings.max_substeps = substepping(cfg.dt)
            self.world.apply_settings(settings)
        except BridgeError:
            raise
        except RuntimeError as exc:
            raise self.fail("setting up the world failed", exc) from None

    def available_towns(self) -> list[str]:
        return sorted(town_name(m) for m in self.client.get_available_maps())

    def _load_town(self, town: str) -> None:
        """Load ``town`` unless it is the current map; an error if the server lacks it."""
        current = town_name(self.world.get_map().name)
        if current == town:
            return
        towns = self.available_towns()
        if town not in towns:
            raise self.fail(f"has no map {town} (it has: {', '.join(towns) or 'none'}); "
                            "use a scenario on one of those maps")
        log.info("loading %s on %s", town, self.config.address)
        self.world = self.client.load_world(town)

    # ------------------------------------------------------------------ running
    def spawn(self, blueprint: Any, transform: Any, attach_to: Any = None) -> Any:
        """Spawn and remember an actor (destroyed by :meth:`close`)."""
        try:
            actor = (self.world.spawn_actor(blueprint, transform, attach_to=attach_to)
                     if attach_to is not None else self.world.spawn_actor(blueprint, transform))
        except RuntimeError as exc:
            raise self.fail(f"spawning {blueprint.id} failed", exc) from None
        self.actors.append(actor)
        return actor

    def adopt(self, actor: Any) -> Any:
        """Remember an actor spawned another way (e.g. try_spawn_actor)."""
        self.actors.append(actor)
        return actor

    def tick(self) -> int:
        """One synchronous step, bounded by the timeout; the new frame."""
        try:
            return int(self.world.tick(self.config.timeout_s))
        except RuntimeError as exc:
            raise self.fail(f"tick got no answer within {self.config.timeout_s:g} s "
                            "(server gone or stalled)", exc) from None

    # ------------------------------------------------------------------ cleanup
    def close(self) -> None:
        """Stop sensors, destroy every spawned actor (children first), restore the
        original settings. Runs once; each step goes on when another fails (a dead
        server makes every call fail fast, within the timeout)."""
        if self._closed:
            return
        self._closed = True
        if self.client is None:
            return
        for actor in reversed(self.actors):
            if hasattr(actor, "stop") and actor.type_id.startswith("sensor."):
                try:
                    if actor.is_listening:
                        actor.stop()
                except RuntimeError:
                    pass
        ids = [a.id for a in reversed(self.actors)]
        if ids:
            import carla

            try:
                self.client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids],
                                             False)
            except RuntimeError as exc:
                log.warning("%s", self.fail("destroying our actors failed", exc))
        self.actors.clear()
        if self.traffic_manager is not None:
            try:
                self.traffic_manager.set_synchronous_mode(False)
            except RuntimeError:
                pass
        if self._original is not None and self.world is not None:
            try:
                self.world.apply_settings(self._original)
            except RuntimeError as exc:
                log.warning("%s", self.fail("restoring the world settings failed", exc))
        self.world = None
        self.client = None  # its threads and sockets go with the object


def probe(config: BridgeConfig) -> str:
    """Check, without changing anything on the server, that it answers within the
    timeout and has ``config.town`` (when set); returns the server's version.
    Raises :class:`BridgeError` (one line naming host:port) otherwise. The CLI
    calls this before starting any node, so a wrong address is one error line."""
    session = CarlaSession(config)
    import carla

    try:
        client = carla.Client(config.host, config.port)
        client.set_timeout(config.timeout_s)
        version = client.get_server_version()
    except RuntimeError as exc:
        raise session.fail(f"no answer within {config.timeout_s:g} s (is a server running "
                           "there? start one with CarlaUE4.sh or `drivestack serve`)",
                           exc) from None
    if config.town:
        try:
            current = town_name(client.get_world().get_map().name)
            towns = sorted(town_name(m) for m in client.get_available_maps())
        except RuntimeError as exc:
            raise session.fail("reading its maps failed", exc) from None
        if config.town != current and config.town not in towns:
            raise session.fail(f"has no map {config.town} (it has: {', '.join(towns) or 'none'})"
                               "; use a scenario on one of those maps")
    return str(version)
