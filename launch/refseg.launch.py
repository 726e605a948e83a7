"""Start refseg_node next to a camera driver and a speech recogniser.

    ros2 launch refseg_ros refseg.launch.py image_topic:=/camera/color/image_raw \\
        depth_topic:=/camera/aligned_depth_to_color/image_raw \\
        camera_info_topic:=/camera/color/camera_info use_depth:=true

Everything the node does is in config/refseg.yaml (or your copy, via params_file); device,
checkpoint and use_depth given here override that file only when set. The node configures and
activates itself (parameter autostart); set autostart: false in the params file to drive it from a
lifecycle manager instead. Without launch_ros the same node runs directly:
``refseg_node --ros-args --params-file config/refseg.yaml -r image:=/camera/color/image_raw``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("namespace", "", "Namespace of the node and its relative topics."),
    ("params_file", PathJoinSubstitution([FindPackageShare("refseg_ros"), "config", "refseg.yaml"]),
     "Parameter file for refseg_node."),
    ("image_topic", "image", "Colour image topic (sensor_msgs/Image; <topic>/compressed with use_compressed)."),
    ("command_topic", "command", "Spoken or typed command topic (std_msgs/String)."),
    ("depth_topic", "depth", "Depth image registered to the colour image (16UC1 mm or 32FC1 m)."),
    ("camera_info_topic", "camera_info", "Colour camera's sensor_msgs/CameraInfo."),
    ("device", "", "auto, cpu, cuda or cuda:N; empty = from params_file."),
    ("checkpoint", "", "Model checkpoint (.safetensors); empty = from params_file (default: the shipped one)."),
    ("use_depth", "", "true/false: publish 3D positions from depth; empty = from params_file."),
    ("log_level", "info", "Logging level of refseg_node's own messages (rcl and the middleware stay at info)."),
)


def _logger(context, namespace: str, node_name: str) -> str:
    """The node's logger name: its full namespace (with any pushed one) and name, joined by dots."""
    if not namespace.startswith("/"):
        namespace = context.launch_configurations.get("ros_namespace", "") + "/" + namespace
    return ".".join([part for part in namespace.split("/") if part] + [node_name])


def _node(context):
    overrides = {}
    for name in ("device", "checkpoint"):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    use_depth = LaunchConfiguration("use_depth").perform(context).strip().lower()
    if use_depth:
        overrides["use_depth"] = use_depth in ("true", "1", "yes", "on")
    namespace = LaunchConfiguration("namespace").perform(context)
    level = LaunchConfiguration("log_level").perform(context)
    return [Node(
        package="refseg_ros",
        executable="refseg_node",
        name="refseg_node",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("command", LaunchConfiguration("command_topic")),
            ("depth", LaunchConfiguration("depth_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        # A plain --log-level would also turn on every rcl and middleware logger of the process.
        arguments=["--ros-args", "--log-level", f"{_logger(context, namespace, 'refseg_node')}:={level}"],
    )]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_node)]
    )
