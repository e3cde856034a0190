"""The content method as streaming stages (``configs/stream-content.yaml``).

``content-stream-features`` is ``fast-stream-features`` plus the trained content encoder run
block by block (:class:`~vcgraph_voice.dsp.content_stream.StreamContent`); it reads as far
ahead as the encoder and the matching context need, so its declared look-ahead is longer.
``content-stream-synthesis`` is ``fast-stream-synthesis`` with each frame's envelope and
aperiodicity taken mostly from the target frames nearest by content (and, with
``spectral_match``, by the mapped source's spectral shape), as the offline ``content`` preset
does (``blend`` of the matched envelope and the statistics-mapped source's, source frame
energy kept, log-F0 mapped). Same profiles as offline: ``vcgraph enroll ... --presets content``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
from pydantic import Field

from vcgraph.stage import implementation

from .. import content_model as cm
from ..methods.content import EnvelopeSettings, RefineSettings, check_same_encoder, warn_no_adaptive_frames
from .fast_stream import FastStreamFeatures, FastStreamSynthesis, FrameBlock, _dsp
from .owned import OwnsResources
from .stream_io import StreamChunk, _state


class ContentStreamFeatures(FastStreamFeatures, OwnsResources):
    """Streaming fast analysis plus the content encoder's features of every finished frame."""

    name = "content-stream-features"

    class Config(FastStreamFeatures.Config):
        context: int = Field(1, ge=0, le=4, description="content frames (10 ms) each side matched with a "
                             "frame; each adds 10 ms of look-ahead")
        weights: str = Field("", description="content-model safetensors file (empty: the shipped model)")
        norm_prior_frames: float = Field(200.0, ge=0.0, le=1e6, description="weight (10 ms frames) of the "
                                         "training voices' average in the encoder input's running normalisation")
        phone_states: bool = Field(False, description="also compute pocketsphinx's phone-state posteriors "
                                   "(cepstral mean: a running mean), which content-stream-synthesis's "
                                   "phone_states matches on; adds look-ahead")
        phone_state_context: int = Field(2, ge=0, le=4, description="content frames (10 ms) of those posteriors "
                                         "each side of a frame; each adds 10 ms of look-ahead")

    def build(self, kind: str, device: str) -> None:
        self.encoder = getattr(self, "encoder", {})
        if device not in self.encoder:
            self.encoder[device] = cm.load_encoder(self.config.weights or cm.WEIGHTS, device)
        self.phone_model = getattr(self, "phone_model", {})
        if self.config.phone_states and device not in self.phone_model:
            from ..phone_states import load_phone_states
            self.phone_model[device] = load_phone_states(device)

    @classmethod
    def settings_at(cls, config, sample_rate: int):
        """The streaming settings, with enough look-ahead frames for the content features."""
        from ..dsp.content_stream import content_lookahead, phone_state_lookahead
        s = cls.settings(config)
        g = _dsp().frame_grid(sample_rate, s)
        need = content_lookahead(sample_rate, config.context, g.hop)
        if config.phone_states:
            need = max(need, phone_state_lookahead(sample_rate, config.phone_state_context, g.hop))
        need -= g.half_context
        return replace(s, lookahead_frames=max(s.lookahead_frames, -(-need // g.hop)))

    @classmethod
    def geometry(cls, config, sample_rate: int):
        return _dsp().frame_grid(sample_rate, cls.settings_at(config, sample_rate))

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio: StreamChunk):
        from ..dsp.content import encoder_identity
        from ..dsp.content_stream import StreamContent
        self.ready(ctx)
        sr = audio.sample_rate

        def make():  # the settings once per stream: the content look-ahead builds a resampler off 16 kHz
            s = self.settings_at(self.config, sr)
            return {"settings": s, "ana": _dsp().StreamAnalyzer(sr, s, ctx.device),
                    "encoder": encoder_identity(self.encoder[ctx.device]),
                    "content": StreamContent(sr, self.encoder[ctx.device], s.fast.hop(sr), ctx.device,
                                             prior_frames=self.config.norm_prior_frames,
                                             phone_states=self.phone_model.get(ctx.device)
                                             if self.config.phone_states else None), "late": 0}

        st = _state(ctx, make)
        s = st["settings"]
        with torch.inference_mode():
            if not audio.samples.numel():
                return {"frames": FrameBlock(None, s, sr, st["encoder"])}
            frames = st["ana"].push(audio.samples)
            st["content"].push(audio.samples)
            if frames is not None:
                c, T = self.config.context, frames["f0"].shape[0]
                k0 = frames["k0"]
                if st["content"].available(c) < k0 + T:
                    st["late"] += 1  # never expected: the look-ahead covers the content (tested)
                frames["content"] = st["content"].frames(k0, k0 + T, c)
                phones = st["content"].phones
                if phones is not None:
                    pc, hop = self.config.phone_state_context, s.fast.hop(sr)
                    if phones.available(hop, sr, pc) < k0 + T:
                        st["late"] += 1
                    frames["phone_states"] = phones.frames(k0, k0 + T, hop, sr, pc)
        return {"frames": FrameBlock(frames, s, sr, st["encoder"])}


class ContentStreamSynthesis(FastStreamSynthesis):
    """Content-matched target envelopes blended with the mapped source's; overlap-add HNM synthesis."""

    name = "content-stream-synthesis"
    method = "content"

    class Config(FastStreamSynthesis.Config, RefineSettings, EnvelopeSettings):
        k: int = Field(4, ge=1, le=64, description="target frames averaged per source frame")
        match_on: Literal["bottleneck", "posteriors"] = Field("bottleneck", description="content features compared")
        blend: float = Field(0.6, ge=0.0, le=1.0, description="weight of the matched target envelope (the rest: "
                             "the source's envelope mapped to the target's statistics)")
        target_aperiodicity: bool = Field(True, description="aperiodicity from the matched target frames")
        spectral_match: float = Field(0.0, ge=0.0, le=1.0, description="weight of a spectral match beside the "
                                      "content match (the mapped source's envelope against the target's frames)")
        phone_states: float = Field(0.0, ge=0.0, le=1.0, description="weight of pocketsphinx's phone-state "
                                    "posteriors in the content match (needs content-stream-features' "
                                    "phone_states on, and a profile enrolled with them)")
        refine_after_s: float = Field(6.0, ge=0.0, le=600.0, description="seconds of speech the maps are fitted on "
                                      "before their queries are used (the unrefined ones until then)")
        adaptive_frames: float = Field(0.0, ge=0.0, le=1.0, description="how far the matched voiced target "
                                       "frames render their pitch-adaptive envelope (analysed at enrolment) "
                                       "instead of the cepstral one they are found on (needs a profile enrolled "
                                       "since 2026-12-07, with adaptive_log_env)")
        f0_quantile: float = Field(0.0, ge=0.0, le=1.0, description="how far each voiced frame's log-F0 goes to "
                                   "the target's own at the same quantile (the profile's pitch distribution; "
                                   "the quantile of the frame's z-score under the running source statistics, "
                                   "read as normal), from the source's contour mapped to the target's mean "
                                   "and spread (0: that alone; needs a profile with frame_lf0)")

    def settings(self, upstream, warp: bool | None = None):
        return replace(super().settings(upstream, warp), f0_quantile=self.config.f0_quantile)

    def _envelope(self, state: dict, frames: FrameBlock, target: dict, env: torch.Tensor, ap: torch.Tensor):
        from ..dsp.content import ContentParams, output_envelope
        from ..dsp.content_stream import StreamMatcher
        c, fr = self.config, frames.frames
        if "match" not in state:
            p = ContentParams(k=c.k, match_on=c.match_on, context=fr["content"].shape[1] // 2, blend=c.blend,
                              keep_energy=c.keep_energy, smooth=0, target_ap=c.target_aperiodicity,
                              spectral_match=c.spectral_match, refine=c.refine, refine_context=c.refine_context,
                              refine_ridge=c.refine_ridge, content_shape=c.content_shape,
                              content_shape_ridge=c.content_shape_ridge, phone_states=c.phone_states, blend_high=c.blend_high,
                              blend_split_hz=c.blend_split_hz, postfilter=c.postfilter,
                              phone_state_context=fr["phone_states"].shape[1] // 2 if "phone_states" in fr else 0,
                              adaptive_frames=c.adaptive_frames)
            n_fft = _dsp().frame_grid(frames.sample_rate, frames.settings).n_fft
            state["match"] = StreamMatcher(p, frames.sample_rate, n_fft, env.device, tau_s=c.tau_s,
                                           refine_after_s=c.refine_after_s)
        matcher = state["match"]
        if state.get("checked_target") is not target:   # once per target, not per block
            check_same_encoder(target["encoder"], frames.encoder)
            if c.adaptive_frames > 0 and "adaptive_log_env" not in target:
                warn_no_adaptive_frames()
            state["checked_target"] = target
        matcher.set_target(target)
        env_m, ap_m = matcher.match(fr["content"], env, fr["log_env"], fr["speech"], fr.get("phone_states"))
        out = output_envelope(env_m, env, fr["log_env"], matcher.p, frames.sample_rate)  # as offline
        if c.target_aperiodicity:
            ap = torch.where(fr["voiced"][:, None], ap_m.clamp(0, 1), torch.ones_like(ap_m))
        return out, ap


__all__ = ["ContentStreamFeatures", "ContentStreamSynthesis"]
