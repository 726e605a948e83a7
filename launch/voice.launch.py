"""Talk to the robot: speech_node (offline Whisper) feeding refseg_node's command topic.

    ros2 launch refseg_ros voice.launch.py image_topic:=/camera/color/image_raw
    ros2 launch refseg_ros voice.launch.py audio_file:=/path/to/commands/   # replay recordings

speech_node listens to the default microphone (or audio_file, or an audio topic with
source:=topic) and publishes each transcript on command_topic, where refseg_node takes it. Both
nodes read their parameter files (config/speech.yaml, config/refseg.yaml or your copies); the
arguments here override them only when set. Without launch_ros, the same two processes::

    refseg_node --ros-args --params-file config/refseg.yaml -r image:=/camera/color/image_raw
    speech_node --ros-args --params-file config/speech.yaml
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
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
    ("log_level", "info", "Logging level of both nodes."),
)


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
    log = ["--ros-args", "--log-level", LaunchConfiguration("log_level")]
    return [
        Node(package="refseg_ros", executable="refseg_node", name="refseg_node",
             namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
             parameters=[LaunchConfiguration("params_file"), grounding],
             remappings=[("image", LaunchConfiguration("image_topic")),
                         ("command", LaunchConfiguration("command_topic"))],
             arguments=log),
        Node(package="refseg_ros", executable="speech_node", name="speech_node",
             namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
             parameters=[LaunchConfiguration("speech_params_file"), speech],
             remappings=[("command", LaunchConfiguration("command_topic")),
                         ("transcript", LaunchConfiguration("transcript_topic")),
                         ("audio", LaunchConfiguration("audio_topic"))],
             arguments=log),
    ]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)]
    )
