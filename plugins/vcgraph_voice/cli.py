"""``vcgraph enroll``, ``vcgraph convert`` (and ``vcgraph eval``), added through the plugin hook."""
from __future__ import annotations

import argparse
import sys

from vcgraph.cli_helpers import run_with_feedback
from vcgraph.progress import ProgressBar

from .presets import DEFAULT_PRESET

# vcgraph.audio (numpy) and the voice modules are imported inside the commands: every
# `vcgraph` command, `--help` included, imports this module to add enroll/convert.

ENROLL_EPILOG = """\
examples:
  vcgraph enroll alice_*.wav -o alice.vcp
  vcgraph enroll ref1.wav ref2.flac -o bob.vcp --presets fast
  vcgraph enroll alice_*.wav -o alice.npy                (the 256-d embedding only, as .npy)

Use 10 s to a few minutes of clean speech of one speaker. The profile holds the speaker's
256-d GE2E embedding (resemblyzer compatible) plus each preset's target data; it is an npz
archive loaded without pickle, so profiles from others run no code. An output ending in .npy
(or --embedding-only) writes just the embedding: the L2-normalised mean of the references'
resemblyzer d-vectors, which `vcgraph convert --target alice.npy` converts toward through the
voice bank (a profile converts better: see the README).
"""

CONVERT_EPILOG = """\
examples:
  vcgraph convert me.wav --target alice.vcp -o me_as_alice.wav
  vcgraph convert me.wav --target alice.vcp -o out.wav --pitch-shift -2 --config fast
  vcgraph convert me.wav --target alice_embedding.npy -o out.wav     (embedding only: lower quality)
  vcgraph convert me.wav --target alice_ref.wav -o out.wav           (enrols the reference first)
  vcgraph convert me.wav --target alice.vcp -o out.wav --set nodes.voice_synthesis.config.k=4 --report

Presets: content (default: a content encoder trained here and pocketsphinx's phone states pick
the target's own frames; the nearest the target by both speaker encoders, RTF ~0.04), quality
(speech recognition + alignment labels; fewest words lost by pocketsphinx, RTF ~0.4) and fast
(statistics mapping, the least change of voice; fewest words lost by Whisper). The README's
"Which preset" has the figures. --config also takes a YAML graph file of your own.
"""


def _thread_count(text: str) -> int:
    """``--threads``: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 thread, got {n}")
    return n


#: reference audio (s) that the content preset converts nearest to the voice with, and below how
#: much enrolment notes it (measured: CAM++ about 0.02 further from the target with 15 s than with
#: 29 s, no nearer with more; docs/quality-and-speed.md, "How much reference audio")
ADVISED_REFERENCE_S = 30
SHORT_REFERENCE_S = 20.0

THREADS_HELP = ("torch threads for the work (default: torch's own, one per core). On a machine that "
                "other work keeps busy 1 is often faster; the output can differ in its last bits "
                "with the thread count (sums added in another order)")


def _set_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)


def add_commands(sub) -> None:
    p = sub.add_parser("enroll", help="build a target voice profile (.vcp) from reference recordings",
                       description="Analyse reference recordings of one speaker into a voice profile.",
                       epilog=ENROLL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("refs", nargs="+", metavar="REF", help=f"reference sound files (wav, flac, ...) of the voice: "
                   f"about {ADVISED_REFERENCE_S} s in all converts nearest to it")
    p.add_argument("-o", "--output", required=True, metavar="VOICE.vcp", help="profile file to write")
    p.add_argument("--embedding-only", action="store_true",
                   help="write only the 256-d GE2E embedding as a .npy file (implied by an -o ending in .npy)")
    p.add_argument("--presets", default="content,quality,fast",
                   help="presets whose conversion data to include (default: content,quality,fast)")
    p.add_argument("--set", "-s", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="graph override applied to the presets' analysis (repeatable)")
    p.add_argument("--threads", type=_thread_count, metavar="N", help=THREADS_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("convert", help="convert a recording toward a target voice",
                       description="Convert SRC toward a target voice, keeping its words and duration.",
                       epilog=CONVERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SRC", help="source sound file (any rate; several channels are mixed "
                   "to one)")
    p.add_argument("--target", "-t", required=True, metavar="VOICE",
                   help="target: a .vcp profile from `vcgraph enroll`, a 256-d .npy embedding, or a "
                        "reference sound file (enrolled on the fly)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav",
                   help="converted speech, one channel (format from the extension: .wav, .flac, .ogg, ...)")
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="N",
                   help="extra pitch shift in semitones after mapping to the target's range")
    p.add_argument("--config", "-c", default=DEFAULT_PRESET, metavar="PRESET|YAML",
                   help=f"{DEFAULT_PRESET} (default), quality, fast, or a graph YAML file")
    p.add_argument("--set", "-s", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="graph override, e.g. settings.use_cuda=false (repeatable)")
    p.add_argument("--output-rate", type=int, metavar="HZ", help="output sample rate (default: the source's)")
    p.add_argument("--report", action="store_true", help="print which implementation ran per node")
    p.add_argument("--json", action="store_true", help="print the run report as JSON")
    p.add_argument("--threads", type=_thread_count, metavar="N", help=THREADS_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_convert)

    from .batch_cli import add_batch_command
    add_batch_command(sub)
    from .stream.cli import add_stream_command
    add_stream_command(sub)

    try:
        from .eval.cli import add_eval_command
    except ImportError:
        return
    add_eval_command(sub)


def cmd_enroll(args: argparse.Namespace) -> int:
    from vcgraph.audio import check_output_path
    from .enroll import enroll_files
    check_output_path(args.output)  # before the analysis, not after
    _set_threads(args)
    if args.embedding_only or args.output.lower().endswith(".npy"):
        return _enroll_embedding(args)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    bar = None if args.no_progress else ProgressBar("enroll")
    profile = enroll_files(args.refs, presets=presets, overrides=args.overrides, progress=bar)
    if bar:
        bar.close()
    profile.save(args.output)
    print(f"wrote {args.output}: {profile.seconds:.1f} s of reference audio, methods: "
          f"{', '.join(profile.methods) or 'embedding only'}")
    if "content" in profile.methods and profile.seconds < SHORT_REFERENCE_S:
        print(f"note: about {ADVISED_REFERENCE_S} s of reference audio brings the default (content) preset's "
              f"conversions nearer the voice than {profile.seconds:.0f} s does (README: \"How much reference "
              f"audio\")", file=sys.stderr)
    return 0


def _enroll_embedding(args: argparse.Namespace) -> int:
    """``vcgraph enroll --embedding-only``: the references' normalised mean d-vector as .npy."""
    import os
    import numpy as np
    from vcgraph.audio import read_audio
    from .embedding import GE2EEncoder, normalized_mean
    from .errors import VoiceInputError
    from .validation import as_mono, check_audio
    if not args.output.lower().endswith(".npy"):
        raise VoiceInputError(f"--embedding-only writes a .npy file, not {args.output}")
    bar = None if args.no_progress else ProgressBar("embed")
    encoder = GE2EEncoder("cpu")
    embs = []
    for i, path in enumerate(args.refs):
        if bar:
            bar(100.0 * i / len(args.refs), os.path.basename(path))
        a = read_audio(path)
        x = as_mono(a.samples)
        check_audio(x, a.sample_rate, 0.5)
        embs.append(encoder.embed(x, a.sample_rate))
    if bar:
        bar(100.0, "completed")
        bar.close()
    with open(args.output, "wb") as fh:  # np.save would append .npy to other names
        np.save(fh, normalized_mean(embs))
    print(f"wrote {args.output}: the 256-d embedding of {len(embs)} reference(s)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from vcgraph.audio import Audio, check_audio_output, read_audio, write_audio
    from vcgraph.pipeline import Pipeline
    from .presets import preset_path
    from .profile import load_target
    _set_threads(args)
    overrides = list(args.overrides)
    if args.output_rate:
        overrides.append(f"nodes.postprocessing.config.sample_rate={args.output_rate}")
    pipe = Pipeline.from_yaml(preset_path(args.config), overrides)
    audio = read_audio(args.source)
    check_audio_output(args.output, args.output_rate or audio.sample_rate)  # before any work
    target = load_target(args.target)
    if isinstance(target, Audio):  # reference audio: enrol it now, for this graph's method only
        from .enroll import enroll_audio
        print(f"vcgraph: note: enrolling {args.target} on the fly; `vcgraph enroll {args.target} -o VOICE.vcp` "
              "once is faster when you convert to this voice again", file=sys.stderr)
        target = enroll_audio([target], presets=[args.config], overrides=tuple(args.overrides))
    elif not hasattr(target, "methods"):
        print("vcgraph: note: the target is a bare embedding: it converts toward statistics the voice bank "
              "estimates from it; a profile from `vcgraph enroll` converts better", file=sys.stderr)
    return run_with_feedback(pipe, {"audio": audio, "target": target, "pitch_shift": args.pitch_shift}, args,
                             lambda outputs: write_audio(args.output, outputs["audio"]))
