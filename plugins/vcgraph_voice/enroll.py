"""Enrolment: build a :class:`~vcgraph_voice.profile.VoiceProfile` from reference recordings.

Each preset's analysis part (preprocessing + feature extraction, cut from the same graph
file the conversion runs) analyses every reference, so profile and conversion always agree
on sample rate, hop and features; then each conversion method condenses the analyses into
what it keeps of the target (statistics, frames to match).
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Sequence

from vcgraph.audio import Audio, read_audio
from vcgraph.pipeline import Pipeline

from . import embedding
from .errors import VoiceInputError
from .methods import get_method
from .presets import preset_path
from .profile import VoiceProfile
from .validation import as_mono, check_audio

DEFAULT_PRESETS = ("content", "quality", "fast")


def analysis_pipeline(preset: str, overrides: Sequence[str] = ()) -> Pipeline:
    """The preset graph cut down to its feature extraction (a new one each call: keep it, as
    :class:`Enroller` does)."""
    full = Pipeline.from_yaml(preset_path(preset), list(overrides))
    return full.cut({"features": "feature_extraction.features"})


class Enroller:
    """Builds profiles; keeps what that needs between calls: the analysis graphs it cut (one
    per preset and overrides, with their stages' models) and the speaker encoder.

    Whoever enrols more than once holds one (:class:`~vcgraph_voice.api.VoiceConversionPipeline`,
    the ``speaker-encoder`` stage, ``vcgraph eval``'s converter); threads may share it.
    """

    def __init__(self, encoder: embedding.GE2EEncoder | None = None):
        self.encoder = encoder or embedding.GE2EEncoder("cpu")
        self._pipelines: dict[tuple[str, tuple[str, ...]], Pipeline] = {}
        self._lock = threading.Lock()

    def analysis_pipeline(self, preset: str, overrides: Sequence[str] = ()) -> Pipeline:
        """:func:`analysis_pipeline`, built once per preset and overrides."""
        key = (preset, tuple(overrides))
        with self._lock:
            if key not in self._pipelines:
                self._pipelines[key] = analysis_pipeline(preset, key[1])
            return self._pipelines[key]

    def enroll_audio(self, audios: Sequence[Audio], presets: Sequence[str] = DEFAULT_PRESETS,
                     overrides: Sequence[str] = (),
                     progress: Callable[[float, str], None] | None = None) -> VoiceProfile:
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
            pipe = self.analysis_pipeline(preset, tuple(overrides))
            analyses = []
            for i, a in enumerate(mono):
                tick(f"{preset} {i + 1}/{len(mono)}")
                features = pipe.run({"audio": a}).outputs["features"]
                analyses.append(features)
                if source_embeddings[i] is None:
                    source_embeddings[i] = features.source_embedding
                done += 1
            method = get_method(analyses[0].method)()
            methods[method.name] = method.enroll_features(analyses).to_arrays()
        tick("embedding")
        for i, a in enumerate(mono):
            if source_embeddings[i] is None:
                source_embeddings[i] = self.encoder.embed(a.samples, a.sample_rate)
        emb = embedding.normalized_mean(source_embeddings)
        if progress:
            progress(100.0, "completed")
        return VoiceProfile(emb, methods, seconds=sum(a.seconds for a in mono))

    def enroll_files(self, paths: Sequence[str | os.PathLike], **kw) -> VoiceProfile:
        """:meth:`enroll_audio` on sound files."""
        return self.enroll_audio([read_audio(p) for p in paths], **kw)


def enroll_audio(audios: Sequence[Audio], presets: Sequence[str] = DEFAULT_PRESETS,
                 overrides: Sequence[str] = (), progress: Callable[[float, str], None] | None = None,
                 enroller: Enroller | None = None) -> VoiceProfile:
    """:meth:`Enroller.enroll_audio` (with an enroller built for this call unless one is given)."""
    return (enroller or Enroller()).enroll_audio(audios, presets, overrides, progress)


def enroll_files(paths: Sequence[str | os.PathLike], enroller: Enroller | None = None, **kw) -> VoiceProfile:
    """:func:`enroll_audio` on sound files."""
    return (enroller or Enroller()).enroll_files(paths, **kw)
