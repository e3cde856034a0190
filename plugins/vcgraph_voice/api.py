"""The seed design's Python API, running on the vcgraph engine.

    from vcgraph_voice import VoiceConversionPipeline, PipelineConfig
    pipeline = VoiceConversionPipeline(PipelineConfig(use_cuda=True))
    pipeline.warmup()
    converted = pipeline.convert(source_audio, target, pitch_shift_semitones=2.0)

``target`` is a :class:`~vcgraph_voice.profile.VoiceProfile` (full quality), a path to a
``.vcp`` profile or ``.npy`` embedding, or a bare 256-d embedding (converted toward the fast
statistics the voice bank estimates from it, ``bank.py``: as fast as a profile, less close).
"""
from __future__ import annotations

import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from vcgraph.audio import Audio
from vcgraph.devices import cuda_available, device_name
from vcgraph.errors import CUDAKernelError, InputError, PipelineError
from vcgraph.pipeline import Pipeline

from .dsp import f0range
from .enroll import Enroller
from .errors import VoiceConversionError, VoiceInputError
from .presets import CONFIG_DIR, DEFAULT_PRESET, PRESETS, preset_path  # noqa: F401  (here since the seed API)
from .validation import check_pitch_shift

log = logging.getLogger("vcgraph.voice")

@dataclass
class PipelineConfig:
    """Settings of :class:`VoiceConversionPipeline` (the seed design's fields and defaults).

    ``preset`` picks the graph (``content`` — the default — ``quality`` or ``fast``, or a YAML path);
    ``overrides`` are extra dotted graph overrides (``nodes.voice_synthesis.config.k=4``).
    The audio and pitch fields set the graph's ``vars``; the error-handling fields and
    ``use_cuda`` its ``settings``. ``batch_size`` is how many items
    :meth:`VoiceConversionPipeline.batch_convert` converts at once (threads sharing the
    pipeline) for arrays in memory. ``chunk_size`` is accepted for compatibility with the seed
    design and changes nothing (a value other than the default warns): a conversion processes
    the whole recording at once; :meth:`VoiceConversionPipeline.stream` converts block-wise.
    """

    # Audio parameters
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 80
    # Pitch parameters
    f0_min: float = f0range.PRESET.floor
    f0_max: float = f0range.PRESET.ceil
    # Processing
    chunk_size: int = 8192
    batch_size: int = 4
    use_cuda: bool = True
    # Error handling
    max_retries: int = 3
    fallback_on_error: bool = True
    # Graph selection (vcgraph additions)
    preset: str = DEFAULT_PRESET
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.chunk_size != 8192:  # say so rather than ignore a setting silently
            warnings.warn("PipelineConfig.chunk_size has no effect: a conversion processes the whole "
                          "recording at once; for block-wise conversion use VoiceConversionPipeline.stream("
                          "target, block_size=...)", UserWarning, stacklevel=3)

    def graph_overrides(self) -> list[str]:
        """The dotted overrides that apply these settings to the graph file."""
        keys = ("sample_rate", "n_fft", "hop_length", "n_mels", "f0_min", "f0_max")
        return [f"vars.{k}={getattr(self, k)}" for k in keys] + [
            f"nodes.postprocessing.config.sample_rate={self.sample_rate}",
            f"fallback.config.sample_rate={self.sample_rate}",
            f"settings.use_cuda={str(self.use_cuda).lower()}",
            f"settings.max_retries={self.max_retries}",
            f"settings.fallback_on_error={str(self.fallback_on_error).lower()}",
        ] + list(self.overrides)


ProgressCallback = Callable[[float, str], None]


class VoiceConversionPipeline:
    """Converts speech toward a target voice by running the voice-conversion graph."""

    def __init__(self, config: PipelineConfig | None = None):
        self.config = config or PipelineConfig()
        self.pipeline = Pipeline.from_yaml(preset_path(self.config.preset), self.config.graph_overrides())
        self.enroller = Enroller()  # reference audio given as a target is enrolled with this
        self.last_report = None
        self._last_device = "cpu"
        self._lock = threading.Lock()

    # -- conversion ------------------------------------------------------------------------
    def convert(self, source_audio, target_embedding, source_f0=None, pitch_shift_semitones: float = 0.0,
                progress_callback: ProgressCallback | None = None, *, sample_rate: int | None = None) -> np.ndarray:
        """Convert ``source_audio`` toward ``target_embedding`` (an embedding or a profile).

        ``source_audio`` is numpy or torch samples at ``sample_rate`` (default: the config's
        rate), mono or multichannel. Returns float32 numpy at the config's ``sample_rate``.
        Progress: preprocessing 0, feature_extraction 20, speaker_encoding 40,
        voice_synthesis 60, postprocessing 80, completed 100.
        """
        inputs = self._inputs(source_audio, target_embedding, source_f0, pitch_shift_semitones, sample_rate)
        try:
            result = self.pipeline.run(inputs, progress_callback=progress_callback)
        except (VoiceConversionError, CUDAKernelError):
            raise
        except PipelineError as exc:
            cls = VoiceInputError if isinstance(exc, InputError) else VoiceConversionError
            raise cls(exc.message, node=exc.node, kind=exc.kind) from exc
        with self._lock:
            self.last_report = result.report
            devices = result.report.devices()
            self._last_device = "cuda:0" if any(d.startswith("cuda") for d in devices) else "cpu"
        return result["audio"].samples

    def _inputs(self, source_audio, target, source_f0, pitch_shift_semitones, sample_rate) -> dict[str, Any]:
        if isinstance(source_audio, Audio):
            audio = source_audio
        else:
            rate = self.config.sample_rate if sample_rate is None else sample_rate
            if isinstance(rate, float) and rate.is_integer():
                rate = int(rate)
            audio = Audio(source_audio, rate)  # a rate that is no integer is refused by preprocessing
        shift = check_pitch_shift(pitch_shift_semitones)  # before any enrolment work
        inputs: dict[str, Any] = {"audio": audio, "target": self._target(target), "pitch_shift": shift}
        if source_f0 is not None:
            inputs["source_f0"] = source_f0
        return inputs

    def _target(self, target):
        """Reference audio (a sound file path or :class:`Audio`) is enrolled for this preset's
        method only; anything else goes to the graph as it is."""
        from .profile import is_sound_file, load_target
        if isinstance(target, (str, os.PathLike)) and is_sound_file(os.fspath(target)):
            target = load_target(target)
        if isinstance(target, Audio):
            log.info("enrolling the reference audio given as target (enroll once to convert faster)")
            return self.enroller.enroll_audio([target], presets=[self.config.preset],
                                              overrides=tuple(self.config.overrides))
        return target

    def batch_convert(self, audio_list, target_embeddings, source_f0s: Sequence | None = None,
                      pitch_shift_semitones: float = 0.0, progress_callback: ProgressCallback | None = None,
                      continue_on_error: bool | None = None, sample_rate: int | None = None, *,
                      output_dir: str | os.PathLike | None = None, workers: int | None = None, engine: str = "local",
                      address: str | None = None, resume: bool = False, overwrite: bool = False):
        """Convert each item; one target for all, or one per item.

        Arrays in memory: returns the converted arrays, a failed item ``None`` when
        ``continue_on_error`` (default: the config's ``fallback_on_error``) is true, else its
        error is raised. ``progress_callback`` receives the overall percent and ``item i/n``.

        Files: ``audio_list`` is a list of sound-file paths, a folder, or a CSV/JSONL manifest,
        and ``output_dir`` is required. Outputs are written there as ``vcgraph batch`` writes
        them (atomically, ``results.jsonl``, ``resume``/``overwrite``, ``workers`` processes or
        ``engine="ray"`` actors, ``address`` of a Ray cluster); returns the
        :class:`vcgraph.batch.BatchSummary`. With ``continue_on_error=False`` a failed item
        raises :class:`VoiceConversionError` after the run (the others are still done).
        """
        if _is_file_input(audio_list):
            return self._batch_files(audio_list, target_embeddings, source_f0s, pitch_shift_semitones,
                                     progress_callback, continue_on_error, output_dir=output_dir, workers=workers,
                                     engine=engine, address=address, resume=resume, overwrite=overwrite)
        given = [k for k, v in (("output_dir", output_dir), ("workers", workers), ("address", address)) if v is not None]
        given += [k for k, v in (("engine", engine != "local"), ("resume", resume), ("overwrite", overwrite)) if v]
        if given:
            raise VoiceInputError(f"{', '.join(given)}: for a batch of files (paths, a folder or a manifest), "
                                  "not arrays in memory")
        n = len(audio_list)
        targets = list(target_embeddings) if _is_target_list(target_embeddings, n) else [target_embeddings] * n
        if len(targets) != n:
            raise VoiceInputError(f"{n} audio items but {len(targets)} target embeddings")
        keep_going = self.config.fallback_on_error if continue_on_error is None else continue_on_error

        def one(i: int):
            f0 = source_f0s[i] if source_f0s is not None else None
            return self.convert(audio_list[i], targets[i], f0, pitch_shift_semitones, sample_rate=sample_rate)

        results: list = [None] * n
        if progress_callback:
            progress_callback(0.0, f"0/{n} items")
        # the pipeline is shared by threads: ``batch_size`` conversions run at once, results in order
        with ThreadPoolExecutor(max_workers=max(1, min(self.config.batch_size, n))) as pool:
            futures = {pool.submit(one, i): i for i in range(n)}
            try:
                for done, future in enumerate(as_completed(futures), 1):
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except Exception as exc:
                        if not keep_going:
                            raise
                        log.warning("batch item %d of %d failed: %s", i + 1, n, exc)
                    if progress_callback:
                        progress_callback(100.0 * done / n, f"{done}/{n} items")
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        if progress_callback:
            progress_callback(100.0, "completed")
        return results

    def _batch_files(self, source, targets, source_f0s, pitch_shift, progress_callback, continue_on_error, *,
                     output_dir, **run):
        from .batch import convert_items, input_items, path_items
        if output_dir is None:
            raise VoiceInputError("a batch of files needs output_dir")
        if source_f0s is not None:
            raise VoiceInputError("source_f0s is for arrays in memory, not a batch of files")
        if isinstance(source, (str, os.PathLike)):
            items, common = input_items(os.fspath(source), os.fspath(output_dir), targets, pitch_shift)
        else:
            paths = list(source)
            per_item = _is_target_list(targets, len(paths))
            if per_item and len(targets) != len(paths):
                raise VoiceInputError(f"{len(paths)} audio files but {len(targets)} targets")
            items = path_items(paths, list(targets) if per_item else None, pitch_shift)
            common = None if per_item else targets

        def progress(result, done, total):
            if progress_callback:
                progress_callback(100.0 * done / max(total, 1), f"item {done}/{total}")

        summary = convert_items(self.pipeline, items, os.fspath(output_dir), target=common, progress=progress, **run)
        keep_going = self.config.fallback_on_error if continue_on_error is None else continue_on_error
        failed = [r for r in summary.results if r["status"] == "error"]
        if failed and not keep_going:
            raise VoiceConversionError(f"{len(failed)} of {len(items)} items failed (first: {failed[0]['source']}: "
                                       f"{failed[0]['error']}); see {summary.results_path}")
        return summary

    def convert_ray_dataset(self, ds, target, *, audio_column: str = "amplitude", rate_column: str = "sample_rate",
                            output_column: str = "converted", pitch_shift_semitones: float = 0.0,
                            workers: int | None = None):
        """A Ray dataset of audio (``ray.data.read_audio(...)``: ``amplitude`` and ``sample_rate``
        columns) mapped through this pipeline on Ray actors that load it once (GPU actors when
        the cluster has GPUs). Lazy: the returned dataset has ``output_column`` (samples at the
        config's rate, now in ``rate_column``), ``vcgraph_status`` and ``vcgraph_error`` instead
        of the input audio. Call ``ray.init`` first."""
        from .batch import convert_dataset
        return convert_dataset(ds, self.pipeline, target, audio_column=audio_column, rate_column=rate_column,
                               output_column=output_column, pitch_shift=pitch_shift_semitones, workers=workers)

    # -- streaming -------------------------------------------------------------------------
    def stream(self, target, block_size: int | None = None, *, sample_rate: int | None = None,
               pitch_shift_semitones: float = 0.0, latency_budget_ms: float | None = None,
               config: str | None = None, threads: int | None = 1):
        """A live stream toward ``target`` (a profile with fast data, a ``.vcp`` path or
        reference audio): :class:`~vcgraph_voice.stream.VoiceStream`, whose ``process(block)``
        returns as many samples as it is given, ``stream.latency.delay_samples`` late, and
        ``flush()`` the rest. Blocks are samples at ``sample_rate`` (default: the config's);
        ``block_size`` defaults to 20 ms. With ``latency_budget_ms`` the block size and
        settings that fit are picked (``stream.choice`` says which). ``config``: a streaming
        graph (default ``configs/stream.yaml``); ``threads`` sets torch's threads (process-wide).
        """
        from .stream import STREAM_CONFIG, open_stream
        return open_stream(target, sample_rate=sample_rate or self.config.sample_rate, block_size=block_size,
                           latency_budget_ms=latency_budget_ms, config=config or STREAM_CONFIG,
                           pitch_shift=pitch_shift_semitones, threads=threads, use_cuda=self.config.use_cuda)

    # -- monitoring ------------------------------------------------------------------------
    def get_stats(self) -> dict:
        """Conversion counts, success rate, mean seconds per conversion and device."""
        s = self.pipeline.stats.snapshot()
        return {
            "total_conversions": s["total_runs"],
            "successful_conversions": s["successful_runs"],
            "failed_conversions": s["failed_runs"],
            "average_processing_time": s["average_processing_time"],
            "success_rate": s["success_rate"],
            "device": device_name(self._last_device) if self._last_device != "cpu" else "cpu",
            "cuda_available": cuda_available(),
        }

    def warmup(self, num_iterations: int = 3) -> None:
        """Run a few conversions of synthetic speech-like audio so later calls are fast.

        Loads models, fills resampling caches and (on a GPU) allocates memory. The target is
        a profile enrolled from synthetic speech (a bare embedding takes the same conversion
        path, through the voice bank, which the speaker stage loads in its setup). Statistics are left as they were.
        """
        if num_iterations <= 0:
            return
        from .synthetic import speech_like
        sr = self.config.sample_rate
        audio = speech_like(1.0, sr)
        presets = [self.config.preset] if self.config.preset in PRESETS else list(PRESETS)
        profile = self.enroller.enroll_audio([Audio(speech_like(2.0, sr, f0=200.0, seed=1), sr)], presets=presets)
        inputs = self._inputs(audio, profile, None, 0.0, sr)
        for _ in range(num_iterations):
            self.pipeline.executor.run(inputs)  # the executor itself: not counted in get_stats()


def _is_file_input(audio_list) -> bool:
    """A folder or manifest path, or a non-empty list of paths (not arrays)."""
    if isinstance(audio_list, (str, os.PathLike)):
        return True
    return (isinstance(audio_list, (list, tuple)) and bool(audio_list)
            and all(isinstance(a, (str, os.PathLike)) for a in audio_list))


def _is_target_list(targets, n: int) -> bool:
    if isinstance(targets, (list, tuple)):
        first = targets[0] if targets else None
        return not (len(targets) == 256 and isinstance(first, (int, float, np.floating)))
    return isinstance(targets, np.ndarray) and targets.ndim == 2 and targets.shape[0] == n and n != 1
