"""The demo on a ROS 2 install: simulated RGB-D camera + grounding node + rviz.

    ros2 launch refseg_ros demo.launch.py
    ros2 topic pub --once /command std_msgs/String "data: 'could you pick up the duck'"
    ros2 service call /reshuffle std_srvs/srv/Trigger        # the next scene

sim_camera renders the tabletop scenes and publishes image, depth and camera_info in
``camera_color_optical_frame`` plus the scene's ground truth (JSON on ``ground_truth``);
refseg_node grounds the commands with depth (3D positions, markers); rviz shows the overlay,
mask and markers (config/refseg.rviz). tf2_ros's static_transform_publisher places the optical
frame under ``camera_link`` with the usual optical rotation (x right, y down, z forward from
x forward, y left, z up), so rviz can use either frame. Without tf2_ros or rviz2 installed the
demo still runs: a warning says which of the two is skipped (rviz's fixed frame is the optical
frame, so the transform is a convenience). With ``namespace:=/robot`` every node, rviz included,
moves there (the rviz layout's topics are relative). Without launch_ros the same processes
run directly: ``sim_camera``, ``refseg_node --ros-args -p use_depth:=true`` (or ``refseg demo``
for the scripted, scored run).
"""
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

OPTICAL_FRAME = "camera_color_optical_frame"

ARGUMENTS = (
    ("namespace", "", "Namespace of every node (rviz2 too) and their relative topics."),
    ("params_file", PathJoinSubstitution([FindPackageShare("refseg_ros"), "config", "refseg.yaml"]),
     "Parameter file for refseg_node."),
    ("rviz_config", PathJoinSubstitution([FindPackageShare("refseg_ros"), "config", "refseg.rviz"]),
     "rviz2 layout."),
    ("rviz", "true", "Start rviz2 (true/false)."),
    ("checkpoint", "", "Model checkpoint (.safetensors); empty = the shipped one."),
    ("device", "auto", "auto, cpu, cuda or cuda:N for refseg_node."),
    ("rate_hz", "10.0", "Camera frames per second."),
    ("width", "640", "Camera image width."),
    ("height", "480", "Camera image height."),
    ("seed", "0", "Seed of the first scene (scene i is the tabletop scene of seed + i)."),
    ("scene_period", "0.0", "Seconds between automatic reshuffles; 0 = only on the reshuffle service."),
    ("motion_amplitude", "0.0", "Degrees the camera swings slowly around the table; 0 = static."),
    ("parent_frame", "camera_link", "Frame the camera's optical frame is attached to."),
)


def _installed(package: str) -> bool:
    try:
        get_package_prefix(package)
        return True
    except PackageNotFoundError:
        return False


def _nodes(context):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    namespace = arg("namespace")
    overrides = {"use_depth": True, "image_reliability": "reliable", "device": arg("device")}
    if arg("checkpoint"):
        overrides["checkpoint"] = arg("checkpoint")
    nodes = [
        Node(
            package="refseg_ros",
            executable="sim_camera",
            name="sim_camera",
            namespace=namespace,
            output="screen",
            emulate_tty=True,
            parameters=[{
                "rate_hz": float(arg("rate_hz")),
                "width": int(arg("width")),
                "height": int(arg("height")),
                "seed": int(arg("seed")),
                "scene_period": float(arg("scene_period")),
                "motion_amplitude": float(arg("motion_amplitude")),
                "frame_id": OPTICAL_FRAME,
            }],
        ),
        Node(
            package="refseg_ros",
            executable="refseg_node",
            name="refseg_node",
            namespace=namespace,
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"), overrides],
        ),
    ]
    # Both are conveniences: a missing one is a warning, never a half-started demo.
    log = get_logger("demo.launch")
    if _installed("tf2_ros"):
        nodes.append(Node(
            package="tf2_ros",
            executable="static_transform_publisher",
            name="camera_optical_frame_publisher",
            arguments=["--x", "0", "--y", "0", "--z", "0",
                       "--roll", "-1.5707963", "--pitch", "0", "--yaw", "-1.5707963",
                       "--frame-id", arg("parent_frame"), "--child-frame-id", OPTICAL_FRAME],
        ))
    else:
        log.warning(f"tf2_ros is not installed: no static transform {arg('parent_frame')} -> {OPTICAL_FRAME} "
                    f"(rviz's fixed frame is {OPTICAL_FRAME}, so nothing is missing from the view)")
    if arg("rviz").strip().lower() in ("true", "1", "yes", "on"):
        if _installed("rviz2"):
            nodes.append(Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                namespace=namespace,
                arguments=["-d", LaunchConfiguration("rviz_config")],
            ))
        else:
            log.warning("rviz2 is not installed: not starting it (the overlay, mask and markers are still "
                        "published for any viewer)")
    return nodes


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)]
    )
