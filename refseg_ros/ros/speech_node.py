"""speech_node: offline voice commands for the grounding node (Whisper tiny.en, no cloud).

Audio comes from a microphone (sounddevice/PortAudio), from WAV files, or from a topic; an energy
voice-activity detector (:mod:`refseg_ros.speech.vad`) cuts it into utterances; a worker thread
transcribes each one (:mod:`refseg_ros.speech.transcriber`) and publishes the text::

    speech_node                                             # default microphone
    speech_node --ros-args -p audio_file:=command.wav       # publish what the file says, then exit
    speech_node --ros-args -p audio_file:=recordings/       # every *.wav in name order, then exit
    speech_node --ros-args -p source:=topic -r audio:=/mic/pcm

Topics (relative names; remap them):

==============  ========================  ====================================================
``audio`` in    std_msgs/Int16MultiArray  mono PCM16 at ``topic_rate`` Hz (``source: topic``)
``command``     std_msgs/String           the transcript, for ``refseg_node``'s ``command`` (durable)
``transcript``  std_msgs/String (JSON)    text, raw, confidence, duration, latency, start, source
==============  ========================  ====================================================

Empty and low-confidence transcripts are dropped with a log line; so are utterances that arrive
faster than the recogniser can take them (``max_queue``). The details topic is JSON in a String
so that it needs no generated message type: ``json.loads(msg.data)["confidence"]``.

``command`` is published transient local, depth 1 (:func:`refseg_ros.ros.commands.command_qos`): a
grounding node that subscribes later still gets the newest transcript, and an ``audio_file`` run
stays up (``wait_for_subscribers``) until someone has subscribed, so what it heard is delivered.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from std_msgs.msg import Int16MultiArray, String

from refseg_ros.language.prompt import initial_prompt
from refseg_ros.language.vocabulary import keywords
from refseg_ros.ros.commands import command_qos
from refseg_ros.ros.params import descriptor, validate
from refseg_ros.ros.speech_params import SPEECH_PARAMS, SPEECH_SPECS
from refseg_ros.ros.runtime import run_node
from refseg_ros.ros.stats import Throttle
from refseg_ros.utils.timing import LatencyWindow
from refseg_ros.speech.audio import TARGET_RATE, AudioError, list_wavs, pcm16_to_float, read_wav, resample
from refseg_ros.speech.command_grammar import CommandGrammar, object_names
from refseg_ros.speech.correction import VocabularyCorrector
from refseg_ros.speech.lexicon import command_lexicon
from refseg_ros.speech.transcriber import SpeechDependencyError, Transcriber, accept, command_text
from refseg_ros.speech.vad import UtteranceSegmenter, VadConfig
from refseg_ros.speech.wer import normalise

NODE_NAME = "speech_node"
_CHUNK_S = 0.1  # file playback feeds the detector in pieces of this length, like a sound card


@dataclass
class _Job:
    samples: np.ndarray
    start_s: float
    source: str
    cut: bool


class SpeechNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        p = {}
        for spec in SPEECH_PARAMS:
            value = self.declare_parameter(spec.name, spec.default, descriptor(spec)).value
            reason = validate(spec.name, value, SPEECH_SPECS)
            if reason:
                self.get_logger().error(f"parameter {reason}; using the default {spec.default!r}")
                value = spec.default
            p[spec.name] = value
        self._p = p
        self._throttle = Throttle(p["warn_throttle_sec"])
        self._latency = LatencyWindow(200)
        self._counts = dict(utterances=0, published=0, dropped=0, overflow=0)

        self._cmd_pub = self.create_publisher(String, "command", command_qos())
        self._details_pub = self.create_publisher(String, "transcript", 10)

        # Bad input (a missing file) fails before the recogniser takes seconds to load.
        self._source = self._resolve_source()
        self._files = self._list_files() if self._source == "file" else []

        prompt = initial_prompt("command", p["extra_prompt"]) if p["vocabulary_prompt"] else (p["extra_prompt"] or None)
        t0 = time.perf_counter()
        vocabulary = keywords() | set(normalise(p["extra_prompt"]))
        corrector = (VocabularyCorrector(vocabulary, max_probability=p["correct_below"])
                     if p["correct_below"] > 0 else None)
        lexicon = command_lexicon(vocabulary) if p["restrict_vocabulary"] else None
        self._transcriber = Transcriber(p["model_path"] or None, threads=p["num_threads"],
                                        compute_type=p["compute_type"], beam_size=p["beam_size"],
                                        language=p["language"], initial_prompt=prompt,
                                        nbest=p["rescore_nbest"], keyword_bonus=p["keyword_bonus"],
                                        vocabulary=vocabulary, corrector=corrector, lexicon=lexicon,
                                        short_window=p["short_window"],
                                        grammar=(CommandGrammar(extra_nouns=object_names(p["extra_prompt"]))
                                                 if p["fit_grammar"] else None),
                                        grammar_weight=p["grammar_weight"], keep_sure=p["grammar_keep_sure"],
                                        denoise=p["denoise"])
        # One throwaway pass so the first real utterance does not pay for lazy initialisation.
        self._transcriber.transcribe(np.zeros(TARGET_RATE // 2, np.float32))
        rescoring = f"of {p['rescore_nbest']} transcripts" if self._transcriber.rescoring else "off"
        self.get_logger().info(f"recogniser loaded in {time.perf_counter() - t0:.1f} s "
                               f"({self._transcriber.model_path.name}, {p['compute_type']}, {p['num_threads']} "
                               f"thread(s), vocabulary prompt {'on' if prompt else 'off'}, vocabulary rescoring "
                               f"{rescoring}, lexicon {'only' if lexicon else 'free'}, correction "
                               f"{'below ' + str(p['correct_below']) if corrector else 'off'}, grammar fitting "
                               f"{'on' if p['fit_grammar'] else 'off'}, denoise {'on' if p['denoise'] else 'off'})")

        self._vad = VadConfig(threshold_db=p["vad_threshold_db"], min_level_db=p["vad_min_level_db"],
                              end_silence_s=p["vad_end_silence_s"], min_speech_s=p["vad_min_speech_s"],
                              max_utterance_s=p["max_utterance_s"])
        self._segmenter = UtteranceSegmenter(self._vad, TARGET_RATE)
        self._seg_lock = threading.Lock()
        self._source_name = ""

        self._jobs: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._input_done = threading.Event()  # file playback finished (never set for live sources)
        self.finished = threading.Event()     # file mode: everything heard has been published
        self._worker = threading.Thread(target=self._work, daemon=True, name="speech-recogniser")
        self._worker.start()

        self._stream = None
        self._player = None
        self._start_source()

    # ---- audio sources -----------------------------------------------------------------------------
    def _resolve_source(self) -> str:
        source = self._p["source"]
        if source != "auto":
            return source
        if self._p["audio_file"]:
            return "file"
        try:
            import sounddevice  # noqa: F401
            return "microphone"
        except (ImportError, OSError):
            self.get_logger().info("sounddevice/PortAudio not available: listening on the audio topic "
                                   "(pip install sounddevice==0.5.6 and apt-get install libportaudio2 for a microphone)")
            return "topic"

    def _list_files(self) -> list[Path]:
        if not self._p["audio_file"]:
            raise ValueError("source is 'file' but the parameter audio_file is empty")
        files = list_wavs(Path(self._p["audio_file"]).expanduser())
        if not files:
            raise AudioError(f"{self._p['audio_file']}: no *.wav files")
        return files

    def _start_source(self) -> None:
        source = self._source
        if source == "file":
            files = self._files
            self._player = threading.Thread(target=self._play, args=(files,), daemon=True, name="speech-player")
            self._player.start()
            self.get_logger().info(f"playing {len(files)} file(s) from {self._p['audio_file']}"
                                   f"{' in real time' if self._p['realtime'] else ''}")
        elif source == "microphone":
            self._open_microphone()
        else:
            self.create_subscription(Int16MultiArray, "audio", self._on_audio_msg, 50)
            self._source_name = "topic"
            self.get_logger().info(f"listening on {self.resolve_topic_name('audio')} "
                                   f"(std_msgs/Int16MultiArray, mono PCM16 at {self._p['topic_rate']} Hz)")
        self.get_logger().info(f"publishing transcripts on {self.resolve_topic_name('command')} "
                               f"and details on {self.resolve_topic_name('transcript')}")

    def _open_microphone(self) -> None:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:
            raise SpeechDependencyError(
                f"microphone input needs sounddevice and PortAudio ({exc}): pip install sounddevice==0.5.6 "
                f"and sudo apt-get install -y libportaudio2; or use -p audio_file:=PATH or -p source:=topic") from exc
        rate = int(self._p["microphone_rate"])
        device = self._p["microphone_device"].strip() or None
        if device is not None and device.isdigit():
            device = int(device)

        def callback(indata, frames, time_info, status):  # PortAudio's thread: keep it short
            if status:
                self._warn(f"microphone: {status}")
            self._on_audio(indata[:, 0].astype(np.float32), rate)

        self._source_name = f"microphone {device if device is not None else 'default'}"
        self._stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device,
                                      blocksize=int(rate * _CHUNK_S), callback=callback)
        self._stream.start()
        self.get_logger().info(f"listening on the {self._source_name} at {rate} Hz")

    def _on_audio_msg(self, msg: Int16MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.int16)
        if data.size == 0:
            self._warn("empty audio message ignored")
            return
        self._on_audio(pcm16_to_float(data), int(self._p["topic_rate"]))

    def _on_audio(self, samples: np.ndarray, rate: int) -> None:
        if rate != TARGET_RATE:
            samples = resample(samples, rate, TARGET_RATE)
        with self._seg_lock:
            utterances = self._segmenter.feed(samples)
        for u in utterances:
            self._enqueue(_Job(u.samples, u.start_s, self._source_name, u.cut))

    def _wait_for_subscribers(self) -> None:
        timeout = float(self._p["wait_for_subscribers"])
        end = time.monotonic() + timeout
        while timeout > 0 and time.monotonic() < end and not self._stop.is_set():
            if self._cmd_pub.get_subscription_count() > 0:
                return
            time.sleep(0.05)
        if timeout > 0 and self._cmd_pub.get_subscription_count() == 0:
            self.get_logger().warning(f"nobody subscribes to {self.resolve_topic_name('command')} after "
                                      f"{timeout:.0f} s; playing anyway (the newest transcript is kept "
                                      f"for a later subscriber)")

    def _play(self, files: list[Path]) -> None:
        try:
            self._wait_for_subscribers()
            chunk = int(TARGET_RATE * _CHUNK_S)
            gap = np.zeros(int(TARGET_RATE * float(self._p["file_gap_s"])), np.float32)
            for path in files:
                if self._stop.is_set():
                    break
                try:
                    audio, _ = read_wav(path)
                except AudioError as exc:
                    self.get_logger().warning(f"skipping {path.name}: {exc}")
                    continue
                self._source_name = path.name
                audio = np.concatenate([audio, gap])
                t0 = time.monotonic()
                for i in range(0, len(audio), chunk):
                    if self._stop.is_set():
                        break
                    self._on_audio(audio[i:i + chunk], TARGET_RATE)
                    if self._p["realtime"]:
                        delay = t0 + (i + chunk) / TARGET_RATE - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                with self._seg_lock:  # each file is its own recording
                    rest = self._segmenter.flush()
                for u in rest:
                    self._enqueue(_Job(u.samples, u.start_s, path.name, u.cut))
        finally:
            self._input_done.set()
            with self._cv:
                self._cv.notify_all()

    # ---- recogniser --------------------------------------------------------------------------------
    def _enqueue(self, job: _Job) -> None:
        with self._cv:
            self._counts["utterances"] += 1
            # A live source may not wait for the recogniser; a file can (it is not real time).
            while self._player is not None and len(self._jobs) >= self._p["max_queue"] and not self._stop.is_set():
                self._cv.wait(0.1)
            if len(self._jobs) >= self._p["max_queue"]:
                self._jobs.popleft()
                self._counts["overflow"] += 1
                self._warn(f"recogniser behind: dropped the oldest utterance (max_queue {self._p['max_queue']})")
            self._jobs.append(job)
            self._cv.notify_all()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._jobs and not self._stop.is_set():
                    if self._input_done.is_set():
                        self.finished.set()
                    self._cv.wait(0.1)
                if self._stop.is_set():
                    return
                job = self._jobs.popleft()
                self._cv.notify_all()
            try:
                self._handle(job)
            except Exception as exc:  # noqa: BLE001 - one bad utterance must not stop the node
                self._warn(f"transcription failed: {type(exc).__name__}: {exc}")

    def _handle(self, job: _Job) -> None:
        t = self._transcriber.transcribe(job.samples)
        self._latency.add(t.latency_s)
        reason = accept(t, float(self._p["min_confidence"]))
        where = f"{job.source} at {job.start_s:.1f} s" if job.source else f"at {job.start_s:.1f} s"
        if reason:
            self._counts["dropped"] += 1
            self._log_throttled(f"dropped utterance ({where}, {t.duration_s:.1f} s): {reason}", "info")
            return
        text = command_text(t.text)
        details = t.as_dict()
        details.update(text=text, raw=t.text, start=round(job.start_s, 3), source=job.source, cut=job.cut,
                       stamp=self.get_clock().now().nanoseconds / 1e9)
        self._cmd_pub.publish(String(data=text))
        self._details_pub.publish(String(data=json.dumps(details)))
        self._counts["published"] += 1
        self.get_logger().info(f"heard {text!r} (confidence {t.confidence:.2f}, {t.duration_s:.1f} s of audio "
                               f"from {where}, transcribed in {t.latency_s:.2f} s)")

    # ---- logging and shutdown ----------------------------------------------------------------------
    def _log_throttled(self, message: str, level: str = "warning") -> None:
        text = self._throttle.check(message)
        if text is not None:
            (self.get_logger().info if level == "info" else self.get_logger().warning)(text)

    def _warn(self, message: str) -> None:
        self._log_throttled(message, "warning")

    def has_command_subscribers(self) -> bool:
        return self._cmd_pub.get_subscription_count() > 0

    @property
    def file_mode(self) -> bool:
        return self._player is not None

    def summary(self) -> str:
        c = self._counts
        lat = self._latency.percentile(50)
        return (f"{c['utterances']} utterance(s), {c['published']} published, {c['dropped']} dropped, "
                f"{c['overflow']} over the queue; median transcription {lat:.2f} s" if len(self._latency)
                else f"{c['utterances']} utterance(s), none transcribed")

    def close(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:  # noqa: BLE001 - the device may already be gone
                pass
        for thread in (self._player, self._worker):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)


def _spin_until_finished(executor, node: SpeechNode) -> None:
    """Spin until Ctrl-C, or until an ``audio_file`` run has published everything it heard."""
    while rclpy.ok() and not node.finished.is_set():
        executor.spin_once(timeout_sec=0.1)
    if node.finished.is_set():
        # The durable publisher hands its last command to a late subscriber only while it lives:
        # wait for one (up to wait_for_subscribers), then let reliable deliveries complete.
        deadline = time.monotonic() + float(node._p["wait_for_subscribers"])
        while rclpy.ok() and not node.has_command_subscribers() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 1.0
        while rclpy.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        node.get_logger().info(f"audio_file done: {node.summary()}")


def main(args: list[str] | None = None) -> int:
    return run_node("speech_node", SpeechNode, args=args, spin=_spin_until_finished,
                    exit_codes=((SpeechDependencyError, 2),))


if __name__ == "__main__":
    sys.exit(main())
