"""The launch files run against stand-ins for launch/launch_ros (not installable here): which nodes
they start, in which namespace, with which per-node log level, in which order, and what the demo
does without tf2_ros or rviz2. The stand-ins accept only keyword arguments the real classes take,
so a typo fails here instead of on a robot."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Keyword arguments of the real classes (launch 3.7, launch_ros 0.28) the launch files may use.
_EXECUTE = {"output", "emulate_tty", "condition", "respawn", "respawn_delay", "sigterm_timeout", "sigkill_timeout",
            "prefix", "cwd", "env", "additional_env", "on_exit", "log_cmd", "cached_output"}
_NODE = {"executable", "package", "name", "namespace", "exec_name", "parameters", "remappings", "ros_arguments",
         "arguments"} | _EXECUTE


class _Fake:
    allowed: set[str] = set()

    def __init__(self, *args, **kwargs) -> None:
        unknown = set(kwargs) - self.allowed
        assert not unknown, f"{type(self).__name__} takes no {sorted(unknown)}"
        self.args, self.kw = args, kwargs


class Node(_Fake):
    allowed = _NODE


class LifecycleNode(Node):
    def __init__(self, **kwargs) -> None:
        assert "name" in kwargs and "namespace" in kwargs, "LifecycleNode needs name and namespace"
        super().__init__(**kwargs)


class OnStateTransition(_Fake):
    allowed = {"entities", "target_lifecycle_node", "transition", "start_state", "goal_state", "matcher",
               "handle_once"}


class RegisterEventHandler(_Fake):
    def __init__(self, event_handler) -> None:
        super().__init__(event_handler)
        self.handler = event_handler


class DeclareLaunchArgument(_Fake):
    allowed = {"default_value", "description", "choices"}

    def __init__(self, name, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.name = name


class OpaqueFunction(_Fake):
    allowed = {"function", "args", "kwargs"}


class LaunchDescription:
    def __init__(self, entities) -> None:
        self.entities = list(entities)


class LaunchConfiguration:
    def __init__(self, name) -> None:
        self.name = name

    def perform(self, context) -> str:
        return context.launch_configurations[self.name]  # KeyError: used but never declared


class PathJoinSubstitution(_Fake):
    def perform(self, context) -> str:
        return "/".join(p if isinstance(p, str) else "<share>" for p in self.args[0])


class FindPackageShare(_Fake):
    pass


class _Logger:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    info = debug = error = warning


class PackageNotFoundError(KeyError):
    pass


@pytest.fixture
def load(monkeypatch):
    """load(name) -> the launch file's module, executed against the stand-ins."""
    logger = _Logger()
    modules = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument, "OpaqueFunction": OpaqueFunction,
                           "RegisterEventHandler": RegisterEventHandler},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                                 "PathJoinSubstitution": PathJoinSubstitution},
        "launch.logging": {"get_logger": lambda name=None: logger},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node, "LifecycleNode": LifecycleNode},
        "launch_ros.event_handlers": {"OnStateTransition": OnStateTransition},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
        "ament_index_python": {},
        "ament_index_python.packages": {"PackageNotFoundError": PackageNotFoundError,
                                        "get_package_prefix": lambda package: f"/opt/ros/{package}"},
    }
    for name, attrs in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))

    def _load(filename: str):
        path = REPO / "launch" / filename
        spec = importlib.util.spec_from_file_location(f"_launch_{path.stem.replace('.', '_')}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.test_logger = logger
        return module

    return _load


def run(module, ros_namespace: str | None = None, **args) -> list:
    """generate_launch_description() with ``args`` over the declared defaults; the entities its
    OpaqueFunction returns."""
    ld = module.generate_launch_description()
    declared = {e.name: e for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    for e in declared.values():
        assert e.kw["description"], e.name
    assert set(args) <= set(declared), set(args) - set(declared)
    context = types.SimpleNamespace(launch_configurations={})
    for name, e in declared.items():
        default = e.kw["default_value"]
        context.launch_configurations[name] = default if isinstance(default, str) else default.perform(context)
    context.launch_configurations.update(args)
    if ros_namespace is not None:  # what PushRosNamespace leaves for the nodes of an included file
        context.launch_configurations["ros_namespace"] = ros_namespace
    (opaque,) = [e for e in ld.entities if isinstance(e, OpaqueFunction)]
    return opaque.kw["function"](context)


def _log_level(node) -> str:
    args = node.kw["arguments"]
    assert args[:2] == ["--ros-args", "--log-level"]
    return args[2]


@pytest.mark.parametrize("namespace, pushed, logger", [
    ("", None, "refseg_node"),
    ("/robot", None, "robot.refseg_node"),
    ("robot/arm", None, "robot.arm.refseg_node"),
    ("inner", "/outer", "outer.inner.refseg_node"),
    ("/abs", "/outer", "abs.refseg_node"),
])
def test_log_level_names_only_the_node_logger(load, namespace, pushed, logger):
    (node,) = run(load("refseg.launch.py"), ros_namespace=pushed, namespace=namespace, log_level="debug")
    assert _log_level(node) == f"{logger}:=debug"  # rcl and the middleware keep their level
    assert node.kw["namespace"] == namespace and node.kw["name"] == "refseg_node"


def test_refseg_launch_overrides_only_what_is_set(load):
    (node,) = run(load("refseg.launch.py"))
    assert node.kw["parameters"][1] == {}
    (node,) = run(load("refseg.launch.py"), device="cpu", use_depth="true")
    assert node.kw["parameters"][1] == {"device": "cpu", "use_depth": True}
    assert _log_level(node) == "refseg_node:=info"


def test_voice_launch_starts_speech_once_refseg_node_is_active(load):
    grounding, register = run(load("voice.launch.py"), namespace="/robot", log_level="debug",
                              audio_file="/tmp/cmd.wav")
    assert isinstance(grounding, LifecycleNode) and grounding.kw["name"] == "refseg_node"
    assert grounding.kw["namespace"] == "/robot"
    assert _log_level(grounding) == "robot.refseg_node:=debug"
    handler = register.handler
    assert isinstance(register, RegisterEventHandler) and isinstance(handler, OnStateTransition)
    assert handler.kw["target_lifecycle_node"] is grounding
    assert handler.kw["goal_state"] == "active"
    assert handler.kw["handle_once"] is True  # a later re-activation must not start a second recogniser
    (speech,) = handler.kw["entities"]
    assert speech.kw["executable"] == "speech_node" and not isinstance(speech, LifecycleNode)
    assert speech.kw["namespace"] == "/robot"
    assert _log_level(speech) == "robot.speech_node:=debug"
    assert speech.kw["parameters"][1] == {"audio_file": "/tmp/cmd.wav"}
    # Both nodes meet on the same command topic.
    remaps = [dict((k, v.name) for k, v in n.kw["remappings"]) for n in (grounding, speech)]
    assert remaps[0]["command"] == remaps[1]["command"] == "command_topic"


@pytest.mark.parametrize("rviz", ["true", "false"])
def test_demo_launch_without_tf2_ros_or_rviz2_warns_and_runs_the_rest(load, monkeypatch, rviz):
    module = load("demo.launch.py")
    monkeypatch.setattr(module, "_installed", lambda package: False)
    nodes = run(module, rviz=rviz)
    assert [n.kw["executable"] for n in nodes] == ["sim_camera", "refseg_node"]
    warnings = module.test_logger.warnings
    assert any("tf2_ros" in w for w in warnings)
    assert any("rviz2" in w for w in warnings) == (rviz == "true")


def test_demo_launch_with_everything_installed_puts_rviz_in_the_namespace(load, monkeypatch):
    module = load("demo.launch.py")
    monkeypatch.setattr(module, "_installed", lambda package: True)
    nodes = run(module, namespace="/robot")
    by_exe = {n.kw["executable"]: n for n in nodes}
    assert set(by_exe) == {"sim_camera", "refseg_node", "static_transform_publisher", "rviz2"}
    # rviz resolves the layout's relative topics in its own namespace, so it must share the nodes'.
    for exe in ("sim_camera", "refseg_node", "rviz2"):
        assert by_exe[exe].kw["namespace"] == "/robot", exe
    assert not module.test_logger.warnings
    assert "rviz2" not in {n.kw["executable"] for n in run(module, rviz="false")}


def test_demo_package_check_uses_the_ament_index(load, monkeypatch):
    module = load("demo.launch.py")

    def prefix(package):
        if package == "rviz2":
            raise PackageNotFoundError(package)
        return "/opt/ros"

    monkeypatch.setattr(module, "get_package_prefix", prefix)
    assert module._installed("tf2_ros") and not module._installed("rviz2")
