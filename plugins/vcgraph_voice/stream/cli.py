"""``vcgraph stream``: convert a file (or the microphone) block by block and report the latency."""
from __future__ import annotations

import argparse
import json
import sys
import time

EPILOG = """\
examples:
  vcgraph stream me.wav --target alice.vcp -o me_as_alice.wav              (20 ms blocks, real-time pace)
  vcgraph stream me.wav --target alice.vcp -o out.wav --block-ms 40 --no-pace --json
  vcgraph stream me.wav --target alice.vcp -o out.wav --latency-budget-ms 50   (picks the settings)
  vcgraph stream --input mic --output speakers --target alice.vcp          (live; needs sounddevice)

The profile needs the fast method's data: `vcgraph enroll REF.wav ... -o alice.vcp --presets fast`.
Algorithmic latency = the block + the analysis look-ahead + the synthesis grain's half; the
output file is time-aligned with the source and has its length. Per-block processing time is
printed as a fraction of the block's duration (p50 / p99): under 1 keeps up, under 0.5 leaves
headroom. torch runs with --threads threads (default 1: fastest for small blocks).
"""

MIN_BLOCK_MS, MAX_BLOCK_MS = 2.0, 1000.0


def add_stream_command(sub) -> None:
    p = sub.add_parser("stream", help="convert a recording or live audio block by block, with low latency",
                       description="Feed SRC block by block through the streaming graph at real-time pace "
                                   "and write the converted audio; print the latency figures.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", metavar="SRC", help="source sound file (or --input mic)")
    p.add_argument("--target", "-t", required=True, metavar="VOICE.vcp",
                   help="target profile (with fast data; content data for --config stream-content)")
    p.add_argument("-o", "--output", metavar="OUT.wav|speakers", help="output file, or 'speakers' (live)")
    p.add_argument("--input", metavar="mic", help="'mic' for live input (instead of SRC)")
    p.add_argument("--block-ms", type=float, default=None, metavar="MS", help="block duration (default 20)")
    p.add_argument("--latency-budget-ms", type=float, default=None, metavar="N",
                   help="pick block size and settings whose latency fits N ms and keep up (says which)")
    p.add_argument("--config", "-c", default="stream", metavar="stream|stream-content|YAML",
                   help="streaming graph: stream (fast method, default), stream-content (the trained content "
                        "encoder; experimental, ~85 ms), or a graph file")
    p.add_argument("--set", "-s", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="graph override (repeatable)")
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="N", help="extra shift in semitones")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads (default 1)")
    p.add_argument("--no-pace", action="store_true", help="feed blocks as fast as possible, not in real time")
    p.add_argument("--seconds", type=float, default=None, metavar="S", help="live: stop after S seconds")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_stream)


def _config(name: str) -> str:
    import os
    from vcgraph.errors import ConfigError
    from .session import STREAM_CONFIG, STREAM_CONTENT_CONFIG
    if name == "stream":
        return STREAM_CONFIG
    if name == "stream-content":
        return STREAM_CONTENT_CONFIG
    if not os.path.exists(name):
        raise ConfigError(f"'{name}' is neither 'stream', 'stream-content' nor a graph file")
    return name


def _check_args(args) -> None:
    from ..errors import VoiceInputError
    live_in, live_out = args.input is not None, args.output == "speakers"
    if args.input not in (None, "mic"):
        raise VoiceInputError(f"--input takes 'mic' (got '{args.input}'); give a file as SRC")
    if live_in and args.source:
        raise VoiceInputError("give SRC or --input mic, not both")
    if not live_in and not args.source:
        raise VoiceInputError("no source: give SRC.wav, or --input mic")
    if live_in != live_out:
        raise VoiceInputError("live streaming takes --input mic with --output speakers")
    if not args.output:
        raise VoiceInputError("no output: give -o OUT.wav (or --output speakers with --input mic)")
    if args.block_ms is not None and not MIN_BLOCK_MS <= args.block_ms <= MAX_BLOCK_MS:
        raise VoiceInputError(f"--block-ms must be between {MIN_BLOCK_MS:g} and {MAX_BLOCK_MS:g} ms, "
                              f"got {args.block_ms:g}")
    if args.block_ms is not None and args.latency_budget_ms is not None:
        raise VoiceInputError("give --block-ms or --latency-budget-ms, not both (the budget picks the block)")
    if args.latency_budget_ms is not None and args.latency_budget_ms <= 0:
        raise VoiceInputError(f"--latency-budget-ms must be positive, got {args.latency_budget_ms:g}")
    if args.threads is not None and args.threads < 1:
        raise VoiceInputError(f"--threads must be at least 1, got {args.threads}")


def _open_stream(args, rate: int):
    from .session import open_stream
    stream = open_stream(args.target, sample_rate=rate, latency_budget_ms=args.latency_budget_ms,
                         block_size=None if args.block_ms is None else max(1, int(round(rate * args.block_ms / 1000.0))),
                         config=_config(args.config), overrides=args.overrides, pitch_shift=args.pitch_shift,
                         threads=args.threads)
    c = stream.choice
    if c and not c["realtime"]:
        print(f"vcgraph: warning: no setting within {c['budget_ms']:g} ms kept up in calibration; "
              f"using the fastest ({c['tier']}, {c['block_ms']:g} ms blocks)", file=sys.stderr)
    return stream


def cmd_stream(args: argparse.Namespace) -> int:
    import numpy as np
    from vcgraph.audio import Audio, check_audio_output, read_audio, write_audio
    _check_args(args)
    if args.input == "mic":
        from .live import default_rate, open_sounddevice, run_live
        sd = open_sounddevice()
        stream = _open_stream(args, default_rate(sd))
        print(f"vcgraph stream: live, {stream.latency.algorithmic_ms:.1f} ms algorithmic latency; Ctrl-C stops",
              file=sys.stderr)
        late = run_live(stream, sd, args.seconds)
        summary = dict(stream.summary(), late_blocks=late)
        _print(summary, args, None)
        return 0
    audio = read_audio(args.source)
    check_audio_output(args.output, audio.sample_rate)  # before any work
    stream = _open_stream(args, audio.sample_rate)
    x = audio.samples.mean(axis=1) if audio.samples.ndim == 2 else audio.samples
    x = np.asarray(x, np.float32)
    n, dur = stream.block_size, stream.block_size / audio.sample_rate
    outs, t0 = [], time.perf_counter()
    padded = np.concatenate([x, np.zeros(-len(x) % n, np.float32)])  # the file's end: silence after it
    for i, start in enumerate(range(0, len(padded), n)):
        if not args.no_pace:  # block i is complete at (i + 1) block durations
            wait = t0 + (i + 1) * dur - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        outs.append(stream.process(padded[start:start + n]))
    outs.append(stream.flush())
    y = np.concatenate(outs)[stream.latency.delay_samples:][:len(x)]
    write_audio(args.output, Audio(y.astype(np.float32), audio.sample_rate))
    _print(dict(stream.summary(), output=args.output, seconds=round(len(x) / audio.sample_rate, 3),
                paced=not args.no_pace), args, args.output)
    return 0


def _print(s: dict, args, path) -> None:
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return
    parts = " + ".join(f"{k} {v:.1f}" for k, v in s["latency_parts_ms"].items() if v)
    kinds = sorted(set(s["implementations"].values()) - {None})
    if path:
        print(f"wrote {path} ({s['seconds']:.2f} s)")
    print(f"algorithmic latency {s['algorithmic_latency_ms']:.1f} ms = {parts}")
    if s["p50_block_ratio"] is not None:
        print(f"per block: p50 {s['p50_block_ratio']:.2f}, p99 {s['p99_block_ratio']:.2f} of the "
              f"{s['block_ms']:g} ms block ({', '.join(kinds)}, torch threads {s['torch_threads']})")
    if s.get("choice"):
        c = s["choice"]
        print(f"latency budget {c['budget_ms']:g} ms: picked {c['tier']} ({c['description']}), "
              f"{c['block_ms']:g} ms blocks, {c['kind']}; calibration p99 {c['calibration_p99_block_ratio']:.2f}")
