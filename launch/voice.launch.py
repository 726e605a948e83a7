"""Talk to the robot: speech_node (offline Whisper) feeding refseg_node's command topic.

    ros2 launch refseg_ros voice.launch.py image_topic:=/camera/color/image_raw
    ros2 launch refseg_ros voice.launch.py audio_file:=/path/to/commands/   # replay recordings

speech_node listens to the default microphone (or audio_file, or an audio topic with
source:=topic) and publishes each transcript on command_topic, where refseg_node takes it.
speech_node starts once refseg_node is active, so nothing it hears is spoken to nobody (an
audio_file run would otherwise finish before the grounding node listens). Both
nodes read their parameter files (config/speech.yaml, config/refseg.yaml or your copies); the
arguments here override them only when set. Without launch_ros, the same two processes::

    refseg_node --ros-args --params-file config/refseg.yaml -r image:=/camera/color/image_raw
    speech_node --ros-args --params-file config/speech.yaml
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("namespace", "", "Namespace of both nodes and their relative topics."),
    ("params_file", PathJoinSubstitution([FindPackageShare("refseg_ros"), "config", "refseg.yaml"]),
     "Parameter file for refseg_node."),
    ("speech_params_file", PathJoinSubstitution([FindPackageShare("refseg_ros"), "config", "speech.yaml"]),
     "Parameter file for speech_node."),
    ("image_topic", "image", "Colour image topic (sensor_msgs/Image)."),
    ("command_topic", "command", "Topic the transcripts go to and refseg_node listens on (std_msgs/String)."),
    ("transcript_topic", "transcript", "Transcript details as JSON (text, confidence, duration, latency)."),
    ("audio_topic", "audio", "Audio input with source:=topic (std_msgs/Int16MultiArray, mono PCM16)."),
    ("source", "", "auto, microphone, file or topic; empty = from speech_params_file."),
    ("audio_file", "", "A WAV file or a directory of them to play instead of the microphone."),
    ("checkpoint", "", "Model checkpoint (.safetensors); empty = from params_file (default: the shipped one)."),
    ("log_level", "info", "Logging level of both nodes' own messages (rcl and the middleware stay at info)."),
)


def _logger(context, namespace: str, node_name: str) -> str:
    """The node's logger name: its full namespace (with any pushed one) and name, joined by dots."""
    if not namespace.startswith("/"):
        namespace = context.launch_configurations.get("ros_namespace", "") + "/" + namespace
    return ".".join([part for part in namespace.split("/") if part] + [node_name])


def _nodes(context):
    speech = {}
    for name in ("source", "audio_file"):
        value = LaunchConfiguration(name).perform(context)
        if value:
            speech[name] = value
    grounding = {}
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    if checkpoint:
        grounding["checkpoint"] = checkpoint
    namespace = LaunchConfiguration("namespace").perform(context)
    level = LaunchConfiguration("log_level").perform(context)

    def log(node_name: str) -> list:  # a plain --log-level would include rcl and the middleware
        return ["--ros-args", "--log-level", f"{_logger(context, namespace, node_name)}:={level}"]

    # The node configures and activates itself (autostart); LifecycleNode only reports its transitions.
    grounding_node = LifecycleNode(
        package="refseg_ros", executable="refseg_node", name="refseg_node",
        namespace=namespace, output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), grounding],
        remappings=[("image", LaunchConfiguration("image_topic")),
                    ("command", LaunchConfiguration("command_topic"))],
        arguments=log("refseg_node"))
    speech_node = Node(
        package="refseg_ros", executable="speech_node", name="speech_node",
        namespace=namespace, output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("speech_params_file"), speech],
        remappings=[("command", LaunchConfiguration("command_topic")),
                    ("transcript", LaunchConfiguration("transcript_topic")),
                    ("audio", LaunchConfiguration("audio_topic"))],
        arguments=log("speech_node"))
    # Once: a later deactivate/activate cycle must not start a second recogniser.
    return [grounding_node, RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=grounding_node, goal_state="active", entities=[speech_node], handle_once=True))]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)]
    )
