"""What ships around the node, by inspection: launch file, parameter file, rviz layout, executables.

launch_ros cannot be installed here, so the launch file is parsed, not run. (``import launch``
may even resolve to this repository's launch/ folder, so nothing here relies on importing it.)
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import yaml

from refseg_ros.ros.params import PARAMS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "refseg.launch.py"


def _tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _strings(node) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_launch_file_is_a_launch_ros_description():
    tree = _tree()
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    assert not funcs["generate_launch_description"].args.args
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    for needed in [("launch", "LaunchDescription"), ("launch.actions", "DeclareLaunchArgument"),
                   ("launch_ros.actions", "Node"), ("launch.substitutions", "LaunchConfiguration")]:
        assert needed in imports, needed
    # Only launch/launch_ros are imported: it must run on any ROS 2 install.
    modules = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"launch", "launch_ros"}
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")


def test_launch_arguments_remaps_and_executable():
    tree = _tree()
    args_table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                      and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in n.targets))
    declared = {elt.elts[0].value for elt in args_table.elts}
    assert {"namespace", "params_file", "image_topic", "command_topic", "depth_topic", "camera_info_topic",
            "device", "checkpoint", "use_depth"} <= declared
    for elt in args_table.elts:  # (name, default, description)
        assert len(elt.elts) == 3 and isinstance(elt.elts[2], ast.Constant) and elt.elts[2].value

    node_calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    assert len(node_calls) == 1
    kw = {k.arg: k.value for k in node_calls[0].keywords}
    assert kw["package"].value == "refseg_ros"
    executable = kw["executable"].value
    assert (REPO / "scripts" / executable).is_file() and os.access(REPO / "scripts" / executable, os.X_OK)
    remapped = {t.elts[0].value for t in kw["remappings"].elts}
    assert remapped == {"image", "command", "depth", "camera_info"}
    # every LaunchConfiguration used is declared
    used = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
            and getattr(c.func, "id", "") == "LaunchConfiguration" and isinstance(c.args[0], ast.Constant)}
    used |= {"device", "checkpoint", "use_depth"}
    assert used <= declared
    # the default params file is config/refseg.yaml, found in the package share
    assert {"refseg_ros", "config", "refseg.yaml"} <= _strings(args_table)
    assert (REPO / "config" / "refseg.yaml").is_file()


def test_params_file_lists_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "refseg.yaml").read_text())
    ((key, section),) = data.items()
    assert key == "/**"
    values = section["ros__parameters"]
    assert set(values) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert values[p.name] == p.default and type(values[p.name]) is type(p.default), p.name
    text = (REPO / "config" / "refseg.yaml").read_text()
    for p in PARAMS:  # each one commented
        before = text.split(f"    {p.name}:")[0].rstrip().splitlines()[-1]
        assert before.strip().startswith("#"), p.name


def test_rviz_layout_shows_overlay_mask_markers_and_camera_frame():
    data = yaml.safe_load((REPO / "config" / "refseg.rviz").read_text())
    displays = data["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert {"overlay", "mask", "markers", "target"} <= topics
    # Relative: rviz resolves them in its own namespace, so the layout works under namespace:=.
    assert not [t for t in topics if t.startswith("/")]
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/MarkerArray", "rviz_default_plugins/TF"} <= classes
    assert data["Visualization Manager"]["Global Options"]["Fixed Frame"].endswith("optical_frame")


@pytest.mark.ros  # imports the node's entry point (rclpy)
def test_executables():
    script = REPO / "scripts" / "refseg_node"
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/usr/bin/env python3")
    assert "refseg_ros.ros.node import main" in script.read_text()
    setup = ast.parse((REPO / "setup.py").read_text())
    assert "refseg_node = refseg_ros.ros.node:main" in _strings(setup)
    # the entry point resolves
    from refseg_ros.ros import node

    assert callable(node.main)
