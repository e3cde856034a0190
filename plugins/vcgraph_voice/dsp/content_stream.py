"""The content method, block by block: the trained encoder run incrementally, and the matching.

:class:`StreamContent` turns the stream (at the working rate) into the content encoder's
features on the fast method's 5 ms grid, as :func:`.content.content_features` does offline:

* the 16 kHz log-mel frames of :class:`~vcgraph_voice.content_model.ContentFrontend` (10 ms
  hop, 400-sample window in a 512-point FFT, reflect padding at the stream's start), each
  computed once, as soon as the 400 samples its window covers have arrived;
* normalised with causal running statistics (:class:`.running.RunningMoments`) of the louder
  frames (offline: the utterance's frames above its 30 % energy quantile; here: frames within
  ``speech_db`` of a running peak), starting from the average statistics of training voices
  (``models/content-norm-prior.json``, ``scripts/content_model/norm_prior.py``) worth
  ``prior_frames`` frames;
* the encoder run on the frames whose receptive field (``RECEPTIVE_LEFT`` frames before,
  ``LOOKAHEAD_FRAMES`` after) has arrived, over a window long enough that its zero padding
  never reaches them, so each content frame equals the offline encoder's on the same
  normalised input.

:class:`StreamMatcher` matches finished frames against a profile's content frames (the
offline matching of :mod:`.content`; the bottleneck's utterance mean is a running mean here),
and :class:`StreamRefiner` refines its spectral queries as :func:`.content.refined_queries`
does offline, with forgetting sums instead of one fit per utterance.
Look-ahead: what a 5 ms frame's matching context reads, see :func:`content_lookahead`.
"""
from __future__ import annotations

import json
import math
import os

import torch
import torch.nn.functional as F
import torchaudio

from .. import content_model as cm
from ..errors import VoiceInputError
from .content import (ContentParams, _matching_features, _mel_shape, _with_bias, check_target_phone_states,
                      content_frame_index, fit_shape_map, joint_keys, knn_average, no_source_phone_states,
                      rebin_hz, rendered_target_frames, spectral_keys, spectral_queries, with_content_shape, with_phone_states)
from .running import PeakTracker, RunningMoments

__all__ = ["RECEPTIVE_LEFT", "StreamContent", "StreamMatcher", "StreamPhoneStates", "StreamRefiner", "content_lookahead",
           "phone_state_lookahead", "rebin_hz"]

RECEPTIVE_LEFT = 2 + sum(2 * d for d in cm.DILATIONS[:-1]) + cm.DILATIONS[-1]  # content frames (33)
_HALF_WIN = 200   # samples each side of a 10 ms frame's centre that its window covers (400-sample Hann)
_PAD = cm.N_FFT // 2  # the offline frontend's centre padding (reflect)
NORM_PRIOR = os.path.join(os.path.dirname(cm.WEIGHTS), "content-norm-prior.json")


def norm_prior(path: str = NORM_PRIOR) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) ``[N_MELS]`` a stream's normalisation starts from."""
    try:
        with open(path) as fh:
            d = json.load(fh)
        mean, std = torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VoiceInputError(f"{path}: not a valid normalisation prior ({exc}); reinstall vcgraph-voice or "
                              "run scripts/content_model/norm_prior.py") from None
    if mean.shape != (cm.N_MELS,) or std.shape != (cm.N_MELS,) or not bool((std > 0).all()):
        raise VoiceInputError(f"{path}: expected {cm.N_MELS} means and positive deviations")
    return mean, std


def content_lookahead(sample_rate: int, context: int, hop: int) -> int:
    """Samples at ``sample_rate`` after an analysis frame's centre (frames ``hop`` apart) that
    its content features need: the matching context (``context`` shifts of two analysis
    frames), rounding to the nearest content frame, the encoder's look-ahead and half a
    window, rounded up, plus the resampler's delay when the stream is not at 16 kHz."""
    return _lookahead(sample_rate, context, hop, cm.LOOKAHEAD_FRAMES, _HALF_WIN)


def _lookahead(sample_rate: int, context: int, hop: int, frames_ahead: int, half_window: int) -> int:
    """Samples at ``sample_rate`` after an analysis frame's centre that a 10 ms feature with
    ``context`` shifts of two analysis frames needs, when each 10 ms frame reads
    ``frames_ahead`` frames after it and its window ``half_window`` samples (16 kHz) past its
    centre: rounding to the nearest 10 ms frame, rounded up, plus the resampler's delay when
    the stream is not at 16 kHz."""
    frames = 2 * context * hop * 100.0 / sample_rate + 0.5 + frames_ahead
    need16 = frames * cm.HOP + half_window
    extra = 0
    if sample_rate != cm.SAMPLE_RATE:
        from .stream_resample import StreamResampler
        extra = StreamResampler(sample_rate, cm.SAMPLE_RATE).delay + 1
    return int(math.ceil(need16 * sample_rate / cm.SAMPLE_RATE)) + extra


class StreamContent:
    """Working-rate samples in; content features ``[T, 64 + N_CLASSES]`` of 5 ms frames out."""

    def __init__(self, sample_rate: int, encoder: cm.ContentEncoder, hop: int, device="cpu", speech_db: float = 30.0,
                 prior_frames: float = 200.0, tau_s: float = 30.0, prior: tuple | None = None, phone_states=None):
        self.sr, self.device, self.encoder, self.hop = int(sample_rate), torch.device(device), encoder, int(hop)
        # pocketsphinx's posteriors of the same 16 kHz stream (a PhoneStates model, or None)
        self.phones = StreamPhoneStates(phone_states, device, tau_s) if phone_states is not None else None
        self.resampler = None
        if self.sr != cm.SAMPLE_RATE:
            from .stream_resample import StreamResampler
            self.resampler = StreamResampler(self.sr, cm.SAMPLE_RATE, device)
        # the offline frontend's transform, framed by hand (center=False on a padded stream)
        self.mel = torchaudio.transforms.MelSpectrogram(cm.SAMPLE_RATE, n_fft=cm.N_FFT, win_length=cm.WIN,
                                                        hop_length=cm.HOP, n_mels=cm.N_MELS, f_min=20.0,
                                                        f_max=7600.0, power=2.0, center=False).to(self.device)
        self.x = torch.zeros(0, device=self.device)   # the reflect-padded 16 kHz stream, from x_start
        self.x_start = 0
        self.received16 = 0
        self.started = False
        self.n_mel = 0                                # mel frames computed
        self.nmel = torch.zeros(0, cm.N_MELS, device=self.device)  # normalised, from nmel_start
        self.nmel_start = 0
        self.n_content = 0                            # content frames computed
        self.content = torch.zeros(0, cm.BOTTLENECK + cm.N_CLASSES, device=self.device)
        self.content_start = 0
        mean, std = prior if prior is not None else norm_prior()
        self.stats = RunningMoments(mean, std, prior_frames, prior_frames, tau_s * 100.0, self.device)
        self.peak = PeakTracker(100.0, floor_db=-1e9)
        self.speech_db = float(speech_db)

    # -- 16 kHz log-mel, normalised -------------------------------------------------------
    def _log_mel(self) -> torch.Tensor:
        """The mel frames whose windows have arrived (un-normalised, ``[n, N_MELS]``)."""
        last = (self.received16 - _HALF_WIN) // cm.HOP  # frame j covers stream samples < j*HOP + HALF_WIN
        if not self.started or last < self.n_mel:
            return torch.zeros(0, cm.N_MELS, device=self.device)
        a, b = self.n_mel, last + 1
        lo = a * cm.HOP - self.x_start                   # padded-stream index of frame a's start
        seg = self.x[lo:(b - 1) * cm.HOP + cm.N_FFT - self.x_start]
        seg = F.pad(seg, (0, (b - a - 1) * cm.HOP + cm.N_FFT - seg.numel()))  # zero-windowed tail
        self.n_mel = b
        return torch.log(self.mel(seg) + 1e-6).transpose(0, 1)

    def _normalise(self, lm: torch.Tensor) -> torch.Tensor:
        db = lm.mean(1) * (10.0 / math.log(10.0))  # mean log power, in dB
        speech = db > self.peak.update(db) - self.speech_db
        self.stats.update(lm, speech)
        return (lm - self.stats.mean) / self.stats.std.clamp_min(0.1)

    def push(self, x: torch.Tensor) -> None:
        """Append working-rate samples; compute every mel and content frame that became final."""
        x = x.to(self.device, torch.float32).reshape(-1)
        if self.resampler is not None:
            x = self.resampler.push(x)
        if self.phones is not None:
            self.phones.push(x)
        self.x = torch.cat([self.x, x])
        self.received16 += int(x.numel())
        if not self.started:
            if self.x.numel() <= _PAD:
                return
            self.x = torch.cat([self.x[1:_PAD + 1].flip(0), self.x])  # offline: reflect padding
            self.started = True
        lm = self._log_mel()
        if lm.shape[0]:
            self.nmel = torch.cat([self.nmel, self._normalise(lm)])
        self._encode()
        keep = max(0, self.n_mel * cm.HOP - self.x_start)  # the next frame's window starts here
        if keep:
            self.x, self.x_start = self.x[keep:], self.x_start + keep

    def _encode(self) -> None:
        last = self.n_mel - 1 - cm.LOOKAHEAD_FRAMES     # content frames up to here are final
        if last < self.n_content:
            return
        w0 = max(0, self.n_content - RECEPTIVE_LEFT)
        win = self.nmel[w0 - self.nmel_start:]
        with torch.inference_mode():
            logits, z = self.encoder(win[None])
        feats = torch.cat([z[0], torch.log_softmax(logits[0], -1)], -1)
        new = feats[self.n_content - w0:last + 1 - w0]
        self.content = torch.cat([self.content, new])
        self.n_content = last + 1
        drop = max(0, self.n_content - RECEPTIVE_LEFT) - self.nmel_start
        if drop > 0:
            self.nmel, self.nmel_start = self.nmel[drop:], self.nmel_start + drop

    def available(self, context: int) -> int:
        """Analysis frames whose content features are final: ``k < available(context)``."""
        return _final_frames(self.n_content, self.hop, self.sr, context)

    def frames(self, k0: int, k1: int, context: int) -> torch.Tensor:
        """Content features of analysis frames ``k0 .. k1 - 1`` with their matching context, as
        offline: ``[k1 - k0, 2 * context + 1, D]`` (:func:`_grid_rows`)."""
        out, drop = _grid_rows(self.content, self.content_start, self.n_content, k0, k1, self.hop, self.sr, context)
        if drop > 0:
            self.content, self.content_start = self.content[drop:], self.content_start + drop
        return out


def _final_frames(n_final: int, hop: int, sr: int, context: int) -> int:
    """Analysis frames (``hop`` samples apart at ``sr``) whose 10 ms rows with ``context`` are
    among the first ``n_final``: ``k < _final_frames(...)``."""
    if not n_final:
        return 0
    r = hop * 100.0 / sr                       # 10 ms rows per analysis frame
    k = int(math.floor((n_final - 0.5) / r - 1e-9)) - 2 * context  # round((k + 2c) r) <= n - 1
    return max(0, k + 1)


def _grid_rows(rows: torch.Tensor, start: int, n_final: int, k0: int, k1: int, hop: int, sr: int,
               context: int) -> tuple[torch.Tensor, int]:
    """The 10 ms ``rows`` (row 0 is row ``start`` of the stream; ``n_final`` rows so far) of
    analysis frames ``k0 .. k1 - 1`` with their matching context, as offline: frame ``k``'s
    shift ``s`` reads the row nearest frame ``k + 2 s`` (clamped at the stream's start):
    ``[k1 - k0, 2 * context + 1, D]``, and how many leading rows no later frame reads."""
    k = torch.arange(k0, k1, device=rows.device)
    js = torch.stack([content_frame_index((k + 2 * s).clamp_min(0), hop, sr)
                      for s in range(-context, context + 1)], 1).clamp(max=n_final - 1)
    drop = int(js[0, 0]) - start if k1 > k0 else 0  # later frames read no earlier rows
    return rows[js - start], drop


class StreamPhoneStates:
    """16 kHz samples in; pocketsphinx's phone-state posteriors (:mod:`..phone_states`) of
    10 ms frames out, as offline except that the cepstral mean removed is a causal running
    mean (forgetting, ``tau_s``) of the frames so far instead of the utterance's. A frame is
    final when its window and the 3 frames its deltas read after it have arrived."""

    def __init__(self, model, device="cpu", tau_s: float = 30.0):
        from ..phone_states import HOP, WINDOW
        self.model, self.device, self.hop, self.half = model, torch.device(device), HOP, WINDOW // 2
        self.x = torch.zeros(0, device=self.device)   # the pre-emphasised, reflect-padded stream, from x_start
        self.x_start, self.received, self.last_sample, self.started = 0, 0, None, False
        self.n_cep, self.cep, self.cep_start = 0, torch.zeros(0, 13, device=self.device), 0   # mean removed
        self.n_post, self.post, self.post_start = 0, torch.zeros(0, 126, device=self.device), 0
        self.mean = RunningMoments(torch.zeros(13), torch.ones(13), 0.0, 0.0, tau_s * 100.0, self.device)

    def push(self, x16: torch.Tensor) -> None:
        """Append 16 kHz samples; compute every cepstrum and posterior that became final."""
        x = x16.to(self.device, torch.float32).reshape(-1) * 32768.0
        if not x.numel():
            return
        prev = x[:1] if self.last_sample is None else self.last_sample
        self.last_sample = x[-1:].clone()
        emph = x - 0.97 * torch.cat([prev, x[:-1]])
        if self.received == 0:
            emph[0] = x[0]                      # offline: the first sample is kept as it is
        self.received += int(x.numel())
        self.x = torch.cat([self.x, emph])
        if not self.started:
            if self.x.numel() <= self.half:
                return
            self.x = torch.cat([self.x[1:self.half + 1].flip(0), self.x])   # offline: reflect padding
            self.started = True
        last = (self.received - self.half) // self.hop   # frame t's window ends at stream sample t * hop + half
        if last >= self.n_cep:
            a = self.n_cep
            seg = self.x[a * self.hop - self.x_start:last * self.hop + 2 * self.half - self.x_start]
            c = self.model.framed_cepstra(seg)
            self.mean.update(c, torch.ones(c.shape[0], dtype=torch.bool, device=c.device))
            self.cep = torch.cat([self.cep, c - self.mean.data_mean])
            self.n_cep = last + 1
            keep = self.n_cep * self.hop - self.x_start
            self.x, self.x_start = self.x[keep:], self.x_start + keep
        final = self.n_cep - 1 - 3
        if final >= self.n_post:
            first = self.n_post
            post = self.model.posteriors(self.cep, first - self.cep_start, final + 1 - self.cep_start)
            self.post = torch.cat([self.post, post])
            self.n_post = final + 1
            drop = max(0, self.n_post - 3) - self.cep_start
            if drop > 0:
                self.cep, self.cep_start = self.cep[drop:], self.cep_start + drop

    def available(self, hop: int, sr: int, context: int) -> int:
        """Analysis frames (``hop`` samples apart at ``sr``) whose posteriors with ``context``
        are final: ``k < available(...)``."""
        return _final_frames(self.n_post, hop, sr, context)

    def frames(self, k0: int, k1: int, hop: int, sr: int, context: int) -> torch.Tensor:
        """Posteriors of analysis frames ``k0 .. k1 - 1`` with their matching context, as
        offline: ``[k1 - k0, 2 * context + 1, 126]`` (:func:`_grid_rows`)."""
        out, drop = _grid_rows(self.post, self.post_start, self.n_post, k0, k1, hop, sr, context)
        if drop > 0:
            self.post, self.post_start = self.post[drop:], self.post_start + drop
        return out


def phone_state_lookahead(sample_rate: int, context: int, hop: int) -> int:
    """Samples at ``sample_rate`` after an analysis frame's centre that its phone-state
    posteriors with ``context`` need (as :func:`content_lookahead`: 3 frames of deltas, half a
    410-sample window)."""
    from ..phone_states import WINDOW
    return _lookahead(sample_rate, context, hop, 3, WINDOW // 2)


class StreamRefiner:
    """The refined spectral match (:func:`.content.refined_queries`), causally. Offline, round
    ``r`` fits a ridge map from the source's standardised log-mel shapes to the shapes of the
    target frames that round ``r - 1``'s queries find (round 0: the unrefined queries). Here each
    round's map is fitted on forgetting sums over every speech frame so far (time constant
    ``tau_frames``), block by block, its targets found by the previous round's current map, so
    no map ever feeds on its own matches (one that does drifts toward whatever it found first).
    A frame sees ``context`` frames before it (offline: each side), so it adds no look-ahead.
    Until ``min_frames`` speech frames were seen the queries pass unrefined."""

    def __init__(self, rounds: int, context: int, ridge: float, tau_frames: float, device, min_frames: int):
        self.rounds, self.context, self.ridge, self.min_frames = int(rounds), int(context), float(ridge), int(min_frames)
        self.tau_frames = float(tau_frames)
        self.lam = math.exp(-1.0 / max(tau_frames, 1.0))
        self.device = torch.device(device)
        self.moments = None         # RunningMoments of the shapes (made with the first block: width)
        self.history = None         # the last ``context`` frames' raw shapes (their context)
        self.gram = None            # forgetting sum of X^T X (speech frames)
        self.cross = [None] * self.rounds   # per round: forgetting sum of X^T (matched shapes)
        self.maps = [None] * self.rounds

    def _features(self, shapes: torch.Tensor) -> torch.Tensor:
        hist = self.history if self.history is not None else shapes[:1].expand(self.context, -1)
        allm = torch.cat([hist, shapes])
        self.history = allm[allm.shape[0] - self.context:] if self.context else None
        z = (allm - self.moments.data_mean) / self.moments.std.clamp_min(1e-3)
        T, c = shapes.shape[0], self.context
        cols = [z[c + d:c + d + T] for d in range(-c, 1)]
        return _with_bias(torch.cat(cols, 1)).double()

    def refine(self, source_env: torch.Tensor, speech: torch.Tensor, content_q: torch.Tensor,
               spectral_q: torch.Tensor, fb: torch.Tensor, keys: torch.Tensor, spectral: torch.Tensor,
               k: int, weight: float) -> torch.Tensor:
        """This block's spectral queries (``[T, n_mels]`` unit rows), refined once there is data."""
        shapes = _mel_shape(source_env, fb)
        if self.moments is None:
            B = shapes.shape[1]
            self.moments = RunningMoments(torch.zeros(B), torch.ones(B), 0.0, 0.0, self.tau_frames, self.device)
        self.moments.update(shapes, speech)
        X = self._features(shapes)
        sp = speech
        if bool(sp.any()):
            Xs = X[sp]
            dec = self.lam ** int(sp.sum())
            eye = torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
            self.gram = Xs.T @ Xs if self.gram is None else self.gram * dec + Xs.T @ Xs
            q = spectral_q[sp]
            for r in range(self.rounds):
                (found,) = knn_average(joint_keys(content_q[sp], q, weight), keys, [spectral], k, len(q))
                xy = Xs.T @ F.normalize(found, dim=-1).double()
                self.cross[r] = xy if self.cross[r] is None else self.cross[r] * dec + xy
                self.maps[r] = torch.linalg.solve(self.gram + self.ridge * eye, self.cross[r])
                q = F.normalize((Xs @ self.maps[r]).float(), dim=-1)
        if self.moments.count < self.min_frames or self.maps[-1] is None:
            return spectral_q
        return F.normalize((X @ self.maps[-1]).float(), dim=-1)


class StreamMatcher:
    """Content matching of streamed frames against a profile's content frames (see
    :func:`.content.synthesize`; the query bottleneck's mean is a causal running mean)."""

    def __init__(self, params: ContentParams, sample_rate: int, n_fft: int, device="cpu", tau_s: float = 30.0,
                 refine_after_s: float = 6.0):
        self.p, self.sr, self.n_fft, self.device = params, int(sample_rate), int(n_fft), torch.device(device)
        self.tau_frames = tau_s * 200.0  # 5 ms frames
        self.mean = RunningMoments(torch.zeros(cm.BOTTLENECK), torch.ones(cm.BOTTLENECK), 0.0, 0.0,
                                   self.tau_frames, self.device)
        self.refine_after = int(round(refine_after_s * 200.0))  # speech frames (5 ms)
        self.refiner = None
        self.shape_map = None
        self.target = None  # the profile part the keys were built from (held: its id is not reused)

    def set_target(self, ts: dict) -> None:
        """Keys and values of the profile's content part, on this stream's FFT grid (once per target)."""
        if ts is self.target:
            return
        self.target = ts
        t = {k: torch.as_tensor(ts[k]).to(self.device).float() for k in ("content", "log_env", "ap", "phone_states")
             if k in ts}
        sr_t = int(torch.as_tensor(ts["sr"]).reshape(-1)[0])
        n_t = 2 * (t["log_env"].shape[1] - 1)
        R = rebin_hz(sr_t, n_t, self.sr, self.n_fft).to(self.device)
        check_target_phone_states(t, self.p)
        self.keys = _matching_features(t["content"], self.p, t.get("phone_states"))
        self.env, self.ap = t["log_env"] @ R, t["ap"] @ R
        if self.p.spectral_match > 0:
            from .fast import FastParams, mel_matrix
            bands = FastParams()  # the offline content synthesis's band layout
            self.fb, _ = mel_matrix(self.sr, self.n_fft, bands.n_mels, bands.mel_fmax, self.device)
            self.spectral, self.spectral_norm = spectral_keys(self.env, self.fb)
            self.shape_map = (fit_shape_map(self.keys, self.spectral, self.p.content_shape_ridge)
                              if self.p.content_shape > 0 else None)
            self.keys = joint_keys(self.keys, self.spectral, self.p.spectral_match)
            if self.p.refine:  # a map fitted toward another target's frames is no use to this one
                self.refiner = StreamRefiner(self.p.refine, self.p.refine_context, self.p.refine_ridge, self.tau_frames,
                                             self.device, min_frames=self.refine_after)
        self.env = rendered_target_frames(self.env, ts, self.p.adaptive_frames, R)  # after the keys

    def match(self, content: torch.Tensor, mapped: torch.Tensor | None = None, source_env: torch.Tensor | None = None,
              speech: torch.Tensor | None = None, phone_states: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(envelope, aperiodicity) ``[T, F]``: the mean of the ``k`` nearest target frames of
        each frame's content (``[T, 2 * context + 1, D]`` from :meth:`StreamContent.frames`)
        and, with ``spectral_match``, of the source's envelope mapped to the target ``mapped``
        (with ``refine``, that query refined from the source's own envelope ``source_env`` and
        its ``speech`` mask: :class:`StreamRefiner`)."""
        p = self.p
        if p.match_on == "bottleneck":
            centre = content[:, content.shape[1] // 2, :cm.BOTTLENECK]
            self.mean.update(centre, torch.ones(centre.shape[0], dtype=torch.bool, device=centre.device))
            q = content[:, :, :cm.BOTTLENECK] - self.mean.data_mean
        else:
            q = content[:, :, cm.BOTTLENECK:]
        q = F.normalize(q.reshape(q.shape[0], -1), dim=-1)
        if p.phone_states:  # as offline (content._matching_features)
            if phone_states is None:
                raise no_source_phone_states()
            q = with_phone_states(q, phone_states.reshape(phone_states.shape[0], -1), p.phone_states)
        if p.spectral_match > 0:
            if mapped is None:
                raise ValueError("spectral_match needs the mapped source envelope")
            qs = spectral_queries(mapped, self.fb, self.spectral_norm)
            if self.refiner is not None:
                if source_env is None or speech is None:
                    raise ValueError("refine needs the source's own envelope and speech mask")
                qs = self.refiner.refine(source_env, speech, q, qs, self.fb, self.keys, self.spectral,
                                         min(p.k, self.keys.shape[0]), p.spectral_match)
            if self.shape_map is not None:  # as offline (content.synthesize)
                qs = with_content_shape(qs, q, self.shape_map, p.content_shape)
            q = joint_keys(q, qs, p.spectral_match)
        k = min(p.k, self.keys.shape[0])
        idx = (q @ self.keys.T).topk(k, dim=1).indices
        return self.env[idx].mean(1), self.ap[idx].mean(1)
