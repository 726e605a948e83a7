#!/usr/bin/env python3
"""Keyword accuracy and WER of the speech recogniser on varied spoken commands (refseg_ros.speech.heldout):
espeak-ng and flite voices at several rates, white/pink/brown noise at 10-20 dB SNR, many command frames.

    nice -n 10 .venv/bin/python tools/keyword_accuracy.py --split heldout --commands 96
    nice -n 10 .venv/bin/python tools/keyword_accuracy.py --split dev --configs nbest1,base,bonus0.5 --show

Each config is one recogniser set-up, named by dash-joined parts: ``base`` = what speech_node does
by default (Whisper tiny.en int8, greedy, the "command" vocabulary prompt, vocabulary rescoring of
5 transcripts with keyword bonus 0.3, the node's transcript clean-up); ``prompt-<style>`` another
prompt style (none, nouns, command, all); ``beam<N>``; ``nbest<N>`` (``nbest1`` = no rescoring,
the greedy transcript); ``bonus<x>``.
``--model`` swaps in another faster-whisper model folder. Prints one line per config and, for the
first, where the keywords are lost (synthesiser, SNR, noise).
Choose settings on ``--split dev``; report ``--split heldout`` (disjoint scenes).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from refseg_ros.language.prompt import initial_prompt  # noqa: E402
from refseg_ros.language.vocabulary import keywords  # noqa: E402
from refseg_ros.speech.heldout import add_noise, command_set, keyword_accuracy, speak  # noqa: E402
from refseg_ros.speech.transcriber import Transcriber, command_text  # noqa: E402
from refseg_ros.speech.wer import edit_distance, normalise  # noqa: E402


def parse_config(name: str) -> dict:
    cfg = {"prompt": "command", "beam": 1, "nbest": 5, "bonus": 0.3}
    for part in name.split("-"):
        if part == "base":
            continue
        if part.startswith("beam"):
            cfg["beam"] = int(part[4:])
        elif part.startswith("nbest"):
            cfg["nbest"] = int(part[5:])
        elif part.startswith("bonus"):
            cfg["bonus"] = float(part[5:])
        elif part == "prompt":
            cfg["prompt"] = None  # the next part names the style
        elif cfg["prompt"] is None:
            cfg["prompt"] = part
        else:
            raise SystemExit(f"unknown config part {part!r} in {name!r}")
    return cfg


def run(name: str, audios: list, commands: list, threads: int, show: bool, model: str | None = None) -> dict:
    cfg = parse_config(name)
    prompt = "" if cfg["prompt"] == "none" else initial_prompt(cfg["prompt"])
    rec = Transcriber(model, threads=threads, beam_size=cfg["beam"], initial_prompt=prompt or None,
                      nbest=cfg["nbest"], keyword_bonus=cfg["bonus"], vocabulary=keywords())
    rec.transcribe(np.zeros(8000, np.float32))  # warm-up
    vocab = keywords()
    rows = []
    for cmd, audio in zip(commands, audios):
        t = rec.transcribe(audio)
        text, latency = command_text(t.text), t.latency_s
        hit, n_kw = keyword_accuracy(cmd.text, text, vocab)
        ref = normalise(cmd.text)
        rows.append(dict(text=cmd.text, heard=text, hit=hit, keywords=n_kw, errors=edit_distance(ref, normalise(text)),
                         words=len(ref), latency=latency, duration=len(audio) / 16000, engine=cmd.voice.engine,
                         voice=cmd.voice.label, noise=cmd.noise, snr=cmd.snr_db))
        if show and hit < n_kw:
            print(f"  [{name}] {cmd.voice.label} {cmd.noise}@{cmd.snr_db:g}dB {cmd.text!r} -> {text!r}", flush=True)
    return {"config": name, "rows": rows}


def summary(result: dict) -> dict:
    rows = result["rows"]
    hit, kw = sum(r["hit"] for r in rows), sum(r["keywords"] for r in rows)
    lat = [r["latency"] for r in rows]
    return {"config": result["config"], "commands": len(rows), "keyword_accuracy": hit / max(1, kw),
            "keywords": kw, "commands_intact": sum(r["hit"] == r["keywords"] for r in rows) / max(1, len(rows)),
            "wer": sum(r["errors"] for r in rows) / max(1, sum(r["words"] for r in rows)),
            "latency_p50": float(np.median(lat)), "latency_p90": float(np.percentile(lat, 90)),
            "audio_p50": float(np.median([r["duration"] for r in rows]))}


def breakdown(result: dict, key: str) -> str:
    groups = defaultdict(lambda: [0, 0])
    for r in result["rows"]:
        groups[r[key]][0] += r["hit"]
        groups[r[key]][1] += r["keywords"]
    return ", ".join(f"{k}: {100 * h / max(1, n):.1f} %" for k, (h, n) in sorted(groups.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "heldout"), default="heldout")
    ap.add_argument("--commands", type=int, default=96)
    ap.add_argument("--configs", default="nbest1,base", help="comma-separated, e.g. nbest1,base,bonus0.5")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", help="another faster-whisper model folder (default: the bundled tiny.en)")
    ap.add_argument("--show", action="store_true", help="print every command that lost a keyword")
    ap.add_argument("--json", type=Path, help="write every transcript and the summaries here")
    a = ap.parse_args()
    commands = command_set(a.commands, a.split)
    audios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cmd in enumerate(commands):
            clean = speak(cmd.text, cmd.voice, Path(tmp) / f"{i}.wav")
            audios.append(add_noise(clean, cmd.snr_db, cmd.noise, seed=i))
    voices = sorted({c.voice.label for c in commands})
    print(f"{len(commands)} commands ({a.split}), {len(voices)} voices, noise {sorted({c.noise for c in commands})} "
          f"at {sorted({c.snr_db for c in commands})} dB SNR; {a.threads} recogniser thread(s)")
    results = [run(name, audios, commands, a.threads, a.show, a.model) for name in a.configs.split(",")]
    summaries = [summary(r) for r in results]
    print(f"{'config':<22} {'keyword acc':>11} {'all kw ok':>9} {'WER':>6} {'p50 s':>6} {'p90 s':>6}")
    for s in summaries:
        print(f"{s['config']:<22} {100 * s['keyword_accuracy']:10.1f}% {100 * s['commands_intact']:8.1f}% "
              f"{100 * s['wer']:5.1f}% {s['latency_p50']:6.2f} {s['latency_p90']:6.2f}")
    print(f"median command length {summaries[0]['audio_p50']:.1f} s of speech (plus 0.8 s of lead-in and tail)")
    for key in ("engine", "snr", "noise"):
        print(f"  {results[0]['config']} by {key}: {breakdown(results[0], key)}")
    if a.json:
        a.json.write_text(json.dumps({"summaries": summaries, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
