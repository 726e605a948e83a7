"""speech_node over real DDS, as a user runs it: espeak-ng speaks tabletop commands into WAV files,
``speech_node -p audio_file:=DIR`` (its own process, Whisper tiny.en) transcribes them onto
``command``, and ``refseg_node`` (its own process, the shipped checkpoint by default) grounds them
in a rendered tabletop frame. Also: silence, noise and a 60 s recording.

The commands are grammar expressions of one rendered scene, so its ground truth says which object
each one means. Without a shipped checkpoint the grounding node runs a randomly initialised model
(written by conftest's ``checkpoint`` fixture): then the chain (WAV -> text -> command ->
groundings) is checked but not whether the right object is found, which needs the trained model.
"""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from node_process import STARTUP_TIMEOUT, NodeProcess
from paths import PARAMS_FILE

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("faster_whisper", reason="the speech extra is installed by tools/bootstrap.sh")

from ros_client import FRAME_ID, Client  # noqa: E402

from refseg_ros.language.parser import Action, parse_command  # noqa: E402
from refseg_ros.language.vocabulary import keywords  # noqa: E402
from refseg_ros.model.predictor import DEFAULT_CHECKPOINT  # noqa: E402
from refseg_ros.speech.audio import TARGET_RATE, read_wav, write_wav  # noqa: E402
from refseg_ros.speech.synth import synthesise  # noqa: E402
from refseg_ros.speech.wer import WerTotals  # noqa: E402

pytestmark = pytest.mark.ros

SHIPPED = DEFAULT_CHECKPOINT.is_file()
N_COMMANDS = 10
#: Keyword WER bar (object, colour, size and spatial words): about twice the rate measured on
#: these commands (docs/speech.md). Greedy decoding of the same audio repeats.
KEYWORD_WER_BAR = 0.25
SPEECH_TIMEOUT = 400  # start-up + real-time playback + transcription, on a shared 2-core machine


def _speech_args(ns: str, audio: Path, *extra: str) -> list[str]:
    return ["-r", f"__ns:={ns}", "-p", f"audio_file:={audio}", "-p", "num_threads:=1", *extra]


# ---- the scene and its spoken commands ---------------------------------------------------------------

@pytest.fixture(scope="module")
def scene():
    """A rendered 640x480 tabletop scene with at least 5 objects that have unique expressions."""
    from refseg_ros.data import render_scene

    for seed in range(300, 340):
        s = render_scene(seed, 640, 480)
        if sum(1 for v in s.expressions.values() if v) >= 5:
            return s
    pytest.fail("no scene with 5 describable objects in seeds 300-339")


@pytest.fixture(scope="module")
def spoken(scene, tmp_path_factory):
    """{file name: (spoken text, object index)} and the directory of WAV files."""
    out = tmp_path_factory.mktemp("spoken")
    chosen: list[tuple[str, int]] = []
    for rank in range(3):  # round-robin over objects: every object, then a second expression each...
        for k, sentences in sorted(scene.expressions.items()):
            if rank < len(sentences) and len(chosen) < N_COMMANDS:
                chosen.append((sentences[rank]["sent"], k))
    assert len(chosen) >= 10
    verbs = ("pick up", "grab", "please pick up", "take")
    files = {}
    for i, (expr, k) in enumerate(chosen):
        text = f"{verbs[i % len(verbs)]} {expr}"
        name = f"command_{i:02d}.wav"
        synthesise(text, out / name)
        files[name] = (text, k)
    return out, files


# ---- the end-to-end run, shared by the tests below --------------------------------------------------

@pytest.fixture(scope="module")
def voice_run(request, scene, spoken, ros_env):
    """Both nodes in their own processes; the test streams the scene image and records everything."""
    from std_msgs.msg import String

    wav_dir, _files = spoken
    ground_args = ["--params-file", str(PARAMS_FILE), "-r", "__ns:=/voice", "-p", "num_threads:=1",
                   "-p", "max_rate_hz:=4.0"]
    if not SHIPPED:  # a random model: the chain is tested, not the accuracy
        ground_args += ["-p", f"checkpoint:={request.getfixturevalue('checkpoint')}"]
    grounding = NodeProcess(ground_args, env=ros_env)
    # The speech node waits until refseg_node subscribes to command (it does when active).
    speech = NodeProcess(_speech_args("/voice", wav_dir, "-p", "realtime:=true", "-p", "file_gap_s:=1.0",
                                      "-p", f"wait_for_subscribers:={STARTUP_TIMEOUT}.0"),
                         env=ros_env, name="speech_node", executable="speech_node")
    client = None
    try:
        assert grounding.wait_for(r"active: listening on", STARTUP_TIMEOUT), grounding.log()[-3000:]
        client = Client("/voice", visuals=False)
        transcripts: list[tuple[float, dict]] = []
        client.node.create_subscription(String, "/voice/transcript",
                                        lambda m: transcripts.append((time.monotonic(), json.loads(m.data))), 50)
        t0 = time.monotonic()
        exited = None
        while time.monotonic() - t0 < SPEECH_TIMEOUT:
            client.publish_image(scene.image)
            client.spin(0.25)
            if exited is None and speech.proc.poll() is not None:
                exited = time.monotonic()
            if exited is not None:
                pending = [d for _, d in transcripts if not client.results_for(d["text"])]
                if not pending or time.monotonic() - exited > 30:
                    break
        speech.stop()
        yield dict(transcripts=[d for _, d in transcripts], client=client, speech=speech, grounding=grounding,
                   wall=time.monotonic() - t0)
    finally:
        speech.stop()
        grounding.stop()
        if client is not None:
            client.close()


def _by_file(run) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in run["transcripts"]:
        out.setdefault(d["source"], []).append(d)
    return out


def test_speech_node_transcribes_synthesised_commands(voice_run, spoken):
    _, files = spoken
    speech = voice_run["speech"]
    log = speech.log()
    assert speech.proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log
    heard = _by_file(voice_run)
    assert set(heard) <= set(files)
    assert all(len(v) == 1 for v in heard.values()), heard  # one command per spoken file, no repeats
    totals = WerTotals()
    vocab = keywords()
    for name, (text, _) in files.items():
        totals.add(text, heard[name][0]["text"] if name in heard else "", vocab)
    latency = [d["latency"] for d in voice_run["transcripts"]]
    print(f"\nspeech_node on {len(files)} espeak-ng commands: {len(heard)} transcribed, WER "
          f"{100 * totals.wer:.1f} %, keyword WER {100 * totals.keyword_wer:.1f} % "
          f"({totals.keyword_errors}/{totals.keywords}); latency per utterance median {np.median(latency):.2f} s, "
          f"max {max(latency):.2f} s; confidence min {min(d['confidence'] for d in voice_run['transcripts']):.2f}")
    for name, (text, _) in files.items():
        print(f"  {text!r} -> {heard[name][0]['text'] if name in heard else None!r}")
    assert len(heard) >= len(files) - 1, f"only {len(heard)} of {len(files)} files gave a command:\n{log[-3000:]}"
    assert totals.keyword_wer <= KEYWORD_WER_BAR, f"keyword WER {totals.keyword_wer:.3f}"
    for d in voice_run["transcripts"]:
        assert set(d) >= {"text", "confidence", "duration", "latency", "source", "start"}
        assert 0.0 < d["confidence"] <= 1.0 and 0.3 < d["duration"] < 10.0 and d["latency"] > 0


def test_voice_commands_reach_the_grounding_node(voice_run):
    client = voice_run["client"]
    groundable = [d["text"] for d in voice_run["transcripts"] if parse_command(d["text"]).action == Action.GROUND]
    assert groundable
    reached = [t for t in groundable if client.results_for(t)]
    assert len(reached) >= 0.9 * len(groundable), \
        f"{len(reached)}/{len(groundable)} commands grounded:\n{voice_run['grounding'].log()[-3000:]}"
    for text in reached:
        _, arr = client.results_for(text)[0]
        assert arr.header.frame_id == FRAME_ID
        # an expression asking for every match has one result per object, adjacent
        assert [k for k, _ in itertools.groupby(g.expression for g in arr.results)] == \
            list(parse_command(text).expressions)


@pytest.mark.skipif(not SHIPPED, reason=f"needs the trained model: no shipped checkpoint at {DEFAULT_CHECKPOINT}")
def test_voice_commands_ground_the_right_object(voice_run, spoken, scene):
    _, files = spoken
    client, heard = voice_run["client"], _by_file(voice_run)
    hits = []
    for name, (text, k) in files.items():
        ok = False
        if name in heard and client.results_for(heard[name][0]["text"]):
            _, arr = client.results_for(heard[name][0]["text"])[0]
            g = arr.results[0]
            x0, y0, x1, y1 = scene.objects[k]["bbox"]
            ix = max(0.0, min(x1, g.x_max) - max(x0, g.x_min)) * max(0.0, min(y1, g.y_max) - max(y0, g.y_min))
            union = (x1 - x0) * (y1 - y0) + (g.x_max - g.x_min) * (g.y_max - g.y_min) - ix
            ok = g.found and ix / union >= 0.5
        hits.append(ok)
    # The same expressions typed, grounded in-process by the shipped model on the same image: what
    # the speech chain is measured against (the model alone scores 83 % Prec@0.5 on test scenes;
    # this one scene has several same-kind objects and is harder).
    from refseg_ros.model.predictor import GroundingPredictor
    from refseg_ros.training.metrics import box_iou_xyxy

    typed_exprs = [parse_command(text).expressions[0] for text, _ in files.values()]
    predictor = GroundingPredictor.from_checkpoint()
    predictor.set_command(typed_exprs)
    typed = [box_iou_xyxy(g.box, scene.objects[k]["bbox"]) >= 0.5
             for g, (_, k) in zip(predictor.predict(scene.image), files.values())]
    print(f"\nspoken commands grounded on the right object (box IoU >= 0.5): {sum(hits)}/{len(hits)}; "
          f"the same expressions typed: {sum(typed)}/{len(typed)}")
    assert sum(typed) >= 0.5 * len(typed), f"typed {sum(typed)}/{len(typed)}"
    # speech may cost at most one command of what typing the expressions gets
    assert sum(hits) >= sum(typed) - 1, f"spoken {sum(hits)}/{len(hits)} vs typed {sum(typed)}/{len(typed)}"


# ---- silence, noise, a long recording ---------------------------------------------------------------

def test_silence_noise_and_a_60s_recording_neither_crash_nor_flood(tmp_path, ros_env):
    from std_msgs.msg import String

    rng = np.random.default_rng(0)
    write_wav(tmp_path / "a_silence.wav", np.zeros(3 * TARGET_RATE, np.float32))
    write_wav(tmp_path / "b_noise.wav", (0.1 * rng.standard_normal(8 * TARGET_RATE)).astype(np.float32))
    # 60 s of quiet room noise with three commands in it
    spoken = ["pick up the red mug", "grab the blue cube on the left", "the yellow duck next to the tray"]
    long = (0.003 * rng.standard_normal(60 * TARGET_RATE)).astype(np.float32)
    for text, at in zip(spoken, (8, 28, 48)):
        voice, _ = read_wav(synthesise(text, tmp_path / "part.wav"))
        long[at * TARGET_RATE:at * TARGET_RATE + len(voice)] += 0.7 * voice
    write_wav(tmp_path / "c_long.wav", long)
    (tmp_path / "part.wav").unlink()

    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("speech_robustness_client", context=ctx)
    commands, details = [], []
    node.create_subscription(String, "/robust/command", lambda m: commands.append(m.data), 50)
    node.create_subscription(String, "/robust/transcript", lambda m: details.append(json.loads(m.data)), 50)
    speech = NodeProcess(_speech_args("/robust", tmp_path, "-p", "wait_for_subscribers:=60.0"), env=ros_env,
                         name="speech_node", executable="speech_node")
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        end = time.monotonic() + SPEECH_TIMEOUT
        while time.monotonic() < end and speech.proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # anything still in flight
            executor.spin_once(timeout_sec=0.05)
        log = speech.log()
        assert speech.proc.poll() == 0, log[-3000:]
        assert "Traceback" not in log and "audio_file done" in log
        sources = [d["source"] for d in details]
        assert "a_silence.wav" not in sources and "b_noise.wav" not in sources, details
        from_long = [d for d in details if d["source"] == "c_long.wav"]
        print(f"\n60 s recording: {len(from_long)} commands: {[d['text'] for d in from_long]}")
        assert len(commands) == len(details) <= len(spoken)  # no flood: at most one per spoken command
        assert len(from_long) >= 2, log[-3000:]
    finally:
        speech.stop()
        node.destroy_node()
        rclpy.shutdown(context=ctx)



def test_audio_topic_input_at_another_rate(tmp_path, ros_env):
    """source:=topic: PCM16 chunks at 22.05 kHz (espeak-ng's rate, resampled by the node) -> one command."""
    from std_msgs.msg import Int16MultiArray, String

    from refseg_ros.speech.audio import float_to_pcm16

    voice, rate = read_wav(synthesise("pick up the blue cube", tmp_path / "c.wav"), rate=None)
    assert rate == 22050
    pcm = float_to_pcm16(np.concatenate([np.zeros(rate // 2, np.float32), voice, np.zeros(rate * 2, np.float32)]))
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("speech_topic_client", context=ctx)
    commands = []
    node.create_subscription(String, "/mic/command", lambda m: commands.append(m.data), 10)
    pub = node.create_publisher(Int16MultiArray, "/mic/audio", 100)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    speech = NodeProcess(["-r", "__ns:=/mic", "-p", "source:=topic", "-p", f"topic_rate:={rate}",
                          "-p", "num_threads:=1"], env=ros_env, name="speech_node", executable="speech_node")
    try:
        assert speech.wait_for(r"listening on /mic/audio", STARTUP_TIMEOUT), speech.log()[-3000:]
        end = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        chunk = rate // 10
        for i in range(0, len(pcm), chunk):  # 2x real time, like a sound card that is a little ahead
            pub.publish(Int16MultiArray(data=pcm[i:i + chunk].tolist()))
            executor.spin_once(timeout_sec=0.05)
        pub.publish(Int16MultiArray(data=[]))  # bad input: warned about, not fatal
        end = time.monotonic() + 60
        while not commands and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        executor.spin_once(timeout_sec=0.5)
        log = speech.log()
        assert len(commands) == 1, f"{commands}\n{log[-3000:]}"
        assert {"blue", "cube"} <= set(commands[0].lower().strip(".").split()), commands
        assert speech.proc.poll() is None and "empty audio message ignored" in log
        code = speech.stop()
        assert code == 0 and "Traceback" not in speech.log(), f"exit code {code}\n{speech.log()[-3000:]}"
    finally:
        speech.stop()
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_missing_audio_file_is_one_clear_error(ros_env, tmp_path):
    speech = NodeProcess(["-p", f"audio_file:={tmp_path / 'nothing.wav'}"], env=ros_env, name="speech_node",
                         executable="speech_node")
    assert speech.proc.wait(timeout=120) == 1
    speech.stop()
    log = speech.log()
    assert f"speech_node: AudioError: {tmp_path / 'nothing.wav'}: no such file or directory" in log, log
    assert "Traceback" not in log and "recogniser loaded" not in log  # failed before loading the model
