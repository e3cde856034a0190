"""Content method: trained content features pick the target's own frames; torch vocoder.

analyze(audio, sr, encoder, params)    -> fast analysis (F0, envelope, aperiodicity on a 5 ms
                                          grid) + content features from the trained encoder
target_frames([analysis, ...])         -> the profile part: every target frame's content
                                          features, log envelope and aperiodicity, F0 stats
                                          (and, given the references' waveforms, each
                                          frame's pitch-adaptive envelope too)
prepare_target(target, params, ...)    -> what synthesis needs of a target that no source
                                          changes (float32 frames, matching keys): build once
                                          per profile and pass to synthesize
synthesize(analysis, target, params)   -> the waveform, exactly the source's length

Conversion: for each source frame, the ``k`` target frames nearest in content space
(cosine over a short context of content features, so the chosen frames share the source's
sound *and* its neighbourhood; optionally also in spectral shape, the source's envelope
mapped to the target's statistics against the target's own frames, ``spectral_match``) give
the envelope and aperiodicity (``refine``: the spectral queries first refined by a linear map
of the source's spectra fitted to the frames they found, :func:`refined_queries`); the
source's frame energy and voicing are kept; log-F0 is mapped to the target's statistics (``matched_pitch``:
its shape moved first toward the matched frames' own pitch, :func:`matched_pitch_contour`). Content features are
speaker-independent, so the frames chosen say what the source said, in the target's voice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import adaptive_envelope, fast
from .. import content_model as cm
from ..errors import VoiceInputError


@dataclass
class ContentParams:
    k: int = 4                      # target frames averaged per source frame
    match_on: str = "bottleneck"    # "bottleneck" (64-d) or "posteriors" (log phone-state posteriors)
    context: int = 1                # +-context content frames (10 ms) concatenated for matching
    blend: float = 1.0              # weight of the matched envelope vs the statistics-mapped source's
    replace: float = 1.0            # weight of the replaced envelope vs the content-shifted source's
    shift_k: int = 16               # frames averaged on each side for the content-conditional shift
    keep_energy: float = 1.0        # how much of the source's frame-energy contour is kept
    smooth: int = 1                 # +-frames of temporal smoothing of the matched envelope (5 ms grid)
    target_ap: bool = True          # aperiodicity from the matched target frames (else the source's)
    spectral_match: float = 0.0     # weight of the spectral match beside the content match (the
                                    # source's envelope mapped to the target's statistics, against
                                    # the target's frames)
    refine: int = 0                 # rounds of refining the spectral query by a linear map of the
                                    # source's shapes fitted to its own matches (see refined_queries)
    refine_context: int = 2         # +-frames (5 ms) of the source's shape that map feeds on
    refine_ridge: float = 100.0     # ridge penalty of that fit
    phone_states: float = 0.0       # weight of pocketsphinx's phone-state posteriors in the content
                                    # match, beside the encoder's features (0: the encoder's alone)
    phone_state_context: int = 2    # +-content frames (10 ms) of those posteriors matched
    matched_pitch: float = 0.0      # weight of the matched target frames' pitch (standardised log-F0)
                                    # in the output's contour shape (0: the source's mapped contour)
    matched_pitch_smooth: int = 10  # +-frames (5 ms) over which that matched pitch is smoothed
    match_rank: int = 0             # match in the target keys' top principal directions (0: all)
    blend_high: float | None = None # weight of the matched envelope above the split (None: blend)
    blend_split_hz: float = 3000.0  # centre of the 1 kHz-wide ramp from blend to blend_high
    postfilter: float = 0.0         # > 0: cepstral formant emphasis of the output envelope (see postfilter)
    content_shape: float = 0.0      # weight, in the spectral query, of the target's shape predicted from
                                    # the source's content (see content_shape_queries)
    content_shape_ridge: float = 3.0   # ridge penalty of that prediction's fit
    f0_quantile: float = 0.0        # weight of the target's own log-F0 distribution in the output's
                                    # contour (see quantile_mapped_f0; 0: mean and spread alone)
    adaptive_frames: float = 0.0    # weight of the target's pitch-adaptive envelope in what its voiced
                                    # frames render (see rendered_frames; found on the cepstral one still)
    chunk: int = 2048               # source frames per distance block (bounds memory)
    device: str = "cpu"


def content_frame_index(frames: torch.Tensor, hop: int, sr: int) -> torch.Tensor:
    """The 10 ms content frame nearest in time to each analysis frame (frame ``i`` is at
    ``i * hop / sr`` s; at 16 kHz, ``round(i / 2)``)."""
    return torch.round(frames.double() * (hop * 100.0 / sr)).long()


def _on_grid(feats: torch.Tensor, n_frames: int, hop: int, sr: int) -> torch.Tensor:
    """Rows of 10 ms ``feats`` at the analysis grid's ``n_frames`` frames (``hop`` samples apart
    at ``sr``): each frame takes the nearest 10 ms row."""
    idx = content_frame_index(torch.arange(n_frames, device=feats.device), hop, sr).clamp(max=feats.shape[0] - 1)
    return feats[idx]


def content_features(encoder, frontend, audio16: torch.Tensor, sr: int, n_frames: int, hop: int) -> torch.Tensor:
    """Encoder outputs of 16 kHz audio on the analysis grid (``n_frames`` frames ``hop`` samples
    apart at ``sr``): ``(n_frames, 64 + N_CLASSES)`` (bottleneck, log-posteriors)."""
    with torch.no_grad():
        mel = frontend(audio16, cm.SAMPLE_RATE)
        logits, z = encoder(mel[None])
        feats = torch.cat([z[0], torch.log_softmax(logits[0], -1)], -1)  # (T10, D)
    return _on_grid(feats, n_frames, hop, sr)


def phone_state_features(model, audio16: torch.Tensor, sr: int, n_frames: int, hop: int) -> torch.Tensor:
    """pocketsphinx's phone-state posteriors (:mod:`..phone_states`) of 16 kHz audio on the
    analysis grid: ``(n_frames, 126)``."""
    with torch.no_grad():
        return _on_grid(model(audio16), n_frames, hop, sr)


@torch.no_grad()
def analyze(audio, sr: int, encoder, frontend, params: "fast.FastParams",
            resources: "fast.FastResources | None" = None, phone_states=None) -> dict:
    """The fast method's analysis plus ``content`` ``(T, 64 + N_CLASSES)`` on the same grid,
    and ``phone_states`` ``(T, 126)`` when a :class:`..phone_states.PhoneStates` model is given
    (both from the same 16 kHz copy of the audio)."""
    a = fast.analyze(audio, sr, params, resources)
    x = fast._as_tensor(audio, torch.device(params.device)).float().reshape(-1)
    # the encoder and pocketsphinx's model both take 16 kHz (phone_states.SAMPLE_RATE)
    x16 = frontend.resampler(x, int(sr), cm.SAMPLE_RATE) if sr != cm.SAMPLE_RATE else x
    n, hop, dev = a["log_env"].shape[0], params.hop(sr), a["log_env"].device
    a["content"] = content_features(encoder, frontend, x16, sr, n, hop).to(dev)
    a["encoder"] = encoder_identity(encoder)
    if phone_states is not None:
        a["phone_states"] = phone_state_features(phone_states, x16, sr, n, hop).to(dev)
    return a


def encoder_identity(encoder) -> np.ndarray:
    """The encoder's identity as profiles store it (uint8[8]; zeros for a model that was not
    loaded from weights, as in tests)."""
    return np.frombuffer(getattr(encoder, "identity", bytes(8)), np.uint8).copy()


def target_frames(analyses: list[dict], waveforms: list[torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """The content method's part of a profile (npz-safe arrays). With ``waveforms`` (each
    analysis's audio, at its rate) also ``adaptive_log_env``: every frame's pitch-adaptive
    envelope (:func:`frame_adaptive_envelope`), which conversions may render in place of the
    cepstral one."""
    cat = lambda key: torch.cat([a[key].float().cpu() for a in analyses])
    out = fast.target_stats(analyses)
    ids = {bytes(a["encoder"]) for a in analyses}
    if len(ids) != 1:
        raise ValueError("the reference analyses were made by different content encoders")
    out["encoder"] = np.asarray(analyses[0]["encoder"], np.uint8)
    out["content"] = cat("content").numpy().astype(np.float16)
    out["log_env"] = cat("log_env").numpy().astype(np.float16)
    out["ap"] = cat("ap").numpy().astype(np.float16)
    if waveforms is not None:
        out["adaptive_log_env"] = torch.cat([frame_adaptive_envelope(a, x).cpu() for a, x in zip(analyses, waveforms)]
                                            ).numpy().astype(np.float16)
    out["voiced"] = torch.cat([a["voiced"].cpu() for a in analyses]).numpy()
    out["frame_lf0"] = torch.cat([frame_log_f0(a["f0"].float().cpu(), a["voiced"].cpu()) for a in analyses]).numpy()
    out["sr"] = np.array([int(analyses[0]["sr"])], np.int32)
    if all("phone_states" in a for a in analyses):
        out["phone_states"] = cat("phone_states").numpy().astype(np.float16)
    return out


def frame_adaptive_envelope(analysis: dict, audio: torch.Tensor) -> torch.Tensor:
    """The pitch-adaptive envelope (:mod:`.adaptive_envelope`, CheapTrick's recipe) of the audio
    an analysis was made of, on its frame grid, with its F0: ``[T, F]`` like its ``log_env``."""
    env, sr = analysis["log_env"], int(analysis["sr"])
    n_fft = 2 * (env.shape[1] - 1)
    hop = fast.FastParams().hop(sr)
    out = adaptive_envelope.envelope(audio.to(env.device).float().reshape(-1), analysis["f0"].float(), sr, n_fft, hop)
    if out.shape != env.shape:
        raise ValueError(f"the adaptive envelope's grid {tuple(out.shape)} is not the analysis's {tuple(env.shape)}")
    return out


def rendered_frames(log_env: torch.Tensor, adaptive_log_env: torch.Tensor, voiced: torch.Tensor,
                    weight: float) -> torch.Tensor:
    """The envelopes a target's frames render when matched: in voiced frames ``weight`` of the
    way (in log) from the cepstral envelope to the pitch-adaptive one, the latter first given
    the cepstral one's energy frame by frame (their windows are normalised differently); the
    unvoiced frames' cepstral envelope as it is (the adaptive one's few-millisecond window over
    noise loses words). The frames are still found on the cepstral envelope's keys: the
    adaptive one changes what the matched frames sound like, not which are matched."""
    w = weight * voiced.to(log_env.dtype)[:, None]
    return log_env + w * (with_energy_of(log_env, adaptive_log_env) - log_env)


def rendered_target_frames(log_env: torch.Tensor, target: dict, weight: float,
                           rebin: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`rendered_frames` of a profile's content part ``target``, whose cepstral envelopes
    are ``log_env`` (already on the synthesis grid; ``rebin`` the matrix that put them there, if
    any): ``log_env`` itself when ``weight`` is 0 or the profile has no ``adaptive_log_env``.
    Offline and streamed alike, after the matching keys are built."""
    if weight <= 0 or target.get("adaptive_log_env") is None:
        return log_env
    dev = log_env.device
    adaptive = torch.from_numpy(np.ascontiguousarray(target["adaptive_log_env"])).to(dev).float()
    if rebin is not None:
        adaptive = adaptive @ rebin
    voiced = torch.from_numpy(np.asarray(target["voiced"], bool)).to(dev)
    return rendered_frames(log_env, adaptive, voiced, weight)


def frame_log_f0(f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Each frame's natural-log F0, 0 where unvoiced (the profile's ``frame_lf0``)."""
    return torch.where(voiced, torch.log(f0.clamp_min(1.0)), torch.zeros_like(f0)).float()


def target_pitch(frame_lf0: np.ndarray, lf0_mean: float, lf0_std: float, device) -> torch.Tensor:
    """[N, 2]: each target frame's log-F0 standardised by the target's statistics (0 where
    unvoiced) and whether it is voiced: averaged over the matched frames, the pair gives the
    mean standardised pitch of the voiced ones (:func:`matched_pitch_contour`)."""
    lf = torch.from_numpy(np.asarray(frame_lf0, np.float32)).to(device)
    voiced = lf > 0
    z = torch.where(voiced, (lf - lf0_mean) / lf0_std, torch.zeros_like(lf))
    return torch.stack([z, voiced.float()], -1)


def quantile_mapped_f0(f0: torch.Tensor, voiced: torch.Tensor, target_lf0_sorted: torch.Tensor,
                       lf0_mean: float, lf0_std: float, weight: float) -> torch.Tensor | None:
    """The source's F0 contour (Hz, 0 where unvoiced) mapped to the target's pitch: each voiced
    frame's log-F0 ``weight`` of the way from its mean-and-spread mapping (the source's contour
    standardised and given the target's ``lf0_mean`` and ``lf0_std``, as the synthesis maps any
    contour) to the target's own log-F0 at the same rank among the voiced frames (quantile
    mapping: the target's range and the shape of its distribution, skew and all, where the
    mean-and-spread mapping keeps the source's). The contour's movement stays the source's: a
    frame's rank is. None with fewer than two voiced frames on either side (nothing to rank)."""
    n = int(voiced.sum())
    if n < 2 or target_lf0_sorted.numel() < 2:
        return None
    lf = torch.log(f0.float().clamp_min(1.0))
    by_spread = fast.mean_spread_mapped_log_f0(lf, voiced, lf0_mean, lf0_std)
    rank = lf[voiced].argsort().argsort().float()
    by_rank = torch.zeros_like(lf)
    by_rank[voiced] = fast.log_f0_at_quantiles(target_lf0_sorted, (rank + 0.5) / n)
    out = (1 - weight) * by_spread + weight * by_rank
    return torch.where(voiced, torch.exp(out), torch.zeros_like(out)).to(f0.dtype)


def matched_pitch_contour(f0: torch.Tensor, voiced: torch.Tensor, matched: torch.Tensor,
                          params: ContentParams) -> torch.Tensor:
    """The source's F0 contour with its shape moved toward the pitch of the target frames
    matched to it (``matched``: :func:`target_pitch` averaged over each frame's matches), in the
    source's own statistics: standardised log-F0 ``(1 - w) z_source + w z_matched``, the matched
    part smoothed over +-``matched_pitch_smooth`` voiced frames. Unvoiced frames, and voiced
    frames none of whose matches is voiced, keep the source's; the synthesis then maps the
    contour to the target's mean and spread as it maps any other."""
    if int(voiced.sum()) < 2:
        return f0
    lf = torch.log(f0.float().clamp_min(1.0))
    mu, sd = fast.contour_stats(lf, voiced)
    z_src = torch.where(voiced, (lf - mu) / sd, torch.zeros_like(lf))
    share = matched[:, 1]
    z_m = torch.where(share > 0, matched[:, 0] / share.clamp_min(1e-6), z_src)
    if params.matched_pitch_smooth:
        r = params.matched_pitch_smooth
        pool = lambda x: F.avg_pool1d(x[None, None], 2 * r + 1, 1, r, count_include_pad=False)[0, 0]
        v = voiced.float()
        z_m = pool(z_m * v) / pool(v).clamp_min(1e-6)
    z = (1 - params.matched_pitch) * z_src + params.matched_pitch * z_m
    return torch.where(voiced, torch.exp(mu + sd * z), f0.float()).to(f0.dtype)


def band_blend(n_bins: int, sr: int, blend: float, blend_high: float, split_hz: float, device) -> torch.Tensor:
    """[n_bins]: the matched envelope's weight per FFT bin: ``blend`` below ``split_hz`` - 500 Hz,
    ``blend_high`` above ``split_hz`` + 500 Hz, linear between (no step in the spectrum)."""
    hz = torch.arange(n_bins, device=device, dtype=torch.float32) * sr / (2 * (n_bins - 1))
    ramp = ((hz - split_hz + 500.0) / 1000.0).clamp(0.0, 1.0)
    return blend + (blend_high - blend) * ramp


def postfilter(log_env: torch.Tensor, beta: float, lo: int = 2) -> torch.Tensor:
    """Cepstral formant emphasis of log-amplitude envelopes ``[T, F]``: quefrencies from ``lo``
    samples on scaled by ``1 + beta`` (peaks raised and valleys deepened about the frame's smooth
    tilt), the frame's energy kept. Averaging matched frames flattens their formants; this undoes
    part of it (as the quality preset's ``postfilter`` does for its WORLD envelopes).

    Every quefrency but the lowest ``lo`` is scaled alike, so no FFT is needed: the output is
    ``(1 + beta)`` times the envelope less ``beta`` times its part at quefrencies below ``lo``."""
    n_bins = log_env.shape[1]
    n = 2 * (n_bins - 1)
    k = torch.arange(n_bins, device=log_env.device, dtype=torch.float32)
    cos = torch.cos(2 * torch.pi * k[:, None] * torch.arange(lo, device=log_env.device) / n)  # [F, lo]
    fold = torch.full((n_bins,), 2.0, dtype=torch.float32, device=log_env.device)
    fold[0] = fold[-1] = 1.0                  # bins counted once on the full (symmetric) circle
    x = log_env.float()
    c = (x * fold) @ cos / n                  # [T, lo]: the lowest cepstral coefficients
    scale = torch.full((lo,), 2.0, dtype=torch.float32, device=log_env.device)
    scale[0] = 1.0                            # c_q and c_(n-q) alike, q >= 1
    low = (c * scale) @ cos.T                 # [T, F]: the envelope's part below quefrency lo
    return with_energy_of(x, (1 + beta) * x - beta * low).to(log_env.dtype)


def with_energy_of(reference: torch.Tensor, log_env: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Log-amplitude envelopes ``[T, F]`` shifted per frame so that their energy moves ``weight``
    of the way to ``reference``'s (1: the same energy as ``reference``, frame by frame)."""
    e_ref = 0.5 * torch.logsumexp(2 * reference, 1, keepdim=True)
    e_env = 0.5 * torch.logsumexp(2 * log_env, 1, keepdim=True)
    return log_env + weight * (e_ref - e_env)


def output_envelope(matched: torch.Tensor, mapped: torch.Tensor | None, source_env: torch.Tensor,
                    params: ContentParams, sr: int) -> torch.Tensor:
    """The envelope rendered, from the matched target frames' ``matched``: blended with the
    source's envelope mapped to the target's statistics ``mapped`` (``blend``, or by frequency
    with ``blend_high``: :func:`band_blend`), its formants emphasised (``postfilter``), and the
    source's frame energy ``source_env``'s kept (``keep_energy``). Offline and streamed alike."""
    out = matched
    if params.blend_high is not None:
        w = band_blend(out.shape[1], sr, params.blend, params.blend_high, params.blend_split_hz, out.device)
        out = w * out + (1 - w) * mapped
    elif params.blend < 1.0:
        out = params.blend * out + (1 - params.blend) * mapped
    if params.postfilter > 0:
        out = postfilter(out, params.postfilter)
    if params.keep_energy:
        out = with_energy_of(source_env, out, params.keep_energy)
    return out


def rebin_hz(sr_from: int, n_from: int, sr_to: int, n_to: int) -> torch.Tensor:
    """``[n_from//2+1, n_to//2+1]``: linear interpolation of a spectrum between FFT grids by
    frequency (constant beyond the source grid's Nyquist)."""
    f_to = torch.arange(n_to // 2 + 1, dtype=torch.float32) * (sr_to / n_to)
    pos = (f_to / (sr_from / n_from)).clamp(0, n_from // 2)
    i0 = pos.floor().long().clamp(0, n_from // 2)
    i1 = (i0 + 1).clamp(max=n_from // 2)
    w = pos - i0.float()
    R = torch.zeros(n_from // 2 + 1, n_to // 2 + 1)
    cols = torch.arange(n_to // 2 + 1)
    R[i0, cols] += 1 - w
    R[i1, cols] += w
    return R


def with_context(z: torch.Tensor, context: int, step: int = 1) -> torch.Tensor:
    """Each row of ``z`` beside its ``context`` neighbours each side, ``step`` rows apart (the
    first and last rows repeated at the edges): ``[T, (2 * context + 1) * D]``."""
    T = z.shape[0]
    return torch.cat([z[torch.clamp(torch.arange(T, device=z.device) + step * d, 0, T - 1)]
                      for d in range(-context, context + 1)], -1)


def _matching_features(content: torch.Tensor, p: ContentParams, phone_states: torch.Tensor | None = None) -> torch.Tensor:
    """Unit content vectors: the encoder's features over a context, and with ``p.phone_states``
    > 0 pocketsphinx's phone-state posteriors beside them (square roots, so that the cosine of
    two frames is the Bhattacharyya overlap of their posteriors), each part weighted."""
    f = content[:, :cm.BOTTLENECK] if p.match_on == "bottleneck" else content[:, cm.BOTTLENECK:]
    f = f - f.mean(0, keepdim=True) if p.match_on == "bottleneck" else f
    if p.context:
        f = with_context(f, p.context, step=2)  # 2 x 5 ms = one content frame
    f = F.normalize(f.float(), dim=-1)
    if not p.phone_states:
        return f
    if phone_states is None:
        raise no_source_phone_states()
    return with_phone_states(f, with_context(phone_states, p.phone_state_context, step=2), p.phone_states)


def with_phone_states(content_keys: torch.Tensor, posteriors: torch.Tensor, weight: float) -> torch.Tensor:
    """Unit content vectors ``[T, D]`` beside the square roots of phone-state posteriors (their
    context side by side, ``[T, (2c + 1) * 126]``; the cosine of two frames is then the
    Bhattacharyya overlap of their posteriors), the posteriors weighted ``weight``."""
    g = F.normalize(posteriors.float().clamp_min(0).sqrt(), dim=-1)
    return torch.cat([weight ** 0.5 * g, (1 - weight) ** 0.5 * content_keys], -1)


def no_source_phone_states() -> VoiceInputError:
    """The error for a source analysed without the phone states that the match is set to use."""
    return VoiceInputError(
        "the content match is set to use phone-state posteriors (phone_states > 0), and the source's content "
        "features have none: turn on the features stage's phone_states (content-features, or "
        "content-stream-features in a stream), or set the synthesis stage's phone_states to 0")


def check_target_phone_states(target, params: ContentParams) -> None:
    """:class:`VoiceInputError` when ``params`` match on phone states and the profile's content
    part (arrays by name) has none: it was enrolled before they existed."""
    if params.phone_states and "phone_states" not in target:
        raise VoiceInputError("this profile's content part has no phone-state posteriors (it was enrolled by an "
                              "earlier vcgraph), and the content match is set to use them: enrol the voice again "
                              "(vcgraph enroll REF.wav ... -o voice.vcp), or set phone_states to 0")


def _mel_shape(env: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    m = fast.log_mel(env, fb)
    return m - m.mean(1, keepdim=True)  # the frame's level removed


def spectral_keys(target_env: torch.Tensor, fb: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """Unit log-mel shape vectors of the target's frames (level removed, each band
    standardised over those frames) and the standardisation, for :func:`spectral_queries`."""
    ks = _mel_shape(target_env, fb)
    norm = (ks.mean(0), ks.std(0).clamp_min(1e-3))
    return F.normalize((ks - norm[0]) / norm[1], dim=-1), norm


def spectral_queries(mapped_env: torch.Tensor, fb: torch.Tensor, norm: tuple) -> torch.Tensor:
    """The same vectors of the source's envelope mapped to the target's statistics: comparable
    with the target's, since both are in the target's spectral space."""
    return F.normalize((_mel_shape(mapped_env, fb) - norm[0]) / norm[1], dim=-1)


def joint_keys(content_keys: torch.Tensor, spectral: torch.Tensor, weight: float) -> torch.Tensor:
    """Content and spectral unit vectors side by side, so that their dot product is the
    ``weight``-ed mix of the two cosines."""
    return torch.cat([(1 - weight) ** 0.5 * content_keys, weight ** 0.5 * spectral], -1)


def knn_average(query: torch.Tensor, keys: torch.Tensor, values: list[torch.Tensor], k: int,
                chunk: int) -> list[torch.Tensor]:
    """Mean of ``values`` rows at the ``k`` keys of highest cosine similarity to each query."""
    outs = [[] for _ in values]
    k = min(k, keys.shape[0])
    for a in range(0, query.shape[0], chunk):
        sim = query[a:a + chunk] @ keys.T
        idx = sim.topk(k, dim=1).indices
        for o, v in zip(outs, values):
            o.append(v[idx].mean(1))
    return [torch.cat(o) for o in outs]


@dataclass(frozen=True)
class PreparedTarget:
    """A target's frames as float32 tensors and its matching keys: what synthesis needs of a
    target that no source changes (from :func:`prepare_target`)."""

    log_env: torch.Tensor                 # [N, F] what each frame renders (rendered_frames)
    ap: torch.Tensor                      # [N, F]
    keys: torch.Tensor                    # [N, D] unit content keys
    match_keys: torch.Tensor              # the keys matched against: content, or content + spectral
    spectral_norm: tuple | None           # the spectral standardisation (None: no spectral match)
    spectral: torch.Tensor | None = None  # [N, n_mels] unit spectral keys (None: no spectral match)
    pitch: torch.Tensor | None = None     # [N, 2] standardised log-F0 and voicing (None: the profile
                                          # has no frame_lf0, or matched_pitch is 0)
    basis: torch.Tensor | None = None     # [D, match_rank] the keys' top principal directions, which
                                          # match_keys are expressed in (None: the keys as they are)
    shape_map: torch.Tensor | None = None # [D + 1, n_mels] the target's content keys -> its own spectral
                                          # keys (None: content_shape is 0)
    lf0_sorted: torch.Tensor | None = None  # [V] the target's voiced frames' log-F0, ascending (None:
                                            # f0_quantile is 0, or the profile has no frame_lf0)

    def project(self, queries: torch.Tensor) -> torch.Tensor:
        """Queries in the space ``match_keys`` are expressed in."""
        return queries if self.basis is None else queries @ self.basis

    @staticmethod
    def settings(params: ContentParams, fast_params: "fast.FastParams", sr: int, device) -> tuple:
        """The settings a prepared target depends on (equal settings: the same preparation)."""
        return (str(torch.device(device)), params.match_on, params.context, params.spectral_match, int(sr),
                fast_params.fft_size(int(sr)), fast_params.n_mels, fast_params.mel_fmax, params.phone_states,
                params.phone_state_context, params.matched_pitch > 0, params.match_rank,
                params.content_shape > 0,
                params.content_shape_ridge if params.content_shape > 0 else None,  # no map fitted when off
                params.f0_quantile > 0, params.adaptive_frames)


def _spectral_fb(sr: int, fast_params: "fast.FastParams", dev, resources) -> torch.Tensor:
    fb, _ = (resources or fast.FastResources()).mel(sr, fast_params.fft_size(sr), fast_params.n_mels,
                                                     fast_params.mel_fmax, dev)
    return fb


@torch.no_grad()
def prepare_target(target: dict, params: ContentParams, fast_params: "fast.FastParams", sr: int, device,
                   resources: "fast.FastResources | None" = None) -> PreparedTarget:
    """A target's part of the work on ``device``, done once per profile instead of once per
    conversion."""
    dev = torch.device(device)
    # float16 in the profile; torch widens it about 3x faster than numpy does (exactly, either way)
    t = {k: torch.from_numpy(np.ascontiguousarray(target[k])).to(dev).float()
         for k in ("content", "log_env", "ap", "phone_states") if k in target}
    sr_t, n_t = int(np.asarray(target["sr"]).reshape(-1)[0]), 2 * (t["log_env"].shape[1] - 1)
    n_s = fast_params.fft_size(sr)
    R = None
    if (sr_t, n_t) != (sr, n_s):  # enrolled at another rate: the target's spectra onto this grid, by frequency
        R = rebin_hz(sr_t, n_t, sr, n_s).to(dev)
        t["log_env"], t["ap"] = t["log_env"] @ R, t["ap"] @ R
    check_target_phone_states(t, params)
    keys = _matching_features(t["content"], params, t.get("phone_states"))
    match_keys, norm, ks = keys, None, None
    if params.spectral_match > 0:
        ks, norm = spectral_keys(t["log_env"], _spectral_fb(sr, fast_params, dev, resources))
        match_keys = joint_keys(keys, ks, params.spectral_match)
    pitch = (target_pitch(target["frame_lf0"], float(target["lf0_mean"][0]), float(target["lf0_std"][0]), dev)
             if params.matched_pitch > 0 and target.get("frame_lf0") is not None else None)
    basis = principal_directions(match_keys, params.match_rank)
    if basis is not None:
        match_keys = match_keys @ basis
    shape_map = (fit_shape_map(keys, ks, params.content_shape_ridge)
                 if params.content_shape > 0 and ks is not None else None)
    lf0_sorted = (fast.sorted_voiced_log_f0(target["frame_lf0"], dev)
                  if params.f0_quantile > 0 and target.get("frame_lf0") is not None else None)
    rendered = rendered_target_frames(t["log_env"], target, params.adaptive_frames, R)  # after the keys
    return PreparedTarget(rendered, t["ap"], keys, match_keys, norm, ks, pitch, basis, shape_map, lf0_sorted)


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    """``x`` [T, D] with a column of ones after it: the intercept of the ridge maps here."""
    return torch.cat([x, torch.ones_like(x[:, :1])], 1)


def fit_shape_map(keys: torch.Tensor, spectral: torch.Tensor, ridge: float) -> torch.Tensor:
    """[D + 1, n_mels]: a ridge map from a target's content keys to its own unit spectral keys,
    fitted on all its frames (:func:`content_shape_queries`)."""
    X = _with_bias(keys).double()
    gram = X.T @ X + ridge * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    return torch.linalg.solve(gram, X.T @ spectral.double()).float()


def content_shape_queries(content_q: torch.Tensor, shape_map: torch.Tensor) -> torch.Tensor:
    """Spectral queries from the source's content alone: the shape the target's own frames of
    this content have, as the target's map from its content keys to its spectra predicts it.
    The content features are nearly speaker-independent, so the map learned on the target's
    frames carries over to the source's; as a query its regression toward the mean matters
    less than in a rendering, since only the nearest frames have to be the right ones."""
    return F.normalize(_with_bias(content_q) @ shape_map, dim=-1)


def with_content_shape(spectral_q: torch.Tensor, content_q: torch.Tensor, shape_map: torch.Tensor,
                       weight: float) -> torch.Tensor:
    """Spectral queries ``weight`` of them :func:`content_shape_queries`, the rest ``spectral_q``
    (unit rows, summed and normalised); offline and streamed alike."""
    return F.normalize(weight * content_shape_queries(content_q, shape_map) + (1 - weight) * spectral_q, dim=-1)


def principal_directions(keys: torch.Tensor, rank: int) -> torch.Tensor | None:
    """[D, rank]: the ``rank`` directions that hold most of ``keys``' energy (the eigenvectors of
    their Gram matrix), or None when ``rank`` is 0 or not below D. Keys and queries projected
    onto them keep almost every inner product (the keys hardly reach outside them) at a fraction
    of the matching's cost: the content keys of a few hundred phone-state and bottleneck
    dimensions over a context are highly redundant."""
    if not rank or rank >= keys.shape[1]:
        return None
    _, vectors = torch.linalg.eigh((keys.T @ keys).double())
    return vectors[:, -rank:].float().contiguous()


def refined_queries(env_s: torch.Tensor, speech: torch.Tensor, content_q: torch.Tensor, spectral_q: torch.Tensor,
                    pt: PreparedTarget, fb: torch.Tensor, params: ContentParams) -> torch.Tensor:
    """Spectral queries refined without parallel data, after INCA (Erro et al., 2010): the
    source's own standardised log-mel shapes (+-``refine_context`` frames) are mapped linearly
    (ridge regression) onto the mean shape of the target frames its current queries find; the
    mapped shapes are the next queries; ``refine`` rounds. One map per utterance: it learns how
    this source's spectra sit in the target's space from the matches as a whole, so a frame whose
    own match was wrong is pulled toward where frames like it matched."""
    m = _mel_shape(env_s, fb)
    sp = speech if int(speech.sum()) >= 8 else torch.ones_like(speech)
    z = (m - m[sp].mean(0)) / m[sp].std(0).clamp_min(1e-3)  # speaker-normalised over this utterance
    X = _with_bias(with_context(z, params.refine_context)).double()
    Xs = X[sp]
    gram = Xs.T @ Xs + params.refine_ridge * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    q = spectral_q
    for _ in range(params.refine):
        joint = joint_keys(content_q[sp], q[sp], params.spectral_match)
        (found,) = knn_average(pt.project(joint), pt.match_keys, [pt.spectral], params.k, params.chunk)
        W = torch.linalg.solve(gram, Xs.T @ F.normalize(found, dim=-1).double())
        q = F.normalize((X @ W).float(), dim=-1)
    return q


@torch.no_grad()
def synthesize(features: dict, target: dict, params: ContentParams, fast_params: "fast.FastParams",
               pitch_shift_semitones: float = 0.0, resources: "fast.FastResources | None" = None,
               prepared: PreparedTarget | None = None) -> torch.Tensor:
    """The converted waveform: matched envelope and aperiodicity, mapped F0, torch vocoder.

    ``prepared``: :func:`prepare_target` of this ``target`` with these settings (built here if
    not given)."""
    dev = features["log_env"].device
    sr = int(features["sr"])
    env_s, ap_s = features["log_env"], features["ap"]
    pt = prepared or prepare_target(target, params, fast_params, sr, dev, resources)
    q = _matching_features(features["content"], params, features.get("phone_states"))
    # the fast method's mapping of the source's envelope: matched on and/or blended in
    mapped = (fast.mapped_envelope(features, target, fast_params, resources)[0]
              if params.spectral_match > 0 or params.blend < 1.0 or params.blend_high is not None else None)
    qm, km = q, pt.match_keys
    if params.spectral_match > 0:
        fb = _spectral_fb(sr, fast_params, dev, resources)
        qs = spectral_queries(mapped, fb, pt.spectral_norm)
        if params.refine:
            qs = refined_queries(env_s, features["speech"], q, qs, pt, fb, params)
        if pt.shape_map is not None:
            qs = with_content_shape(qs, q, pt.shape_map, params.content_shape)
        qm = joint_keys(q, qs, params.spectral_match)
    values = [pt.log_env, pt.ap]
    follow_pitch = params.matched_pitch > 0 and pt.pitch is not None
    if follow_pitch:
        values.append(pt.pitch)
    env_m, ap_m, *pitch_m = knn_average(pt.project(qm), km, values, params.k, params.chunk)
    if follow_pitch:
        features = dict(features, f0=matched_pitch_contour(features["f0"], features["voiced"], pitch_m[0], params))
    if params.smooth:
        w = 2 * params.smooth + 1
        env_m = F.avg_pool1d(env_m.T[None], w, 1, params.smooth, count_include_pad=False)[0].T
    if params.replace < 1.0:
        # keep the source's own dynamics: shift each source frame by how the target's frames of
        # this content differ from the source's own frames of the same content
        (t_mean,) = knn_average(q, pt.keys, [pt.log_env], params.shift_k, params.chunk)
        (s_mean,) = knn_average(q, q, [env_s], params.shift_k, params.chunk)
        shifted = env_s + (t_mean - s_mean)
        env_m = params.replace * env_m + (1 - params.replace) * shifted
    env_m = output_envelope(env_m, mapped, env_s, params, sr)
    ap = ap_m if params.target_ap else ap_s
    feats = dict(features, log_env=env_m, ap=ap)
    pitch_stats = {k: v for k, v in target.items() if k.startswith("lf0")}
    if pt.lf0_sorted is not None:
        f0 = quantile_mapped_f0(features["f0"], features["voiced"], pt.lf0_sorted,
                                float(target["lf0_mean"][0]), float(target["lf0_std"][0]), params.f0_quantile)
        if f0 is not None:  # already in the target's pitch: the synthesis maps it no further
            feats["f0"], pitch_stats = f0, {}
    return fast.synthesize(feats, pitch_stats, fast_params, pitch_shift_semitones, resources)
