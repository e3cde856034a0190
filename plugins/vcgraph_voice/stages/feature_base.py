"""What every feature-extraction stage shares: common config, ports and outputs."""
from __future__ import annotations

import threading

import torch
from pydantic import Field

from vcgraph.stage import Port, StageConfig, implementation

from ..dsp.mel import LogMelSpectrogram
from ..embedding import GE2EEncoder
from ..features import VoiceFeatures, resample_contour
from ..validation import check_source_f0
from ..waveform import Waveform
from .owned import OwnsResources


class FeatureConfig(StageConfig):
    """Settings shared by the feature-extraction stages."""

    n_fft: int = Field(2048, ge=64, le=16384, description="FFT size of the mel spectrogram")
    hop_length: int = Field(512, ge=16, le=8192, description="hop of the mel spectrogram and F0 output")
    n_mels: int = Field(80, ge=8, le=256, description="mel bands")
    f0_min: float = Field(80.0, ge=30.0, le=1000.0, description="lowest F0 searched (Hz)")
    f0_max: float = Field(800.0, ge=60.0, le=2000.0, description="highest F0 searched (Hz)")
    source_embedding: bool = Field(True, description="also compute the source's 256-d speaker embedding")


class FeatureStage(OwnsResources):
    """Base of the feature stages: each method's analysis plus mel, F0 and the source embedding."""

    method: str = ""
    Config = FeatureConfig
    inputs = {"audio": Port("waveform"),
              "source_f0": Port("array", "F0 (Hz, 0 = unvoiced) spanning the audio, any frame rate", optional=True)}
    outputs = {"features": Port("voice_features"), "mel": Port("mel", "log-mel (n_mels, frames)"),
               "f0": Port("f0", "Hz per hop_length frame, 0 = unvoiced")}

    def build(self, kind: str, device: str) -> None:
        """What every feature stage keeps: the ``mel`` port's transforms (one per sample rate
        and device, made on first use) and, with ``source_embedding``, the speaker encoder
        (its weights load on first use). Subclasses add their method's resources."""
        if getattr(self, "_log_mels", None) is None:
            self._lock = threading.Lock()
            self._log_mels: dict[tuple[int, str], LogMelSpectrogram] = {}
            self.encoder = GE2EEncoder("cpu") if self.config.source_embedding else None

    def log_mel(self, x: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """The ``mel`` port: log-mel ``(n_mels, frames)`` of ``x`` on its device."""
        c = self.config
        key = (int(sample_rate), str(x.device))
        with self._lock:
            tr = self._log_mels.get(key)
            if tr is None:
                tr = self._log_mels[key] = LogMelSpectrogram(sample_rate, c.n_fft, c.hop_length, c.n_mels).to(x.device)
        return tr(x)

    def call(self, kind, ctx, inputs):
        """Check a given ``source_f0`` against the audio before any implementation runs."""
        if inputs.get("source_f0") is not None and inputs.get("audio") is not None:
            inputs = dict(inputs, source_f0=check_source_f0(inputs["source_f0"], inputs["audio"].seconds))
        return super().call(kind, ctx, inputs)

    def analyze(self, ctx, audio: Waveform, source_f0, **options) -> dict:
        """Run the method's analysis and return the stage outputs (see :meth:`outputs_for`)."""
        raise NotImplementedError

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio, source_f0=None):
        return self.analyze(ctx, audio, source_f0)

    def outputs_for(self, ctx, audio: Waveform, analysis: dict, method_f0, with_embedding: bool = True) -> dict:
        """The stage outputs around a method's ``analysis`` whose F0 contour is ``method_f0``."""
        c = self.config
        self.ready(ctx)
        mel = self.log_mel(audio.samples.to(ctx.device).float(), audio.sample_rate)
        f0 = torch.from_numpy(resample_contour(method_f0, mel.shape[-1])).float()
        emb = self.encoder.embed(audio.samples.detach().cpu().numpy(), audio.sample_rate) \
            if c.source_embedding and with_embedding else None
        features = VoiceFeatures(self.method, audio, c.hop_length, mel, f0, emb, analysis)
        return {"features": features, "mel": mel, "f0": f0}
