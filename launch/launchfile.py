"""Launch files: YAML that says which nodes to run, with what parameters and remaps.

Format (every key is checked; a misspelled key is an error, never a silent default)::

    args:                     # declared arguments; overridable as name:=value
      rate: {default: 10, description: "talker rate, Hz"}
      namespace: {default: ""}
      map: {}                 # no default: must be given
    include:                  # other launch files, with arg values for them
      - file: other.yaml      # relative to this file, or a name under launch/files/
        args: {rate: $(arg rate)}
    nodes:
      - node: launch.demo_nodes:Talker   # module:Class
        name: talker                     # unique in the whole launch
        params: {rate_hz: $(arg rate)}   # given to the node as JSON
        remaps: {/demo/chatter: /demo/chatter}
        restart: on-failure              # or never (default)
        max_restarts: 3                  # on-failure only (default 3)
        required: true                   # its exit ends the run (default true)
        if: $(arg with_talker)           # only when true (default true)
        unless: $(arg quiet)             # only when false (default false)

``if`` and ``unless`` (nodes and includes) take a boolean, e.g. a boolean arg.

Substitutions work in every string (keys included): ``$(arg NAME)``, ``$(env NAME)``
and ``$(env NAME DEFAULT)``. A string that is exactly one ``$(arg NAME)`` takes the
argument's value with its type (int, float, bool), so ``rate_hz: $(arg rate)`` stays a
number; anywhere else the value is interpolated as text. An arg default may refer to
args declared above it.

Every problem raises :class:`LaunchFileError` with one line naming the file, the key
(``nodes[2].restart``) and what was expected, as the rest of drivestack's config does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

FILES_DIR = Path(__file__).resolve().parent / "files"
"""Where the launch files that ship with drivestack live (``drivestack launch demo``)."""

RestartPolicy = Literal["never", "on-failure"]
RESTART_POLICIES: tuple[str, ...] = ("never", "on-failure")
DEFAULT_MAX_RESTARTS = 3

_TOP_KEYS = ("args", "include", "nodes")
_ARG_KEYS = ("default", "description")
_INCLUDE_KEYS = ("file", "args", "if", "unless")
_NODE_KEYS = ("node", "name", "params", "params_file", "remaps", "restart", "max_restarts",
              "required", "if", "unless")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ARG_NAME = re.compile(rf"^{_IDENT}$")
_NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NODE_TARGET = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$")
_SUBST = re.compile(r"\$\(([^()]*)\)")
_ARG_ONLY = re.compile(rf"^\$\(\s*arg\s+({_IDENT})\s*\)$")

Scalar = str | int | float | bool


class LaunchFileError(Exception):
    """A launch file (or a ``name:=value`` override) is wrong; the message says where."""

    def __init__(self, file: str | Path, key: str, expected: str) -> None:
        self.file = str(file)
        self.key = key
        self.expected = expected
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {expected}")


@dataclass(frozen=True)
class NodeSpec:
    """One node process to start, fully resolved (no substitutions left)."""

    name: str
    node: str  # "package.module:Class", imported by launch.node_main in the node process
    params: dict[str, Any] = field(default_factory=dict)
    remaps: dict[str, str] = field(default_factory=dict)
    restart: RestartPolicy = "never"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    required: bool = True
    source: str = ""  # "file nodes[i]", so runtime errors can point back at the launch file
    params_source: str = "parameters"  # where params came from, for the node's errors


@dataclass(frozen=True)
class LaunchDescription:
    """What to launch: the nodes in start order, and the top file's resolved args."""

    nodes: list[NodeSpec]
    args: dict[str, Any]


# ------------------------------------------------------------------------------ YAML
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would silently overwrite."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LaunchFileError(path, "", f"cannot read launch file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise LaunchFileError(path, "", "expected UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no tags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LaunchFileError(path, "", f"invalid YAML: {exc.problem or exc.context}{at}") from None
    except yaml.YAMLError as exc:
        raise LaunchFileError(path, "", f"invalid YAML: {exc}") from None


# ---------------------------------------------------------------------- file lookup
def resolve_launch_file(name_or_path: str | Path) -> Path:
    """A path to an existing file as given, else ``launch/files/NAME[.yaml]`` for a bare name."""
    given = Path(name_or_path)
    if given.is_file():
        return given.resolve()
    tried = [str(given)]
    if given.parent == Path("."):
        for candidate in (FILES_DIR / given.name, FILES_DIR / f"{given.name}.yaml"):
            if candidate.is_file():
                return candidate
            tried.append(str(candidate))
    raise LaunchFileError(name_or_path, "", f"no such launch file (looked for {', '.join(tried)})")


def _resolve_include(value: str, including: Path, key: str) -> Path:
    relative = including.parent / value
    if relative.is_file():
        return relative.resolve()
    if Path(value).parent == Path("."):
        for candidate in (FILES_DIR / value, FILES_DIR / f"{value}.yaml"):
            if candidate.is_file():
                return candidate
    raise LaunchFileError(
        including, key, f"included file {value!r} not found (relative to {including.parent} "
        f"or in {FILES_DIR})"
    )


# -------------------------------------------------------------------- substitutions
def _as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as YAML writes it, not Python's "True"
    return str(value)


@dataclass(frozen=True)
class _Scope:
    """What substitutions see while one file is processed."""

    file: Path
    args: Mapping[str, Scalar]
    env: Mapping[str, str]

    def substitute(self, value: Any, key: str) -> Any:
        """``value`` with every ``$(...)`` replaced, recursing into lists and mappings."""
        if isinstance(value, str):
            return self._substitute_str(value, key)
        if isinstance(value, list):
            return [self.substitute(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                new_key = self._substitute_str(k, f"{key}.{k}") if isinstance(k, str) else k
                out[new_key] = self.substitute(v, f"{key}.{k}")
            return out
        return value

    def _substitute_str(self, text: str, key: str) -> Any:
        whole = _ARG_ONLY.match(text)
        if whole:
            return self._arg(whole.group(1), key)
        return _SUBST.sub(lambda m: _as_text(self._one(m.group(1), key)), text)

    def _one(self, body: str, key: str) -> Scalar:
        kind, *rest = body.split() or [""]
        if kind == "arg" and len(rest) == 1:
            return self._arg(rest[0], key)
        if kind == "env" and rest:
            name, default = rest[0], " ".join(rest[1:])
            if name in self.env:
                return self.env[name]
            if len(rest) > 1:
                return default
            raise LaunchFileError(
                self.file, key, f"$(env {name}): environment variable {name} is not set "
                f"(give a default: $(env {name} DEFAULT))"
            )
        raise LaunchFileError(
            self.file, key, f"bad substitution $({body}): expected $(arg NAME), $(env NAME) "
            "or $(env NAME DEFAULT)"
        )

    def _arg(self, name: str, key: str) -> Scalar:
        if name not in self.args:
            declared = ", ".join(self.args) or "none"
            raise LaunchFileError(
                self.file, key, f"$(arg {name}): argument {name!r} is not declared "
                f"(declared so far: {declared})"
            )
        return self.args[name]


# ----------------------------------------------------------------------- overrides
def parse_override_value(text: str) -> Scalar:
    """``20`` -> 20, ``true`` -> True, ``0.5`` -> 0.5, anything else stays text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None:
        return ""
    return value if isinstance(value, (str, int, float, bool)) else text


def parse_overrides(items: Sequence[str]) -> dict[str, Scalar]:
    """Command-line ``name:=value`` items -> {name: typed value}."""
    out: dict[str, Scalar] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not _ARG_NAME.match(name):
            raise LaunchFileError("command line", item, "expected an argument as NAME:=VALUE")
        out[name] = parse_override_value(value)
    return out


# -------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class _Overrides:
    """Arg values handed to a file, and who handed them, for the error messages."""

    values: Mapping[str, Scalar]
    parent: Path | None = None  # the including file; None: the command line
    key: str = ""  # "include[i].args" in the parent

    def undeclared(self, name: str, file: Path, declared: Sequence[str]) -> LaunchFileError:
        have = f"declared: {', '.join(declared) or 'none'}"
        if self.parent is None:
            return LaunchFileError(
                file, f"args.{name}", f"not declared, but set on the command line as "
                f"{name}:={_as_text(self.values[name])} ({have})"
            )
        return LaunchFileError(
            self.parent, f"{self.key}.{name}", f"{file} declares no argument {name!r} ({have})"
        )

    def missing(self, name: str, file: Path) -> LaunchFileError:
        how = (f"give it as {name}:=VALUE" if self.parent is None
               else f"set it in {self.parent} {self.key}")
        return LaunchFileError(file, f"args.{name}", f"has no default and no value ({how})")

    def bad_value(self, name: str, file: Path, value: Any) -> LaunchFileError:
        where = (file, f"args.{name}") if self.parent is None else (
            self.parent, f"{self.key}.{name}")
        return LaunchFileError(
            *where, f"expected a string, number or boolean value, got {type(value).__name__}"
        )


def _check_keys(entry: Any, allowed: Sequence[str], file: Path, key: str, what: str) -> dict:
    if not isinstance(entry, dict):
        raise LaunchFileError(
            file, key, f"expected {what} (a mapping with keys {', '.join(allowed)}), "
            f"got {type(entry).__name__}"
        )
    for k in entry:
        if k not in allowed:
            raise LaunchFileError(
                file, f"{key}.{k}" if key else str(k),
                f"unknown key (expected one of: {', '.join(allowed)})",
            )
    return entry


def _check_list(value: Any, file: Path, key: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise LaunchFileError(file, key, f"expected a list, got {type(value).__name__}")
    return value


def _resolve_args(raw: Any, file: Path, overrides: _Overrides, env: Mapping[str, str]) -> dict:
    declared = raw if raw is not None else {}
    if not isinstance(declared, dict):
        raise LaunchFileError(file, "args", f"expected a mapping, got {type(declared).__name__}")
    for name in overrides.values:
        if name not in declared:
            raise overrides.undeclared(name, file, [str(d) for d in declared])
    args: dict[str, Scalar] = {}
    for name, spec in declared.items():
        key = f"args.{name}"
        if not isinstance(name, str):
            raise LaunchFileError(file, key, f"argument name {name!r} is not text (quote it: "
                                  "YAML reads on/off/yes/no/true/false as booleans)")
        if not _ARG_NAME.match(name):
            raise LaunchFileError(file, key, "argument names are letters, digits and _")
        spec = _check_keys({} if spec is None else spec, _ARG_KEYS, file, key, "an argument")
        if not isinstance(spec.get("description", ""), str):
            raise LaunchFileError(file, f"{key}.description", "expected a string")
        if name in overrides.values:
            value = overrides.values[name]
        elif "default" in spec:
            value = _Scope(file, args, env).substitute(spec["default"], f"{key}.default")
        else:
            raise overrides.missing(name, file)
        if not isinstance(value, (str, int, float, bool)):
            if name in overrides.values:
                raise overrides.bad_value(name, file, value)
            raise LaunchFileError(
                file, f"{key}.default",
                f"expected a string, number or boolean value, got {type(value).__name__}",
            )
        args[name] = value
    return args


def _enabled(entry: Mapping[str, Any], file: Path, key: str) -> bool:
    """``if`` / ``unless`` of a (substituted) node or include entry."""
    for cond in ("if", "unless"):
        if cond in entry and not isinstance(entry[cond], bool):
            raise LaunchFileError(file, f"{key}.{cond}",
                                  f"expected true or false, got {entry[cond]!r}")
    return bool(entry.get("if", True)) and not entry.get("unless", False)


def _node_spec(entry: Any, scope: _Scope, key: str) -> NodeSpec | None:
    """The node of one ``nodes`` entry; None when its ``if``/``unless`` leave it out."""
    file = scope.file
    entry = scope.substitute(_check_keys(entry, _NODE_KEYS, file, key, "a node"), key)
    if not _enabled(entry, file, key):
        return None
    for required_key in ("node", "name"):
        if required_key not in entry:
            raise LaunchFileError(file, f"{key}.{required_key}", "missing (it is required)")
    target, name = entry["node"], entry["name"]
    if not isinstance(target, str) or not _NODE_TARGET.match(target):
        raise LaunchFileError(
            file, f"{key}.node", f"expected 'package.module:Class', got {target!r}"
        )
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise LaunchFileError(
            file, f"{key}.name", f"expected a name of letters, digits and _, got {name!r}"
        )
    params = entry.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise LaunchFileError(file, f"{key}.params", "expected a mapping of names to values")
    params_source = f"{file} {key}.params"
    if "params_file" in entry:
        from_file, params_source = _params_file(file, f"{key}.params_file",
                                                entry["params_file"])
        params = {**from_file, **params}  # inline params override the file's
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise LaunchFileError(file, f"{key}.params", f"not representable as JSON ({exc})") from None
    remaps = entry.get("remaps", {})
    if not isinstance(remaps, dict):
        raise LaunchFileError(file, f"{key}.remaps", "expected a mapping of /from: /to topics")
    for src, dst in remaps.items():
        for topic in (src, dst):
            if not isinstance(topic, str) or not topic.startswith("/") or ":=" in topic:
                raise LaunchFileError(
                    file, f"{key}.remaps.{src}", f"expected topic names like /a/b, got {topic!r}"
                )
    restart = entry.get("restart", "never")
    if restart not in RESTART_POLICIES:
        raise LaunchFileError(
            file, f"{key}.restart", f"expected 'never' or 'on-failure', got {restart!r}"
        )
    max_restarts = entry.get("max_restarts", DEFAULT_MAX_RESTARTS)
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise LaunchFileError(
            file, f"{key}.max_restarts", f"expected an integer >= 0, got {max_restarts!r}"
        )
    if "max_restarts" in entry and restart != "on-failure":
        raise LaunchFileError(
            file, f"{key}.max_restarts", "only meaningful with restart: on-failure"
        )
    required = entry.get("required", True)
    if not isinstance(required, bool):
        raise LaunchFileError(file, f"{key}.required", f"expected true or false, got {required!r}")
    return NodeSpec(
        name=name, node=target, params=params, remaps=remaps, restart=restart,
        max_restarts=max_restarts, required=required, source=f"{file} {key}",
        params_source=params_source,
    )


def _params_file(file: Path, key: str, value: Any) -> tuple[dict[str, Any], str]:
    """A node's parameters from a YAML mapping, path relative to the launch file."""
    if not isinstance(value, str) or not value:
        raise LaunchFileError(file, key, f"expected a path to a YAML file, got {value!r}")
    path = (file.parent / value).resolve()
    if not path.is_file():
        raise LaunchFileError(file, key, f"expected an existing YAML file, {path} is not one")
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise LaunchFileError(path, "", "expected a mapping of parameter names to values")
    return data, f"{path} (and {file} {key.rsplit('.', 1)[0]}.params)"


def _load(
    file: Path, overrides: _Overrides, env: Mapping[str, str], stack: tuple[Path, ...]
) -> tuple[list[NodeSpec], dict[str, Scalar]]:
    if file in stack:
        chain = " -> ".join(p.name for p in (*stack, file))
        raise LaunchFileError(stack[-1], "include", f"include cycle: {chain}")
    data = _read_yaml(file)
    if data is None:
        data = {}
    _check_keys(data, _TOP_KEYS, file, "", "a launch file")
    scope = _Scope(file, _resolve_args(data.get("args"), file, overrides, env), env)
    nodes: list[NodeSpec] = []
    for i, inc in enumerate(_check_list(data.get("include"), file, "include")):
        key = f"include[{i}]"
        inc = _check_keys(inc, _INCLUDE_KEYS, file, key, "an include")
        if "file" not in inc:
            raise LaunchFileError(file, f"{key}.file", "missing (it is required)")
        target = scope.substitute(inc["file"], f"{key}.file")
        if not isinstance(target, str):
            raise LaunchFileError(file, f"{key}.file", f"expected a file name, got {target!r}")
        if not _enabled(scope.substitute({k: inc[k] for k in ("if", "unless") if k in inc},
                                         key), file, key):
            continue
        inc_args = scope.substitute(inc.get("args") or {}, f"{key}.args")
        if not isinstance(inc_args, dict):
            raise LaunchFileError(file, f"{key}.args", "expected a mapping of argument values")
        child_nodes, _ = _load(
            _resolve_include(target, file, f"{key}.file"),
            _Overrides(inc_args, file, f"{key}.args"), env, (*stack, file),
        )
        nodes += child_nodes
    for i, entry in enumerate(_check_list(data.get("nodes"), file, "nodes")):
        spec = _node_spec(entry, scope, f"nodes[{i}]")
        if spec is not None:
            nodes.append(spec)
    return nodes, dict(scope.args)


def load_launch_file(
    name_or_path: str | Path,
    overrides: Mapping[str, Scalar] | None = None,
    env: Mapping[str, str] | None = None,
) -> LaunchDescription:
    """Parse, substitute and check a launch file and everything it includes.

    ``overrides`` are values for the top file's declared args (see
    :func:`parse_overrides`); ``env`` stands in for ``os.environ`` in ``$(env ...)``.
    """
    file = resolve_launch_file(name_or_path)
    nodes, args = _load(
        file, _Overrides(overrides or {}),
        os.environ if env is None else env, (),
    )
    if not nodes:
        raise LaunchFileError(file, "nodes", "the launch defines no nodes (after includes)")
    first_seen: dict[str, NodeSpec] = {}
    for spec in nodes:
        if spec.name in first_seen:
            sfile, skey = spec.source.rsplit(" ", 1)
            raise LaunchFileError(
                sfile, f"{skey}.name", f"duplicate node name {spec.name!r} "
                f"(already used by {first_seen[spec.name].source})"
            )
        first_seen[spec.name] = spec
    return LaunchDescription(nodes=nodes, args=args)
