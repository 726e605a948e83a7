#!/usr/bin/env python3
"""Keyword accuracy and WER of the speech recogniser on varied spoken commands (refseg_ros.speech.heldout):
espeak-ng and flite voices at several rates, white/pink/brown noise at 10-20 dB SNR, many command frames.

    nice -n 10 .venv/bin/python tools/keyword_accuracy.py --split heldout --commands 96
    nice -n 10 .venv/bin/python tools/keyword_accuracy.py --split dev --configs nbest1,base,bonus0.5 --show

Each config is one recogniser set-up, named by dash-joined parts: ``base`` = what speech_node does
by default (see ``DEFAULT`` below and config/speech.yaml); ``prompt-<style>`` another prompt style
(none, nouns, command, all); ``beam<N>``; ``nbest<N>`` (``nbest1`` = no rescoring, the greedy
transcript); ``bonus<x>``; ``lex`` / ``free`` decoding restricted to the command lexicon or not
(refseg_ros.speech.lexicon); ``fix<p>`` vocabulary correction of words below probability p
(``fix0`` = off; refseg_ros.speech.correction); ``short`` / ``full`` encode the command alone or in
Whisper's whole 30 s window; ``gram<w>`` each listed transcript replaced by its closest command of
the command grammar, chosen by decoder score minus w per unit of edit cost (``gram0`` = off;
refseg_ros.speech.command_grammar); ``sure<p>`` no fitted command that changes a word heard with
probability p or more (``sure1`` = any may change); ``dn`` / ``raw`` steady noise subtracted first or not
(refseg_ros.speech.denoise); ``loop1`` / ``loop0`` a first pass caught in a loop ("green green
green") decoded again without the prompt, or not (refseg_ros.speech.transcriber.looping);
``pool`` the n-best lists under the nouns prompt and no prompt pooled with the first for grammar
fitting, ``poolnone`` under no prompt only (refseg_ros.speech.transcriber, extra_prompts).
``--model`` swaps in another faster-whisper model folder. Prints one line per config and, for the
first, where the keywords are lost (synthesiser and voice, SNR, noise, and which keywords: object
nouns, colours, sizes, places).
Choose settings on ``--split dev``; report ``--split heldout`` (disjoint scenes). ``--split outside``
checks that commands outside the grammar are not bent into other commands.
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
from tqdm import tqdm  # noqa: E402

from refseg_ros.language.prompt import initial_prompt  # noqa: E402
from refseg_ros.language.vocabulary import keywords  # noqa: E402
from refseg_ros.language.vocabulary import COLOURS, SIZES, object_nouns  # noqa: E402
from refseg_ros.speech.command_grammar import CommandGrammar  # noqa: E402
from refseg_ros.speech.correction import VocabularyCorrector  # noqa: E402
from refseg_ros.speech.heldout import (add_noise, command_set, keyword_accuracy, missed_keywords,  # noqa: E402
                                      out_of_grammar_set, speak)
from refseg_ros.speech.lexicon import command_lexicon  # noqa: E402
from refseg_ros.speech.transcriber import Transcriber, command_text  # noqa: E402
from refseg_ros.speech.wer import edit_distance, normalise  # noqa: E402


#: speech_node's defaults (refseg_ros/ros/speech_params.py), as a config.
DEFAULT = {"prompt": "command", "beam": 1, "nbest": 5, "bonus": 0.3, "lexicon": True, "fix": 0.5,
           "short": True, "grammar": 0.3, "sure": 0.7, "denoise": True, "loops": True, "pool": ()}


def parse_config(name: str) -> dict:
    cfg = dict(DEFAULT)
    for part in name.split("-"):
        if part == "base":
            continue
        if part in ("lex", "free"):
            cfg["lexicon"] = part == "lex"
        elif part in ("short", "full"):
            cfg["short"] = part == "short"
        elif part in ("dn", "raw"):
            cfg["denoise"] = part == "dn"
        elif part in ("loop0", "loop1"):
            cfg["loops"] = part == "loop1"
        elif part in ("pool", "poolnone"):
            cfg["pool"] = ("nouns", "none") if part == "pool" else ("none",)
        elif part.startswith("sure"):
            cfg["sure"] = float(part[4:])
        elif part.startswith("gram"):
            cfg["grammar"] = float(part[4:])
        elif part.startswith("fix"):
            cfg["fix"] = float(part[3:])
        elif part.startswith("beam"):
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
    corrector = VocabularyCorrector(keywords(), max_probability=cfg["fix"]) if cfg["fix"] > 0 else None
    rec = Transcriber(model, threads=threads, beam_size=cfg["beam"], initial_prompt=prompt or None,
                      nbest=cfg["nbest"], keyword_bonus=cfg["bonus"], vocabulary=keywords(), corrector=corrector,
                      lexicon=command_lexicon() if cfg["lexicon"] else None, short_window=cfg["short"],
                      grammar=CommandGrammar() if cfg["grammar"] > 0 else None, grammar_weight=cfg["grammar"],
                      keep_sure=cfg["sure"],
                      denoise=cfg["denoise"], retry_loops=cfg["loops"],
                      extra_prompts=["" if p == "none" else initial_prompt(p) for p in cfg["pool"]])
    rec.transcribe(np.zeros(8000, np.float32))  # warm-up
    vocab = keywords()
    rows = []
    for cmd, audio in tqdm(list(zip(commands, audios)), desc=name, mininterval=10, disable=None):
        t = rec.transcribe(audio)
        text, latency = command_text(t.text), t.latency_s
        hit, n_kw = keyword_accuracy(cmd.text, text, vocab)
        ref = normalise(cmd.text)
        rows.append(dict(text=cmd.text, heard=text, hit=hit, keywords=n_kw, errors=edit_distance(ref, normalise(text)),
                         words=len(ref), latency=latency, duration=len(audio) / 16000, engine=cmd.voice.engine,
                         voice=cmd.voice.label, noise=cmd.noise, snr=cmd.snr_db,
                         corrections=t.extra.get("corrections", []), heard_raw=t.extra.get("heard", ""),
                         loop=t.extra.get("loop", ""),
                         missed=missed_keywords(cmd.text, text, vocab),
                         said=[w for w in normalise(cmd.text) if w in vocab]))
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
            "audio_p50": float(np.median([r["duration"] for r in rows])),
            # Corrections, and those that wrote a word the command did not say (false corrections).
            "corrections": sum(len(r["corrections"]) for r in rows),
            "false_corrections": sum(c[1] not in normalise(r["text"]) for r in rows for c in r["corrections"])}


def line(s: dict) -> str:
    return (f"{s['config']:<22} {100 * s['keyword_accuracy']:10.1f}% {100 * s['commands_intact']:8.1f}% "
            f"{100 * s['wer']:5.1f}% {s['latency_p50']:6.2f} {s['latency_p90']:6.2f} "
            f"{s['corrections']:>7} ({s['false_corrections']})")


def breakdown(result: dict, key: str) -> str:
    groups = defaultdict(lambda: [0, 0])
    for r in result["rows"]:
        groups[r[key]][0] += r["hit"]
        groups[r[key]][1] += r["keywords"]
    return ", ".join(f"{k}: {100 * h / max(1, n):.1f} %" for k, (h, n) in sorted(groups.items()))


def kind_of(word: str) -> str:
    if word in COLOURS:
        return "colour"
    if any(word in names for names in SIZES.values()):
        return "size"
    if any(word in noun.split() for noun in object_nouns() + ["object", "one", "thing"]):
        return "object"
    return "place"


def confusion(result: dict) -> str:
    """Keywords lost per kind, and the most often lost words (of how many said)."""
    said, lost = defaultdict(int), defaultdict(int)
    for r in result["rows"]:
        for w in r["said"]:
            said[w] += 1
        for w in r["missed"]:
            lost[w] += 1
    kinds = defaultdict(lambda: [0, 0])
    for w, n in said.items():
        kinds[kind_of(w)][0] += lost[w]
        kinds[kind_of(w)][1] += n
    worst = sorted((w for w in lost if lost[w]), key=lambda w: (-lost[w], w))[:12]
    by_kind = ", ".join(f"{k} {m}/{n} ({100 * m / max(1, n):.1f} %)" for k, (m, n) in sorted(kinds.items()))
    return ("lost by kind: " + by_kind
            + "\n  most lost: " + ", ".join(f"{w} {lost[w]}/{said[w]}" for w in worst))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "heldout", "outside"), default="heldout",
                    help="outside: commands the grammar does not have, two clear voices (heldout.OUT_OF_GRAMMAR)")
    ap.add_argument("--commands", type=int, default=96)
    ap.add_argument("--configs", default="nbest1,base", help="comma-separated, e.g. nbest1,base,bonus0.5")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", help="another faster-whisper model folder (default: the bundled tiny.en)")
    ap.add_argument("--clean", action="store_true", help="no background noise (how much of the loss is the voices)")
    ap.add_argument("--show", action="store_true", help="print every command that lost a keyword")
    ap.add_argument("--json", type=Path, help="write every transcript and the summaries here")
    a = ap.parse_args()
    commands = out_of_grammar_set() if a.split == "outside" else command_set(a.commands, a.split)
    audios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cmd in enumerate(commands):
            clean = speak(cmd.text, cmd.voice, Path(tmp) / f"{i}.wav")
            audios.append(add_noise(clean, 200.0 if a.clean else cmd.snr_db, cmd.noise, seed=i))
    voices = sorted({c.voice.label for c in commands})
    noise = ("no noise" if a.clean else
             f"noise {sorted({c.noise for c in commands})} at {sorted({c.snr_db for c in commands})} dB SNR")
    print(f"{len(commands)} commands ({a.split}), {len(voices)} voices, {noise}; {a.threads} recogniser thread(s)")
    header = (f"{'config':<22} {'keyword acc':>11} {'all kw ok':>9} {'WER':>6} {'p50 s':>6} {'p90 s':>6} "
              f"{'fixes (false)':>13}")
    print(header, flush=True)
    results, summaries = [], []
    for name in a.configs.split(","):  # one line as each config finishes (they take minutes)
        results.append(run(name, audios, commands, a.threads, a.show, a.model))
        summaries.append(summary(results[-1]))
        print(line(summaries[-1]), flush=True)
    print(f"\n{header}")
    for s in summaries:
        print(line(s))
    print(f"median command length {summaries[0]['audio_p50']:.1f} s of speech (plus 0.8 s of lead-in and tail)")
    for key in ("engine", "voice", "snr", "noise"):
        print(f"  {results[0]['config']} by {key}: {breakdown(results[0], key)}")
    for result in results:
        print(f"  {result['config']} {confusion(result)}")
    if a.json:
        a.json.write_text(json.dumps({"summaries": summaries, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
