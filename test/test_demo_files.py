"""launch/demo.launch.py by inspection (launch_ros cannot be installed here), and the executables
and dependencies it relies on."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "demo.launch.py"


def _tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _node_calls(tree) -> dict[str, dict]:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    out = {}
    for call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        out[kw["executable"].value] = kw
    return out


def _constant(tree, name: str):
    return next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in n.targets))


def test_demo_launch_is_a_launch_ros_description_importing_nothing_else():
    tree = _tree()
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs and not funcs["generate_launch_description"].args.args
    modules = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"launch", "launch_ros", "ament_index_python"}  # every ROS 2 install has all three
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")


def test_demo_launch_starts_camera_node_tf_and_rviz():
    tree = _tree()
    nodes = _node_calls(tree)
    assert set(nodes) == {"sim_camera", "refseg_node", "static_transform_publisher", "rviz2"}
    for exe in ("sim_camera", "refseg_node"):
        assert nodes[exe]["package"].value == "refseg_ros"
        script = REPO / "scripts" / exe
        assert script.is_file() and os.access(script, os.X_OK)
        assert script.read_text().startswith("#!/usr/bin/env python3")
    assert nodes["static_transform_publisher"]["package"].value == "tf2_ros"
    assert nodes["rviz2"]["package"].value == "rviz2"
    # rviz:=false and a missing rviz2/tf2_ros: test_launch_files runs the description with both

    # the camera's parameters exist on the camera node, with the frame the node publishes
    from refseg_ros.ros.sim_camera import DEFAULT_FRAME_ID, SPECS

    params = nodes["sim_camera"]["parameters"].elts[0]
    keys = {k.value for k in params.keys}
    assert keys <= set(SPECS) and {"rate_hz", "frame_id", "motion_amplitude"} <= keys
    assert _constant(tree, "OPTICAL_FRAME") == DEFAULT_FRAME_ID

    # refseg_node gets depth; every LaunchConfiguration used is declared
    args_table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                      and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in n.targets))
    declared = {elt.elts[0].value for elt in args_table.elts}
    for elt in args_table.elts:
        assert len(elt.elts) == 3 and elt.elts[2].value
    used = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
            and getattr(c.func, "id", "") in ("LaunchConfiguration", "arg") and c.args
            and isinstance(c.args[0], ast.Constant)}
    assert used and used <= declared
    overrides = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "overrides" for t in n.targets))
    pairs = {k.value: v for k, v in zip(overrides.keys, overrides.values)}
    assert pairs["use_depth"].value is True
    rviz_args = [e.value for e in nodes["rviz2"]["arguments"].elts if isinstance(e, ast.Constant)]
    assert "-d" in rviz_args and (REPO / "config" / "refseg.rviz").is_file()


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx  # tf2's fixed-axis roll, pitch, yaw


def test_static_transform_places_the_optical_frame_by_the_optical_convention():
    tree = _tree()
    tf_args = _node_calls(tree)["static_transform_publisher"]["arguments"].elts
    values = {}
    items = list(tf_args)
    for flag, value in zip(items[::2], items[1::2]):
        values[flag.value] = value.value if isinstance(value, ast.Constant) else value
    child = values["--child-frame-id"]
    assert isinstance(child, ast.Name) and child.id == "OPTICAL_FRAME"
    R = _rpy_matrix(float(values["--roll"]), float(values["--pitch"]), float(values["--yaw"]))
    # optical z (forward) = parent x, optical x (right) = parent -y, optical y (down) = parent -z
    np.testing.assert_allclose(R @ [0, 0, 1], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, -1], atol=1e-6)


def test_package_declares_what_the_demo_uses():
    xml = (REPO / "package.xml").read_text()
    for dep in ("std_srvs", "tf2_ros", "rviz2", "launch_ros"):
        assert f"<exec_depend>{dep}</exec_depend>" in xml, dep
    assert "ros-kilted-std-srvs==" in (REPO / "requirements" / "ros.txt").read_text()
    setup = (REPO / "setup.py").read_text()
    assert "sim_camera = refseg_ros.ros.sim_camera:main" in setup
    makefile = (REPO / "Makefile").read_text()
    demo_recipe = makefile.split("\ndemo:")[1].split("\n\n")[0]
    assert "refseg demo" in demo_recipe
