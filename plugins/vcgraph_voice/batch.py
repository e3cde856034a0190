"""Voice batch conversion: the items of a folder or a manifest, run by the engine's batch runner.

A folder gives every audio file under it (recursively), written to the same relative path in
the output folder. A manifest (``.csv`` or ``.jsonl``) gives one item per row: ``source``,
``target`` (optional when one target is given for all), ``pitch_shift`` (optional, semitones)
and ``output`` (optional, relative to the output folder; default ``TARGET_NAME/SOURCE``).
Relative paths in a manifest are relative to the manifest's folder.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Any, Callable, Sequence

from vcgraph.batch import BatchItem, BatchSummary, run_batch

from .errors import VoiceInputError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf")
KEPT_EXTENSIONS = (".wav", ".flac")  # outputs keep these; other sources are written as .wav
MANIFEST_COLUMNS = ("source", "target", "pitch_shift", "output")


def absolute(target: Any) -> Any:
    """A target path made absolute (Ray actors do not run in this folder); other values as they are."""
    return os.path.abspath(target) if isinstance(target, (str, os.PathLike)) else target


def output_name(relpath: str) -> str:
    """The output file for a source at ``relpath``: same path, ``.wav`` unless wav or flac."""
    stem, ext = os.path.splitext(relpath)
    return relpath if ext.lower() in KEPT_EXTENSIONS else stem + ".wav"


def folder_items(folder: str, outdir: str, pitch_shift: float = 0.0) -> list[BatchItem]:
    """Every audio file under ``folder`` (sorted; hidden files and the output folder left out)."""
    folder, outdir = os.path.abspath(folder), os.path.abspath(outdir)
    items = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.join(here, d) != outdir)
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            path = os.path.join(here, name)
            items.append(BatchItem(path, output_name(os.path.relpath(path, folder)),
                                   {"audio": path, "pitch_shift": pitch_shift}))
    if not items:
        raise VoiceInputError(f"no audio files under {folder} (extensions: {' '.join(AUDIO_EXTENSIONS)})")
    return items


def read_manifest(path: str) -> list[tuple[int, dict]]:
    """(line number, row) for each row of a CSV (with a header) or JSONL manifest."""
    if not os.path.isfile(path):
        raise VoiceInputError(f"manifest not found: {path}")
    rows: list[tuple[int, dict]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        if path.lower().endswith(".jsonl"):
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise VoiceInputError(f"{path}:{n}: not JSON: {exc.msg}") from None
                    if not isinstance(row, dict):
                        raise VoiceInputError(f"{path}:{n}: each line must be a JSON object")
                    rows.append((n, row))
        else:
            reader = csv.DictReader(fh)
            for row in reader:
                rows.append((reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k}))
    for n, row in rows:
        unknown = sorted(set(row) - set(MANIFEST_COLUMNS))
        if unknown:
            raise VoiceInputError(f"{path}:{n}: unknown column(s) {', '.join(unknown)} "
                                  f"(columns: {', '.join(MANIFEST_COLUMNS)})")
    if not rows:
        raise VoiceInputError(f"{path}: the manifest has no rows")
    return rows


def manifest_items(path: str, target: Any = None, pitch_shift: float = 0.0) -> list[BatchItem]:
    """One item per manifest row; a row without a target uses ``target`` (an error if none)."""
    base = os.path.dirname(os.path.abspath(path))
    items = []
    for n, row in read_manifest(path):
        where = f"{path}:{n}"
        source = str(row.get("source") or "")
        if not source:
            raise VoiceInputError(f"{where}: no source")
        source = os.path.join(base, source)
        row_target = os.path.join(base, str(row["target"])) if row.get("target") else absolute(target)
        if row_target is None:
            raise VoiceInputError(f"{where}: no target (give a 'target' column or --target)")
        try:
            shift = float(row["pitch_shift"]) if row.get("pitch_shift") not in (None, "") else pitch_shift
        except (TypeError, ValueError):
            raise VoiceInputError(f"{where}: pitch_shift '{row['pitch_shift']}' is not a number") from None
        rel = os.path.relpath(source, base)
        voice = (os.path.splitext(os.path.basename(os.fspath(row_target)))[0]
                 if isinstance(row_target, (str, os.PathLike)) else "target")
        default = os.path.join(voice, rel if not rel.startswith("..") else os.path.basename(source))
        output = str(row.get("output") or "") or output_name(default)
        items.append(BatchItem(source, output, {"audio": source, "target": row_target, "pitch_shift": shift}))
    missing = sorted({os.fspath(t) for t in (i.inputs["target"] for i in items)
                      if isinstance(t, (str, os.PathLike)) and not os.path.isfile(t)})
    if missing:
        raise VoiceInputError(f"{len(missing)} target file(s) not found (first: {missing[0]})")
    return items


def input_items(source: str, outdir: str, target: Any, pitch_shift: float = 0.0) -> tuple[list[BatchItem], Any]:
    """The items of a folder or a manifest, and the target common to all items (a folder's
    ``target``; None for a manifest, whose items carry theirs)."""
    if os.path.isdir(source):
        if target is None:
            raise VoiceInputError("a folder needs --target (or give a manifest with a 'target' column)")
        return folder_items(source, outdir, pitch_shift), target
    if source.lower().endswith((".csv", ".jsonl")):
        return manifest_items(source, target, pitch_shift), None
    if not os.path.exists(source):
        raise VoiceInputError(f"input not found: {source}")
    raise VoiceInputError(f"{source}: give a folder of audio files or a .csv/.jsonl manifest")


def convert_items(pipeline, items: Sequence[BatchItem], outdir: str, *, target: Any = None, workers: int | None = None,
                  engine: str = "local", address: str | None = None, resume: bool = False, overwrite: bool = False,
                  progress: Callable[[dict, int, int], None] | None = None) -> BatchSummary:
    """Run the engine's batch runner with the voice graph's inputs: ``target`` (a path, profile
    or embedding) for items without their own, each target read once per worker."""
    common = {"target": absolute(target)} if target is not None else None
    if workers is None:
        workers = 0 if engine == "ray" else 1
    return run_batch(pipeline, items, outdir, workers=workers, engine=engine, address=address, resume=resume,
                     overwrite=overwrite, common_inputs=common, shared_inputs=("target",), progress=progress)


def path_items(paths: Sequence, targets: Sequence | None, pitch_shift: float) -> list[BatchItem]:
    """Items of a list of sound files, each written under its file name (``targets``: one per
    file, or None when one target serves all)."""
    items = []
    for i, path in enumerate(paths):
        path = os.path.abspath(os.fspath(path))
        inputs: dict[str, Any] = {"audio": path, "pitch_shift": float(pitch_shift)}
        if targets is not None:
            inputs["target"] = absolute(targets[i])
        items.append(BatchItem(path, output_name(os.path.basename(path)), inputs))
    return items


# -- a user's Ray dataset ---------------------------------------------------------------------
def row_inputs(row: dict, *, audio_column: str, rate_column: str, pitch_shift: float) -> dict:
    """Graph inputs from a dataset row; audio as Ray's ``read_audio`` gives it, ``(channels, frames)``,
    or ``(frames,)``."""
    import numpy as np
    from vcgraph.audio import Audio
    samples = np.asarray(row[audio_column], dtype=np.float32)
    if samples.ndim == 2:
        samples = samples[0] if samples.shape[0] == 1 else samples.T
    return {"audio": Audio(samples, int(row[rate_column])), "pitch_shift": float(row.get("pitch_shift", pitch_shift))}


def row_output(row: dict, outputs: dict | None, *, audio_column: str, rate_column: str, output_column: str) -> dict:
    """The row without its input audio, plus ``output_column`` (converted samples, empty for a
    failed row) at the rate now in ``rate_column``."""
    import numpy as np
    out = {k: v for k, v in row.items() if k != audio_column}
    audio = outputs["audio"] if outputs else None
    out[output_column] = np.asarray(audio.samples, dtype=np.float32) if audio else np.zeros(0, np.float32)
    out[rate_column] = int(audio.sample_rate) if audio else int(row[rate_column])
    return out


def convert_dataset(ds, pipeline, target, *, audio_column: str = "amplitude", rate_column: str = "sample_rate",
                    output_column: str = "converted", pitch_shift: float = 0.0, workers: int | None = None):
    """``ds`` (a Ray dataset of audio, e.g. ``ray.data.read_audio(...)``) converted toward ``target``."""
    from functools import partial
    from vcgraph.batch_ray import map_dataset
    return map_dataset(ds, pipeline,
                       partial(row_inputs, audio_column=audio_column, rate_column=rate_column, pitch_shift=pitch_shift),
                       partial(row_output, audio_column=audio_column, rate_column=rate_column,
                               output_column=output_column),
                       common_inputs={"target": absolute(target)}, workers=workers)
