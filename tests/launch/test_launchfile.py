"""Launch files: parsing, substitution, overrides, includes, and one clear error per mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from launch.launchfile import (
    FILES_DIR,
    LaunchFileError,
    NodeSpec,
    load_launch_file,
    parse_override_value,
    parse_overrides,
    resolve_launch_file,
)

TALKER = "launch.demo_nodes:Talker"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path, overrides: dict | None = None, env: dict | None = None) -> str:
    with pytest.raises(LaunchFileError) as info:
        load_launch_file(path, overrides, env={} if env is None else env)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


# ------------------------------------------------------------------------ parsing
def test_full_node_entry_and_defaults(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", f"""
        nodes:
          - node: {TALKER}
            name: talker
            params: {{rate_hz: 5.5, text: hi, nested: {{a: [1, 2]}}}}
            remaps: {{/demo/chatter: /demo/other}}
            restart: on-failure
            max_restarts: 5
            required: false
          - node: launch.demo_nodes:Relay
            name: relay
    """)
    d = load_launch_file(f, env={})
    assert d.nodes[0] == NodeSpec(
        name="talker", node=TALKER, params={"rate_hz": 5.5, "text": "hi", "nested": {"a": [1, 2]}},
        remaps={"/demo/chatter": "/demo/other"}, restart="on-failure", max_restarts=5,
        required=False, source=f"{f} nodes[0]", params_source=f"{f} nodes[0].params",
    )
    relay = d.nodes[1]
    assert (relay.params, relay.remaps, relay.restart, relay.max_restarts, relay.required) == (
        {}, {}, "never", 3, True)
    assert d.args == {}


def test_demo_file_is_found_by_name_and_chains_talker_relay_listener() -> None:
    assert resolve_launch_file("demo") == FILES_DIR / "demo.yaml"
    d = load_launch_file("demo")
    assert [(n.name, n.node) for n in d.nodes] == [
        ("talker", TALKER), ("relay", "launch.demo_nodes:Relay"),
        ("listener", "launch.demo_nodes:Listener"),
    ]
    assert d.args["rate"] == 10 and d.nodes[0].params["rate_hz"] == 10
    assert load_launch_file("demo", {"rate": 20}).nodes[0].params["rate_hz"] == 20


def test_resolve_prefers_an_existing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = write(tmp_path / "demo.yaml", f"nodes: [{{node: '{TALKER}', name: mine}}]")
    monkeypatch.chdir(tmp_path)
    assert resolve_launch_file("demo.yaml") == own
    assert resolve_launch_file("demo") == FILES_DIR / "demo.yaml"


# ------------------------------------------------------------------ substitutions
def test_arg_substitution_keeps_types_alone_and_interpolates_inside_text(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", f"""
        args:
          rate: {{default: 10}}
          gain: {{default: 0.5}}
          flag: {{default: true}}
          label: {{default: x}}
        nodes:
          - node: {TALKER}
            name: t_$(arg label)
            params:
              rate: $(arg rate)
              gain: $(arg gain)
              enabled: $(arg flag)
              text: "rate=$(arg rate) on=$(arg flag) gain=$(arg gain)"
              list: [$(arg rate), "$(arg label)/y"]
            remaps: {{/a/$(arg label): /b/$(arg label)}}
    """)
    node = load_launch_file(f, env={}).nodes[0]
    assert node.name == "t_x"
    assert node.params == {"rate": 10, "gain": 0.5, "enabled": True,
                           "text": "rate=10 on=true gain=0.5", "list": [10, "x/y"]}
    assert node.remaps == {"/a/x": "/b/x"}


def test_env_substitution_with_and_without_default(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", f"""
        nodes:
          - node: {TALKER}
            name: t
            params: {{home: $(env HOME_X), mode: $(env MODE_X fast lane), n: $(env N_X)}}
    """)
    params = load_launch_file(f, env={"HOME_X": "/h", "N_X": "3"}).nodes[0].params
    assert params == {"home": "/h", "mode": "fast lane", "n": "3"}  # env values stay text
    msg = error_of(f, env={"HOME_X": "/h"})
    assert msg.startswith(f"{f}: nodes[0].params.n:") and "N_X is not set" in msg


def test_default_may_use_earlier_args_and_env(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", f"""
        args:
          rate: {{default: 10}}
          fast: {{default: $(arg rate)}}
          who: {{default: "$(env WHO nobody)-$(arg rate)"}}
        nodes: [{{node: '{TALKER}', name: t, params: {{r: $(arg fast), w: $(arg who)}}}}]
    """)
    d = load_launch_file(f, {"rate": 20}, env={})
    assert d.args == {"rate": 20, "fast": 20, "who": "nobody-20"}
    assert d.nodes[0].params == {"r": 20, "w": "nobody-20"}


# ---------------------------------------------------------------------- overrides
def test_parse_overrides_types() -> None:
    items = ["rate:=20", "gain:=0.5", "flag:=true", "name:=abc", "e:=", "u:=a:=b"]
    assert parse_overrides(items) == {
        "rate": 20, "gain": 0.5, "flag": True, "name": "abc", "e": "", "u": "a:=b"}
    assert parse_override_value("[1, 2]") == "[1, 2]"  # args are scalars; lists stay text
    with pytest.raises(LaunchFileError, match=r"^command line: rate=20: expected .*NAME:=VALUE"):
        parse_overrides(["rate=20"])


def test_override_of_undeclared_arg_names_file_and_arg(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", f"""
        args: {{rate: {{default: 10}}}}
        nodes: [{{node: '{TALKER}', name: t}}]
    """)
    msg = error_of(f, {"rat": 5})
    assert msg.startswith(f"{f}: args.rat: not declared") and "rat:=5" in msg and "rate" in msg


def test_arg_without_default_must_be_given(tmp_path: Path) -> None:
    f = write(tmp_path / "l.yaml", f"""
        args: {{map: {{description: which map}}}}
        nodes: [{{node: '{TALKER}', name: t, params: {{m: $(arg map)}}}}]
    """)
    assert load_launch_file(f, {"map": "town"}, env={}).nodes[0].params == {"m": "town"}
    msg = error_of(f)
    assert msg.startswith(f"{f}: args.map: has no default") and "map:=VALUE" in msg


# ----------------------------------------------------------------------- includes
def test_include_relative_with_args_and_package_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "part.yaml", f"""
        args: {{rate: {{default: 1}}, tag: {{default: p}}}}
        nodes: [{{node: '{TALKER}', name: $(arg tag)_talker, params: {{rate_hz: $(arg rate)}}}}]
    """)
    top = write(tmp_path / "top.yaml", f"""
        args: {{rate: {{default: 7}}}}
        include:
          - file: sub/part.yaml
            args: {{rate: $(arg rate), tag: a}}
          - file: demo
            args: {{rate: 3}}
        nodes: [{{node: '{TALKER}', name: own}}]
    """)
    d = load_launch_file(top, {"rate": 8}, env={})
    assert [n.name for n in d.nodes] == ["a_talker", "talker", "relay", "listener", "own"]
    assert d.nodes[0].params == {"rate_hz": 8}  # typed through the include
    assert d.nodes[1].params["rate_hz"] == 3
    assert d.nodes[0].source == f"{tmp_path / 'sub' / 'part.yaml'} nodes[0]"
    assert d.args == {"rate": 8}


def test_include_of_undeclared_arg_names_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "part.yaml", f"nodes: [{{node: '{TALKER}', name: t}}]")
    top = write(tmp_path / "top.yaml", "include: [{file: part.yaml, args: {speed: 3}}]")
    msg = error_of(top)
    assert msg.startswith(f"{top}: include[0].args.speed: ") and "declares no argument" in msg


def test_include_missing_file(tmp_path: Path) -> None:
    top = write(tmp_path / "top.yaml", "include: [{file: nope.yaml}]")
    msg = error_of(top)
    assert msg.startswith(f"{top}: include[0].file: included file 'nope.yaml' not found")


def test_include_cycle(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "include: [{file: b.yaml}]")
    write(tmp_path / "b.yaml", "include: [{file: a.yaml}]")
    msg = error_of(a)
    assert "include cycle: a.yaml -> b.yaml -> a.yaml" in msg and msg.startswith(
        f"{tmp_path / 'b.yaml'}: include:")


def test_duplicate_node_names_across_includes(tmp_path: Path) -> None:
    write(tmp_path / "part.yaml", f"nodes: [{{node: '{TALKER}', name: talker}}]")
    top = write(tmp_path / "top.yaml", f"""
        include: [{{file: part.yaml}}]
        nodes:
          - {{node: '{TALKER}', name: other}}
          - {{node: '{TALKER}', name: talker}}
    """)
    msg = error_of(top)
    assert msg.startswith(f"{top}: nodes[1].name: duplicate node name 'talker'")
    assert f"{tmp_path / 'part.yaml'} nodes[0]" in msg


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("body", "key", "expected"), [
    ("nodez: []", "nodez", "unknown key (expected one of: args, include, nodes)"),
    (f"nodes: [{{node: '{TALKER}', name: t, param: {{}}}}]", "nodes[0].param", "unknown key"),
    (f"nodes: [{{node: '{TALKER}', name: t}}, {{node: '{TALKER}', name: u, restart: always}}]",
     "nodes[1].restart", "expected 'never' or 'on-failure', got 'always'"),
    ("nodes: [{node: launch.demo_nodes.Talker, name: t}]", "nodes[0].node",
     "expected 'package.module:Class'"),
    (f"nodes: [{{node: '{TALKER}'}}]", "nodes[0].name", "missing"),
    (f"nodes: [{{node: '{TALKER}', name: 'a b'}}]", "nodes[0].name", "letters, digits"),
    (f"nodes: [{{node: '{TALKER}', name: t, params: $(arg rate)}}]", "nodes[0].params",
     "$(arg rate): argument 'rate' is not declared"),
    (f"nodes: [{{node: '{TALKER}', name: t, params: {{a: $(foo b)}}}}]", "nodes[0].params.a",
     "bad substitution $(foo b)"),
    (f"nodes: [{{node: '{TALKER}', name: t, params: [1]}}]", "nodes[0].params", "mapping"),
    (f"nodes: [{{node: '{TALKER}', name: t, params: {{d: 2024-01-01}}}}]", "nodes[0].params",
     "JSON"),
    (f"nodes: [{{node: '{TALKER}', name: t, remaps: {{chatter: /x}}}}]",
     "nodes[0].remaps.chatter", "topic names like /a/b"),
    (f"nodes: [{{node: '{TALKER}', name: t, required: yes please}}]", "nodes[0].required",
     "true or false"),
    (f"nodes: [{{node: '{TALKER}', name: t, restart: on-failure, max_restarts: -1}}]",
     "nodes[0].max_restarts", "integer >= 0"),
    (f"nodes: [{{node: '{TALKER}', name: t, max_restarts: 2}}]", "nodes[0].max_restarts",
     "only meaningful with restart: on-failure"),
    (f"nodes: {{node: '{TALKER}'}}", "nodes", "expected a list"),
    ("nodes: [3]", "nodes[0]", "expected a node"),
    ("args: {rate: {default: 1, help: x}}\nnodes: []", "args.rate.help", "unknown key"),
    ("args: {on: {default: 1}}", "args.True", "quote it"),
    ("args: {rate: {default: [1]}}", "args.rate.default", "string, number or boolean"),
    ("include: [{file: demo, arg: {}}]", "include[0].arg", "unknown key"),
    ("args: {rate: {default: 1}}", "nodes", "defines no nodes"),
])
def test_error_names_file_key_and_expectation(
    tmp_path: Path, body: str, key: str, expected: str
) -> None:
    f = write(tmp_path / "bad.yaml", body)
    msg = error_of(f)
    assert msg.startswith(f"{f}: {key}: "), msg
    assert expected in msg, msg


def test_malformed_yaml_and_duplicate_keys_name_the_line(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.yaml", "nodes:\n  - node: [unclosed\n")
    assert error_of(f).startswith(f"{f}: invalid YAML: ")
    g = write(tmp_path / "dup.yaml", f"nodes:\n  - node: '{TALKER}'\n    name: a\n    name: b\n")
    msg = error_of(g)
    assert msg.startswith(f"{g}: invalid YAML: duplicate key 'name' at line 4")


def test_missing_file() -> None:
    with pytest.raises(LaunchFileError, match=r"^no_such_launch: no such launch file"):
        load_launch_file("no_such_launch")
    with pytest.raises(LaunchFileError, match=r"^/nonexistent/x\.yaml: no such launch file"):
        load_launch_file("/nonexistent/x.yaml")


def test_params_file_is_merged_under_inline_params(tmp_path: Path) -> None:
    (tmp_path / "talker.yaml").write_text("rate_hz: 5\ntext: from-file\n")
    f = tmp_path / "l.yaml"
    f.write_text("nodes:\n  - node: launch.demo_nodes:Talker\n    name: talker\n"
                 "    params_file: talker.yaml\n    params: {text: inline}\n")
    (node,) = load_launch_file(f).nodes
    assert node.params == {"rate_hz": 5, "text": "inline"}
    assert str(tmp_path / "talker.yaml") in node.params_source


def test_params_file_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "l.yaml"
    f.write_text("nodes:\n  - node: a.b:C\n    name: n\n    params_file: missing.yaml\n")
    with pytest.raises(LaunchFileError, match=r"nodes\[0\]\.params_file: expected an existing"):
        load_launch_file(f)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    f.write_text("nodes:\n  - node: a.b:C\n    name: n\n    params_file: list.yaml\n")
    with pytest.raises(LaunchFileError, match=r"list\.yaml: expected a mapping"):
        load_launch_file(f)


def test_bad_param_value_is_reported_by_the_node_against_the_launch_file(tmp_path: Path) -> None:
    import os
    import subprocess

    from launch.launcher import node_command

    f = tmp_path / "l.yaml"
    f.write_text("nodes:\n  - node: launch.demo_nodes:Talker\n    name: talker\n"
                 "    params: {rate_hz: fast}\n")
    (node,) = load_launch_file(f).nodes
    env = {**os.environ, "DRIVESTACK_RUNTIME_DIR": str(tmp_path), "DRIVESTACK_NS": "pf"}
    proc = subprocess.run(node_command(node), capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2
    assert f"{f} nodes[0].params: rate_hz: expected a number, got 'fast'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_if_and_unless_select_nodes_and_includes(tmp_path: Path) -> None:
    write(tmp_path / "part.yaml", f"""
        nodes: [{{node: '{TALKER}', name: included}}]
    """)
    top = write(tmp_path / "top.yaml", f"""
        args: {{oracle: {{default: false}}}}
        include:
          - {{file: part.yaml, if: $(arg oracle)}}
        nodes:
          - {{node: '{TALKER}', name: perception, unless: $(arg oracle)}}
          - {{node: '{TALKER}', name: oracle, if: $(arg oracle)}}
          - {{node: '{TALKER}', name: always}}
    """)
    assert [n.name for n in load_launch_file(top, env={}).nodes] == ["perception", "always"]
    assert [n.name for n in load_launch_file(top, {"oracle": True}, env={}).nodes] == [
        "included", "oracle", "always"]
    assert "nodes[0].if: expected true or false" in error_of(write(tmp_path / "bad.yaml", f"""
        nodes: [{{node: '{TALKER}', name: x, if: maybe}}]
    """))
