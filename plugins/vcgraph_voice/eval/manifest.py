"""What ``vcgraph eval`` evaluates: items (source -> target voice) and the voices they name.

Three ways to say it, all giving an :class:`EvalSet`:

1. **A manifest**, CSV (header row) or JSONL (one JSON object per line), read by
   :func:`read_manifest`. Relative paths are relative to the manifest's folder.
   Item fields (CSV columns / JSON keys):

   ``source`` (required)  the wav to convert.
   ``target`` (required)  the target voice: a voice name defined in the manifest or with
                          ``--voice``; or reference wavs (JSON list, or in CSV ``;``-separated;
                          glob patterns allowed); or a profile file (``.vcp``/``.npy``)
                          that the converter loads instead of enrolling.
   ``text``               the sentence spoken in ``source`` (enables WER against the text).
   ``parallel_target``    the target speaker saying the same sentence (enables MCD, and is
                          the "target" column in the report).
   ``judge``              held-out wavs of the target used for scoring similarity (list or
                          ``;``-separated); default: the voice's judge set, else its references.
   ``source_voice``       the source speaker's voice name (similarity to the source is then
                          taken against that voice's centroid, not the one source utterance).
   ``id``                 a name for the item (default: ``<source stem>-to-<target>``).

   A JSONL line with a ``voice`` key instead defines a voice:
   ``{"voice": "slt", "refs": ["slt_0[1-8].wav"], "judge": ["slt_1[7-9].wav", "slt_2?.wav"]}``
   (``refs``: enrollment references given to the converter; ``judge``: held-out references
   for scoring — keep them apart so copying a reference cannot pass as conversion;
   ``profile``: optional profile file used instead of enrolling). Blank lines and lines
   starting with ``#`` are ignored in both formats.

   CSV example::

       source,target,text,parallel_target
       rms_09.wav,slt,The quiet river ...,slt_09.wav
       awb_10.wav,refs/kal_01.wav;refs/kal_02.wav,,

2. **The command line**, :func:`items_from_args`: ``--source`` files, one ``--target``
   (voice name, profile, or reference wavs), ``--text``/``--text-file`` and
   ``--parallel-target`` per source, in order.

3. **A speech-dev style folder**, :func:`dataset_items`: ``DIR/sentences.txt`` (line *i* is
   the text of ``VOICE_{i:02d}.wav``) with ``--pairs SRC:TGT,...``; enrollment, test and
   judging sentences are kept apart and the target's recording of the same sentence is the
   parallel target.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import re
from dataclasses import dataclass, field

from vcgraph.errors import ConfigError, ConfigErrors

ITEM_KEYS = ("id", "source", "target", "text", "parallel_target", "judge", "source_voice")
VOICE_KEYS = ("voice", "refs", "judge", "profile")
PROFILE_EXTS = (".vcp", ".npy", ".npz")
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


class ManifestError(ConfigError):
    """One problem in the evaluation input; ``source`` is ``file:line`` when there is one."""


class ManifestErrors(ConfigErrors, ManifestError):
    """Every problem found in one pass over a manifest."""

    def __init__(self, errors: list[ManifestError]):
        super().__init__(errors)
        n = len(self.errors)
        self.message = (f"{n} problem{'s' if n != 1 else ''} in the evaluation input:\n  "
                        + "\n  ".join(str(e) for e in self.errors))
        self.args = (self.message,)


@dataclass
class Voice:
    """A speaker: references for enrollment, held-out references for judging, or a profile."""

    name: str
    refs: list[str] = field(default_factory=list)
    judge: list[str] = field(default_factory=list)
    profile: str | None = None

    @property
    def judge_files(self) -> list[str]:
        """The wavs similarity is scored against (held-out if given, else the references)."""
        return self.judge or self.refs

    @property
    def held_out(self) -> bool:
        return bool(self.judge)


@dataclass
class EvalItem:
    id: str
    source: str
    target: str  # a key of EvalSet.voices
    text: str | None = None
    parallel_target: str | None = None
    source_voice: str | None = None  # a key of EvalSet.voices, or None


@dataclass
class EvalSet:
    items: list[EvalItem]
    voices: dict[str, Voice]

    def to_dict(self) -> dict:
        return {"items": [vars(i) for i in self.items], "voices": {k: vars(v) for k, v in self.voices.items()}}


# -- helpers ---------------------------------------------------------------------------------------
def _expand(spec, base: str) -> list[str]:
    """Paths from a list or a ``;``/``,``-separated string, globs expanded, relative to base."""
    if spec is None or spec == "":
        return []
    parts = spec if isinstance(spec, (list, tuple)) else re.split(r"[;,]", str(spec))
    out: list[str] = []
    for p in parts:
        p = str(p).strip()
        if not p:
            continue
        p = os.path.expanduser(p)
        full = p if os.path.isabs(p) else os.path.join(base, p)
        if any(c in p for c in "*?["):
            matches = sorted(glob.glob(full))
            if not matches:
                raise ValueError(f"no file matches {p!r}")
            out.extend(matches)
        else:
            out.append(os.path.normpath(full))
    return out


def _check_audio(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise ValueError(f"{what} not found: {path}")
    import soundfile as sf
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises RuntimeError / LibsndfileError
        raise ValueError(f"{what} is not a readable sound file: {path} ({exc})") from None
    if info.frames == 0:
        raise ValueError(f"{what} is empty: {path}")


def _is_profile(path: str) -> bool:
    return path.lower().endswith(PROFILE_EXTS)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _guess_name(paths: list[str]) -> str:
    stems = [_stem(p) for p in paths]
    prefix = re.sub(r"[_\-. ]+\d*$", "", os.path.commonprefix(stems)).strip("_-. ")
    return prefix or stems[0]


class _Builder:
    """Collects voices and items and every error, then builds an :class:`EvalSet`."""

    def __init__(self, voices: dict[str, Voice] | None = None):
        self.voices: dict[str, Voice] = dict(voices or {})
        self.items: list[EvalItem] = []
        self.errors: list[ManifestError] = []
        self._anon: dict[tuple, str] = {}

    def error(self, where: str | None, message: str) -> None:
        self.errors.append(ManifestError(message, source=where))

    def define_voice(self, where, name, refs, judge, profile, base) -> None:
        name = str(name).strip()
        if not name:
            return self.error(where, "'voice' is empty")
        try:
            refs_l, judge_l = _expand(refs, base), _expand(judge, base)
            prof = _expand(profile, base)[0] if profile else None
            for p in refs_l:
                _check_audio(p, "reference")
            for p in judge_l:
                _check_audio(p, "judge reference")
            if prof and not os.path.isfile(prof):
                raise ValueError(f"profile not found: {prof}")
        except ValueError as exc:
            return self.error(where, f"voice {name!r}: {exc}")
        if not refs_l and not prof:
            return self.error(where, f"voice {name!r} needs 'refs' (reference wavs) or a 'profile'")
        if name in self.voices:
            return self.error(where, f"voice {name!r} is defined twice")
        self.voices[name] = Voice(name, refs_l, judge_l, prof)

    def target_voice(self, where, target, judge, base) -> str | None:
        """The voice key for an item's ``target`` (a name, reference wavs, or a profile)."""
        if isinstance(target, str) and target.strip() in self.voices and not judge:
            return target.strip()
        if target is None or target == "" or target == []:
            self.error(where, "'target' is missing"); return None
        if isinstance(target, str) and not any(c in target for c in "/\\;,*?[") \
                and not target.lower().endswith(AUDIO_EXTS + PROFILE_EXTS) and not os.path.exists(os.path.join(base, target)):
            known = ", ".join(sorted(self.voices)) or "none defined"
            self.error(where, f"unknown target voice {target!r} (voices: {known}; define one with "
                              f"--voice NAME=REF.wav,... or a JSONL line {{\"voice\": ..., \"refs\": [...]}}, "
                              f"or give reference wavs or a profile file)")
            return None
        if isinstance(target, str) and target.strip() in self.voices:  # a name with its own judge set
            base_voice = self.voices[target.strip()]
            paths, name_hint = base_voice.refs, base_voice.name
            prof = base_voice.profile
        else:
            try:
                paths = _expand(target, base)
            except ValueError as exc:
                self.error(where, f"target: {exc}"); return None
            prof = paths[0] if len(paths) == 1 and _is_profile(paths[0]) else None
            if prof:
                if not os.path.isfile(prof):
                    self.error(where, f"target profile not found: {prof}"); return None
                paths = []
            name_hint = _stem(prof) if prof else _guess_name(paths)
        try:
            judge_l = _expand(judge, base)
            for p in paths:
                _check_audio(p, "target reference")
            for p in judge_l:
                _check_audio(p, "judge reference")
        except ValueError as exc:
            self.error(where, str(exc)); return None
        key = (tuple(paths), tuple(judge_l), prof)
        if key in self._anon:
            return self._anon[key]
        name, n = name_hint, 2
        while name in self.voices:
            name, n = f"{name_hint}-{n}", n + 1
        self.voices[name] = Voice(name, list(paths), judge_l, prof)
        self._anon[key] = name
        return name

    def add_item(self, where, row: dict, base: str) -> None:
        n_err = len(self.errors)
        src = row.get("source")
        source = None
        if not src:
            self.error(where, "'source' is missing")
        else:
            try:
                source = _expand(src, base)
                if len(source) != 1:
                    raise ValueError(f"'source' must name one file, got {len(source)}")
                source = source[0]
                _check_audio(source, "source")
            except ValueError as exc:
                self.error(where, str(exc))
        target = self.target_voice(where, row.get("target"), row.get("judge"), base)
        parallel = None
        if row.get("parallel_target"):
            try:
                parallel = _expand(row["parallel_target"], base)[0]
                _check_audio(parallel, "parallel_target")
            except (ValueError, IndexError) as exc:
                self.error(where, str(exc))
        sv = (row.get("source_voice") or "").strip() or None
        if sv and sv not in self.voices:
            self.error(where, f"unknown source_voice {sv!r} (voices: {', '.join(sorted(self.voices)) or 'none'})")
        text = row.get("text")
        text = str(text).strip() if text not in (None, "") else None
        if len(self.errors) > n_err:
            return
        item_id = str(row.get("id") or f"{_stem(source)}-to-{target}")
        item_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", item_id)  # also a file name and a URL
        taken = {i.id for i in self.items}
        base_id, k = item_id, 2
        while item_id in taken:
            item_id, k = f"{base_id}-{k}", k + 1
        self.items.append(EvalItem(item_id, source, target, text, parallel, sv))

    def build(self, where: str | None = None) -> EvalSet:
        if not self.items and not self.errors:
            self.error(where, "nothing to evaluate: no items")
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ManifestErrors(self.errors)
        return EvalSet(self.items, self.voices)


# -- public ------------------------------------------------------------------------------------------
def parse_voice_spec(spec: str, base: str = ".") -> tuple[str, list[str]]:
    """``NAME=PATH[,PATH...]`` (globs allowed) -> (name, paths)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ManifestError(f"expected NAME=FILE[,FILE...] (globs allowed), got {spec!r}")
    try:
        return name.strip(), _expand(rest, base)
    except ValueError as exc:
        raise ManifestError(f"{spec!r}: {exc}") from None


def voices_from_specs(voice_specs: list[str] = (), judge_specs: list[str] = (), base: str = ".") -> dict[str, Voice]:
    """Voices from ``--voice NAME=REFS`` and ``--judge-voice NAME=REFS`` options."""
    b = _Builder()
    judges = dict(parse_voice_spec(s, base) for s in judge_specs)
    for spec in voice_specs:
        name, paths = parse_voice_spec(spec, base)
        prof = paths[0] if len(paths) == 1 and _is_profile(paths[0]) else None
        b.define_voice(f"--voice {name}", name, None if prof else paths, judges.pop(name, None), prof, base)
    for name in judges:
        b.error(f"--judge-voice {name}", f"voice {name!r} is not defined with --voice")
    if b.errors:
        raise b.errors[0] if len(b.errors) == 1 else ManifestErrors(b.errors)
    return b.voices


def read_manifest(path: str, voices: dict[str, Voice] | None = None) -> EvalSet:
    """Read and validate a CSV or JSONL manifest (see the module docstring); errors name the line."""
    if not os.path.isfile(path):
        raise ManifestError(f"manifest not found: {path}")
    base = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    b = _Builder(voices)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        text = fh.read()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    if path.lower().endswith((".jsonl", ".json", ".ndjson")) or first.startswith("{"):
        rows = []
        for no, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as exc:
                b.error(f"{name}:{no}", f"not valid JSON ({exc.msg} at column {exc.colno})"); continue
            if not isinstance(obj, dict):
                b.error(f"{name}:{no}", "each line must be a JSON object"); continue
            rows.append((no, obj))
        # voices first, so items may refer to voices defined further down
        for no, obj in rows:
            if "voice" in obj:
                extra = sorted(set(obj) - set(VOICE_KEYS))
                if extra:
                    b.error(f"{name}:{no}", f"unknown key(s) {extra} in a voice line (allowed: {', '.join(VOICE_KEYS)})")
                    continue
                b.define_voice(f"{name}:{no}", obj["voice"], obj.get("refs"), obj.get("judge"), obj.get("profile"), base)
        for no, obj in rows:
            if "voice" in obj:
                continue
            extra = sorted(set(obj) - set(ITEM_KEYS))
            if extra:
                b.error(f"{name}:{no}", f"unknown key(s) {extra} (allowed: {', '.join(ITEM_KEYS)}; "
                                        f"a voice definition needs a 'voice' key)")
                continue
            b.add_item(f"{name}:{no}", obj, base)
    else:
        lines = [ln for ln in text.splitlines(keepends=True)]
        numbered = [(no, ln) for no, ln in enumerate(lines, 1) if ln.strip() and not ln.lstrip().startswith("#")]
        if not numbered:
            raise ManifestError("the manifest is empty", source=name)
        reader = csv.reader([ln for _, ln in numbered])
        header = [h.strip().lower() for h in next(reader)]
        unknown = [h for h in header if h not in ITEM_KEYS]
        if unknown or "source" not in header or "target" not in header:
            raise ManifestError(f"header must name columns from {', '.join(ITEM_KEYS)} including source and "
                                f"target; got {header}" + (f" (unknown: {unknown})" if unknown else ""),
                                source=f"{name}:{numbered[0][0]}")
        for (no, _), cells in zip(numbered[1:], reader):
            if len(cells) != len(header):
                b.error(f"{name}:{no}", f"{len(cells)} fields, the header has {len(header)} (quote text that contains commas)")
                continue
            b.add_item(f"{name}:{no}", dict(zip(header, (c.strip() for c in cells))), base)
    return b.build(name)


def items_from_args(sources: list[str], target: list[str], texts: list[str] = (),
                    parallel_targets: list[str] = (), judge: list[str] = (),
                    voices: dict[str, Voice] | None = None, source_voice: str | None = None) -> EvalSet:
    """Items from ``--source A.wav B.wav --target REF...|NAME|PROFILE [--text ..] [--parallel-target ..]``."""
    b = _Builder(voices)
    if texts and len(texts) != len(sources):
        raise ManifestError(f"{len(texts)} texts for {len(sources)} sources: give one --text per --source, in order")
    if parallel_targets and len(parallel_targets) != len(sources):
        raise ManifestError(f"{len(parallel_targets)} parallel targets for {len(sources)} sources: "
                            "give one --parallel-target per --source, in order")
    tgt = target[0] if len(target) == 1 else list(target)
    for k, src in enumerate(sources):
        b.add_item(f"--source {src}", {"source": src, "target": tgt, "judge": list(judge) or None,
                                       "text": texts[k] if texts else None,
                                       "parallel_target": parallel_targets[k] if parallel_targets else None,
                                       "source_voice": source_voice}, os.getcwd())
    return b.build("command line")


def parse_span(spec: str) -> list[int]:
    """``1-8`` or ``1,3,5-7`` -> sentence numbers."""
    out: list[int] = []
    for part in str(spec).split(","):
        a, _, z = part.strip().partition("-")
        try:
            out.extend(range(int(a), int(z or a) + 1))
        except ValueError:
            raise ManifestError(f"bad sentence range {spec!r} (expected e.g. 1-8 or 1,3,5-7)") from None
    return out


def dataset_items(data_dir: str, pairs: str, enroll_utts: str = "1-8", test_utts: str = "9-12",
                  judge_utts: str = "17-24") -> EvalSet:
    """Items from a speech-dev style folder (``sentences.txt`` + ``VOICE_NN.wav``) and ``SRC:TGT`` pairs."""
    sent_path = os.path.join(data_dir, "sentences.txt")
    if not os.path.isfile(sent_path):
        raise ManifestError(f"{data_dir} has no sentences.txt (line i = text of VOICE_{{i:02d}}.wav)")
    with open(sent_path, encoding="utf-8") as fh:
        sents = [ln.strip() for ln in fh]
    wav = lambda v, i: os.path.join(data_dir, f"{v}_{i:02d}.wav")  # noqa: E731
    enroll, test, judge = parse_span(enroll_utts), parse_span(test_utts), parse_span(judge_utts)
    overlap = (set(enroll) & set(judge)) | (set(test) & set(judge)) | (set(enroll) & set(test))
    if overlap:
        raise ManifestError(f"enrollment, test and judging sentences overlap ({sorted(overlap)}): keep them apart")
    b = _Builder()
    names = []
    for pair in pairs.split(","):
        s, sep, t = pair.strip().partition(":")
        if not sep or not s or not t:
            raise ManifestError(f"bad pair {pair!r}: expected SOURCE:TARGET")
        names.append((s, t))
    for v in sorted({x for p in names for x in p}):
        b.define_voice(f"voice {v}", v, [wav(v, i) for i in enroll], [wav(v, i) for i in judge], None, data_dir)
    if b.errors:
        raise b.errors[0] if len(b.errors) == 1 else ManifestErrors(b.errors)
    for s, t in names:
        for i in test:
            b.add_item(f"{s}:{t} sentence {i}", {
                "id": f"{s}_{i:02d}-to-{t}", "source": wav(s, i), "target": t,
                "text": sents[i - 1] if i - 1 < len(sents) else None,
                "parallel_target": wav(t, i) if os.path.isfile(wav(t, i)) else None,
                "source_voice": s}, data_dir)
    return b.build(data_dir)
