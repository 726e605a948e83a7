#!/usr/bin/env python3
"""Word error rate of the speech recogniser on synthesised tabletop commands, with and without the
vocabulary prompt. Prints one line per prompt style and the transcription latency.

    .venv/bin/python tools/speech_wer.py --commands 20 --voice en-us --wpm 150

Commands are "pick up " + the first grammar expression of each object in rendered tabletop scenes
(seeds from --seed), spoken by espeak-ng. Keyword WER counts only object, colour, size and spatial
words (refseg_ros.language.vocabulary.keywords).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from refseg_ros.language.prompt import initial_prompt  # noqa: E402
from refseg_ros.language.vocabulary import keywords  # noqa: E402
from refseg_ros.speech.audio import read_wav  # noqa: E402
from refseg_ros.speech.synth import synthesise  # noqa: E402
from refseg_ros.speech.transcriber import Transcriber  # noqa: E402
from refseg_ros.speech.wer import WerTotals  # noqa: E402


def commands(n: int, seed: int) -> list[str]:
    from refseg_ros.data import render_scene

    out: list[str] = []
    while len(out) < n:
        scene = render_scene(seed, 320, 240)
        out += ["pick up " + s[0]["sent"] for s in scene.expressions.values() if s]
        seed += 1
    return out[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commands", type=int, default=20)
    ap.add_argument("--seed", type=int, default=200)
    ap.add_argument("--voice", default="en-us")
    ap.add_argument("--wpm", type=int, default=150)
    ap.add_argument("--styles", default="none,nouns,command,all", help="prompt styles: none, nouns, command, all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--show", action="store_true", help="print every transcript")
    a = ap.parse_args()
    texts = commands(a.commands, a.seed)
    styles = a.styles.split(",")
    rec = Transcriber(threads=a.threads)
    vocab = keywords()
    totals = {s: WerTotals() for s in styles}
    latency: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            audio, _ = read_wav(synthesise(text, Path(tmp) / f"{i}.wav", a.voice, a.wpm))
            for style in styles:
                t = rec.transcribe(audio, "" if style == "none" else initial_prompt(style))
                totals[style].add(text, t.text, vocab)
                latency.append(t.latency_s)
                if a.show:
                    print(f"{style:>5} {text!r} -> {t.text!r} ({t.confidence:.2f})", flush=True)
    print(f"{len(texts)} commands, voice {a.voice} at {a.wpm} wpm")
    for style in styles:
        w = totals[style]
        print(f"prompt {style:>5}: WER {100 * w.wer:5.1f} % ({w.errors}/{w.words}), "
              f"keyword WER {100 * w.keyword_wer:5.1f} % ({w.keyword_errors}/{w.keywords})")
    print(f"transcription latency per utterance: median {np.median(latency):.2f} s, "
          f"p90 {np.percentile(latency, 90):.2f} s ({len(latency)} runs, {a.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
