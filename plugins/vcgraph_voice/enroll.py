"""Enrolment: build a :class:`~vcgraph_voice.profile.VoiceProfile` from reference recordings.

Each preset's analysis part (preprocessing + feature extraction, cut from the same graph
file the conversion runs) analyses every reference, so profile and conversion always agree
on sample rate, hop and features; then each conversion method condenses the analyses into
what it keeps of the target (statistics, frames to match).
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Sequence

from vcgraph.audio import Audio, read_audio
from vcgraph.pipeline import Pipeline

from . import embedding
from .api import preset_path
from .errors import VoiceInputError
from .methods import get_method
from .profile import VoiceProfile
from .validation import as_mono, check_audio

DEFAULT_PRESETS = ("content", "quality", "fast")


@functools.lru_cache(maxsize=8)
def analysis_pipeline(preset: str, overrides: tuple[str, ...] = ()) -> Pipeline:
    """The preset graph cut down to its feature extraction (cached)."""
    full = Pipeline.from_yaml(preset_path(preset), list(overrides))
    return full.cut({"features": "feature_extraction.features"})


def enroll_audio(audios: Sequence[Audio], presets: Sequence[str] = DEFAULT_PRESETS,
                 overrides: Sequence[str] = (), progress: Callable[[float, str], None] | None = None) -> VoiceProfile:
    """A profile from reference recordings, with data for every preset's conversion method."""
    if not audios:
        raise VoiceInputError("enrolment needs at least one reference recording")
    mono = []
    for a in audios:
        x = as_mono(a.samples)
        check_audio(x, a.sample_rate, 0.5)
        mono.append(Audio(x, int(a.sample_rate)))
    steps = len(presets) * len(mono) + 1
    done = 0

    def tick(stage: str) -> None:
        if progress:
            progress(100.0 * done / steps, stage)

    methods = {}
    source_embeddings: list = [None] * len(mono)  # feature extraction may compute them already
    for preset in presets:
        pipe = analysis_pipeline(preset, tuple(overrides))
        analyses = []
        for i, a in enumerate(mono):
            tick(f"{preset} {i + 1}/{len(mono)}")
            features = pipe.run({"audio": a}).outputs["features"]
            analyses.append(features)
            if source_embeddings[i] is None:
                source_embeddings[i] = features.source_embedding
            done += 1
        method = get_method(analyses[0].method)
        methods[method.name] = method.enroll(analyses)
    tick("embedding")
    for i, a in enumerate(mono):
        if source_embeddings[i] is None:
            source_embeddings[i] = embedding.embed(a.samples, a.sample_rate)
    emb = embedding.normalized_mean(source_embeddings)
    if progress:
        progress(100.0, "completed")
    return VoiceProfile(emb, methods, seconds=sum(a.seconds for a in mono))


def enroll_files(paths: Sequence[str | os.PathLike], **kw) -> VoiceProfile:
    """:func:`enroll_audio` on sound files."""
    return enroll_audio([read_audio(p) for p in paths], **kw)
