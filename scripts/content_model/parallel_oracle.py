#!/usr/bin/env python3
"""The ceiling of frame replacement: the target's *own reading of the same sentence* as the frames.

The content preset replaces each source frame's envelope by target frames found by content.
Is it the finding that loses words, or the replacing? The dev voices all read the same
sentences, so here the target frames come from an oracle: the target's reading of the very
sentence, aligned to the source by DTW (speaker-normalised log-mel, cosine). Each source frame
takes the envelope and aperiodicity of its aligned target frames; the source keeps its timing,
frame energy and voicing, and its log-F0 is mapped to the target's statistics (utterances 1-8),
as in the content preset (fast analysis and HNM vocoder at 22.05 kHz). Variants:

  fast        no replacement: the fast method's statistics mapping (cepstral envelope)
  oracle      the aligned target frames (blend 1)
  oracle_0.8  80 % aligned target frames, 20 % the fast mapping (the content preset's blend)
  oracle_f0   the aligned frames and the aligned target's F0 contour where both are voiced
  pool        the frames a perfect query finds among the target's *enrolled* frames (utterances
              1-8, as a profile holds them): each aligned oracle frame's 4 nearest enrolled
              frames by log-mel shape (level removed, bands standardised; cosine), averaged
  pool_ctx    the same, the shapes of +-2 frames (+-10 ms) side by side

vc_score's pairs, utterances 9-12 (the target's reading of them is in neither its enrolment
nor the judges' centroids, 17-24) and judges.

    python scripts/content_model/parallel_oracle.py           # ~4 min on 2 cores

``--agreement`` scores *queries* instead, in seconds and without judges: for each source frame
(speech frames only), the 4 enrolled target frames a query finds, averaged, against the oracle
frame's log-mel shape (cosine, in the target's standardised shape space), and how often the
query's 4 share a frame with the oracle query's 4. Queries: the content preset's own
(``preset``: content vector, half the encoder's bottleneck and half pocketsphinx's phone-state
posteriors, + statistics-mapped spectrum, ``spectral_match`` 0.6, the spectral part refined
twice and then half of it the target's shape predicted from the content, ``content_shape``;
``preset_content_shape0``: the preset's before that, until 2026-12-07; ``no_phone_states``:
that with the bottleneck alone; ``unrefined``: that before refinement; ``content+phone_states``:
the preset's content vector alone), the content vector alone (``content``), the mapped spectrum alone (``spectrum``), and the oracle's shape
itself (``oracle``: the upper bound). A better query for the preset should raise these first.

    python scripts/content_model/parallel_oracle.py --agreement    # ~1 min
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "tools"))
sys.path.insert(0, os.path.join(HERE, ".."))  # scripts/: dev_judges
SR = 22050
VARIANTS = ("fast", "oracle", "oracle_0.8", "oracle_f0", "pool", "pool_ctx")


def load(path: str) -> np.ndarray:
    import librosa
    x, sr = sf.read(path, dtype="float32")
    return librosa.resample(x, orig_sr=sr, target_sr=SR) if sr != SR else x


def alignment(src: dict, tgt: dict) -> list[np.ndarray]:
    """For each source frame, the indices of the target frames DTW aligns to it."""
    import librosa

    def norm(m):
        m = m.float().cpu().numpy()
        return ((m - m.mean(0)) / (m.std(0) + 1e-3)).T  # [bands, T], speaker-normalised
    _, wp = librosa.sequence.dtw(norm(src["log_mel"]), norm(tgt["log_mel"]), metric="cosine")
    match = [[] for _ in range(src["log_mel"].shape[0])]
    for i, j in wp:
        match[i].append(j)
    return [np.asarray(m) for m in match]


def aligned(frames: torch.Tensor, match: list[np.ndarray]) -> torch.Tensor:
    """Per source frame, the mean of the target ``frames`` rows :func:`alignment` matched to it."""
    return torch.stack([frames[idx].mean(0) for idx in match])


def _shapes(env: torch.Tensor, fb: torch.Tensor, norm: tuple, context: int = 0) -> torch.Tensor:
    """Unit vectors of the standardised log-mel shapes of ``env`` (as ``content.spectral_queries``),
    those of ``context`` frames each side side by side."""
    from vcgraph_voice.dsp import content
    z = (content._mel_shape(env, fb) - norm[0]) / norm[1]
    return torch.nn.functional.normalize(content.with_context(z, context), dim=1)


def pool_frames(query_env: torch.Tensor, pool: list[dict], fb, context: int, k: int = 4):
    """Mean envelope / aperiodicity of each query frame's ``k`` nearest pool frames by shape."""
    from vcgraph_voice.dsp import content
    pe = torch.cat([a["log_env"] for a in pool])
    pa = torch.cat([a["ap"] for a in pool])
    _, norm = content.spectral_keys(pe, fb)  # the standardisation over the pool
    K = torch.cat([_shapes(a["log_env"], fb, norm, context) for a in pool])
    Q = _shapes(query_env, fb, norm, context)
    idx = (Q @ K.T).topk(k, dim=1).indices
    return pe[idx].mean(1), pa[idx].mean(1)


def render(variant: str, fs: dict, ft: dict, stats: dict, p, res, pool: list[dict] | None = None) -> np.ndarray:
    from vcgraph_voice.dsp import fast
    if variant == "fast":
        return fast.synthesize(fs, stats, p, resources=res).numpy()
    lf0 = {k: v for k, v in stats.items() if k.startswith("lf0")}
    m = alignment(fs, ft)
    env_t, ap_t = aligned(ft["log_env"], m), aligned(ft["ap"], m)
    if variant.startswith("pool"):
        fb, _ = res.mel(SR, p.fft_size(SR), p.n_mels, p.mel_fmax, env_t.device)
        env_t, ap_t = pool_frames(env_t, pool, fb, 2 if variant == "pool_ctx" else 0)
    env = env_t
    if variant == "oracle_0.8":
        env = 0.8 * env_t + 0.2 * fast.mapped_envelope(fs, stats, p, res)[0]
    e_s = 0.5 * torch.logsumexp(2 * fs["log_env"], 1, keepdim=True)  # the source's frame energy kept
    env = env + (e_s - 0.5 * torch.logsumexp(2 * env, 1, keepdim=True))
    feats = dict(fs, log_env=env, ap=ap_t)
    if variant == "oracle_f0":
        f0_t = torch.stack([ft["f0"][idx].float().mean() if bool(ft["voiced"][idx].all()) else torch.tensor(0.0)
                            for idx in m])
        lf = torch.log(fs["f0"].clamp_min(1.0))
        v = fs["voiced"]
        mu, sd = lf[v].mean(), lf[v].std().clamp_min(0.02)
        f0_map = torch.exp((lf - mu) / sd * float(stats["lf0_std"][0]) + float(stats["lf0_mean"][0]))
        f0 = torch.where(v & (f0_t > 0), f0_t, torch.where(v, f0_map, torch.zeros_like(f0_map)))
        return fast.synthesize(dict(feats, f0=f0), {}, p, resources=res).numpy()
    return fast.synthesize(feats, lf0, p, resources=res).numpy()


def _whitened(src_content: torch.Tensor, tgt_content: torch.Tensor, context: int = 1):
    """Bottleneck queries and keys standardised per dimension (each over its own utterances)."""
    from vcgraph_voice import content_model as cm
    from vcgraph_voice.dsp import content

    def z(c):
        f = c[:, :cm.BOTTLENECK].float()
        f = (f - f.mean(0)) / f.std(0).clamp_min(1e-3)
        return torch.nn.functional.normalize(content.with_context(f, context, step=2), dim=1)
    return z(src_content), z(tgt_content)


def _class_query(fs: dict, tgt_content: torch.Tensor, fb, norm, spec_keys, tgt_env, kappa: float = 5.0):
    """The source's own shape shifted by the posterior-weighted per-phone mean difference."""
    from vcgraph_voice import content_model as cm
    from vcgraph_voice.dsp import content

    def post(c):
        pr = torch.softmax(c[:, cm.BOTTLENECK:].float(), 1)
        return pr.reshape(pr.shape[0], cm.N_PHONES, cm.N_STATES).sum(2)
    m_s, m_t = content._mel_shape(fs["log_env"], fb), content._mel_shape(tgt_env, fb)
    P_s, P_t = post(fs["content"]), post(tgt_content)
    mu_t = (P_t.T @ m_t) / P_t.sum(0)[:, None].clamp_min(1e-6)
    prior = mu_t - m_t.mean(0) + m_s.mean(0)
    mu_s = (P_s.T @ m_s + kappa * prior) / (P_s.sum(0)[:, None] + kappa)
    q = m_s + P_s @ (mu_t - mu_s)
    return torch.nn.functional.normalize((q - norm[0]) / norm[1], dim=1)


def _parallel_linear_query(readings: list[tuple[dict, dict]], fb, norm, context: int = 2, ridge: float = 30.0):
    """The bound of a *linear* query: a ridge map from the source's standardised shapes (+-
    ``context`` frames) onto the oracle shapes, fitted on parallel readings of other sentences
    (utterances 1-8, which a real conversion never has). Returns the query function."""
    from vcgraph_voice.dsp import content

    def features(fs, sn):
        z = (content._mel_shape(fs["log_env"], fb) - sn[0]) / sn[1]
        return torch.cat([content.with_context(z, context), torch.ones_like(z[:, :1])], 1).double()
    m = torch.cat([content._mel_shape(fs["log_env"], fb) for fs, _ in readings])
    sn = (m.mean(0), m.std(0).clamp_min(1e-3))
    X, Y = [], []
    for fs, ft in readings:
        O = content.spectral_queries(aligned(ft["log_env"], alignment(fs, ft)), fb, norm)
        X.append(features(fs, sn)[fs["speech"]])
        Y.append(O[fs["speech"]].double())
    X, Y = torch.cat(X), torch.cat(Y)
    W = torch.linalg.solve(X.T @ X + ridge * torch.eye(X.shape[1], dtype=X.dtype), X.T @ Y)
    return lambda fs: torch.nn.functional.normalize((features(fs, sn) @ W).float(), dim=1)


RANKS = (256, 384, 512)
DIAGONAL = (2, 4, 8)  # --more: +-frames of diagonal context on the final match of the preset before content_shape


def diagonal_context(sim: torch.Tensor, width: int) -> torch.Tensor:
    """``sim`` (queries x keys, both in time order) summed along its diagonals over +-``width``:
    a key scores by how its neighbours match the query's neighbours too."""
    out = sim.clone()
    for d in range(1, width + 1):
        out[d:, d:] += sim[:-d, :-d]
        out[:-d, :-d] += sim[d:, d:]
    return out


def agreement(a, j, pairs) -> None:
    """The ``--agreement`` mode (see the module docstring)."""
    import vc_score as vs
    from vcgraph_voice import content_model as cm
    from vcgraph_voice.dsp import content, fast
    from vcgraph_voice.phone_states import load_phone_states
    p, res = fast.FastParams(f0_min=80.0, f0_max=800.0), fast.FastResources()
    enc, front, states = cm.load_encoder(), cm.ContentFrontend(), load_phone_states()
    an = {}

    def analysis(v, i):
        if (v, i) not in an:
            an[v, i] = content.analyze(torch.from_numpy(load(j.wav(v, i))), SR, enc, front, p, res, states)
        return an[v, i]
    fb, _ = res.mel(SR, p.fft_size(SR), p.n_mels, p.mel_fmax, torch.device("cpu"))
    cp = content.ContentParams(spectral_match=0.6)
    refine = content.ContentParams(spectral_match=0.6, refine=2)  # the preset's before phone states
    before = content.ContentParams(spectral_match=0.6, refine=2, phone_states=0.5)  # the preset's until 2026-12-07
    preset = dataclasses.replace(before, content_shape=0.5, content_shape_ridge=3.0)  # the preset's
    sums, linear_bound = {}, {}
    for s, t in pairs:
        target = content.target_frames([analysis(t, i) for i in vs.span("1-8")])
        pt = content.prepare_target(target, cp, p, SR, "cpu", res)
        pt_p = content.prepare_target(target, preset, p, SR, "cpu", res)
        ranked = {r: (pr, content.prepare_target(target, pr, p, SR, "cpu", res))
                  for r in RANKS for pr in [dataclasses.replace(before, match_rank=r)]}
        spec_keys, norm = pt.spectral, pt.spectral_norm
        if a.more:
            linear_bound[s, t] = _parallel_linear_query(
                [(analysis(s, i), analysis(t, i)) for i in vs.span("1-8")], fb, norm)
        for i in vs.span(a.test_utts):
            fs, ft = analysis(s, i), analysis(t, i)
            m = alignment(fs, ft)
            O = content.spectral_queries(aligned(ft["log_env"], m), fb, norm)
            mapped, _ = fast.mapped_envelope(fs, target, p, res)
            qc = content._matching_features(fs["content"], cp)
            qs = content.spectral_queries(mapped, fb, norm)
            qr = content.refined_queries(fs["log_env"], fs["speech"], qc, qs, pt, fb, refine)
            qp = content._matching_features(fs["content"], preset, fs["phone_states"])
            qpr = content.refined_queries(fs["log_env"], fs["speech"], qp, qs, pt_p, fb, preset)
            qcs = content.with_content_shape(qpr, qp, pt_p.shape_map, preset.content_shape)
            queries = {"preset": (content.joint_keys(qp, qcs, 0.6), pt_p.match_keys),
                       "preset_content_shape0": (content.joint_keys(qp, qpr, 0.6), pt_p.match_keys),
                       "no_phone_states": (content.joint_keys(qc, qr, 0.6), pt.match_keys),
                       "unrefined": (content.joint_keys(qc, qs, 0.6), pt.match_keys), "content": (qc, pt.keys),
                       "content+phone_states": (qp, pt_p.keys),
                       "spectrum": (qs, spec_keys), "oracle": (O, spec_keys)}
            for r, (pr, pt_r) in ranked.items():
                qrr = content.refined_queries(fs["log_env"], fs["speech"], qp, qs, pt_r, fb, pr)
                queries[f"preset_rank{r}"] = (pt_r.project(content.joint_keys(qp, qrr, 0.6)), pt_r.match_keys)
            if a.more:
                tc = torch.from_numpy(np.ascontiguousarray(target["content"])).float()
                for name, kw in (("content_ctx0", {"context": 0}), ("content_ctx2", {"context": 2}),
                                 ("content_ctx4", {"context": 4}), ("posteriors", {"match_on": "posteriors"})):
                    c2 = content.ContentParams(**kw)
                    queries[name] = (content._matching_features(fs["content"], c2), content._matching_features(tc, c2))
                zq, zk = _whitened(fs["content"], tc)
                queries["content_z"] = (zq, zk)
                cq = _class_query(fs, tc, fb, norm, spec_keys, pt.log_env)
                queries["class"] = (cq, spec_keys)
                for w in (0.6, 0.8):
                    queries[f"content+class_{w}"] = (content.joint_keys(qc, cq, w), content.joint_keys(pt.keys, spec_keys, w))
                ql = linear_bound[s, t](fs)
                queries["linear_parallel"] = (content.joint_keys(qc, ql, 0.6), pt.match_keys)
            top_o = (O @ spec_keys.T).topk(4, dim=1).indices
            sp = fs["speech"]
            sims = {name: q @ keys.T for name, (q, keys) in queries.items()}
            if a.more:
                for w in DIAGONAL:
                    sims[f"diagonal{w}"] = diagonal_context(sims["preset_content_shape0"], w)
            for name, sim in sims.items():
                idx = sim.topk(4, dim=1).indices
                got = torch.nn.functional.normalize(spec_keys[idx].mean(1), dim=1)
                cos = (got * O).sum(1)[sp]
                hit = (idx[:, :, None] == top_o[:, None, :]).any(2).any(1)[sp].float()
                acc = sums.setdefault(name, [0.0, 0.0, 0])
                acc[0] += float(cos.sum()); acc[1] += float(hit.sum()); acc[2] += int(sp.sum())
    for name, (c, h, n) in sums.items():
        print(json.dumps({"query": name, "cos_to_oracle": round(c / n, 4), "shares_a_frame": round(h / n, 4),
                          "frames": n}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
    ap.add_argument("--pairs", default="rms:slt,slt:rms,awb:kal16,kal16:awb,slt:awb,kal16:rms")
    ap.add_argument("--test-utts", default="9-12")
    ap.add_argument("--agreement", action="store_true", help="score queries against the oracle's (no judges)")
    ap.add_argument("--more", action="store_true", help="with --agreement: more queries (context, whitening, "
                    "posteriors, a per-phone shifted spectrum, a linear map fitted on parallel readings, "
                    "diagonal context on the preset's match)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import vc_score as vs
    from dev_judges import dev_judges, judge, source_edits, summary
    from vcgraph_voice.dsp import fast
    if a.agreement:
        import types
        data = a.data
        j = types.SimpleNamespace(wav=lambda v, i: os.path.join(data, f"{v}_{i:02d}.wav"))
        agreement(a, j, [pr.split(":") for pr in a.pairs.split(",")])
        return
    j = dev_judges(a.data)
    p, res = fast.FastParams(f0_min=80.0, f0_max=800.0), fast.FastResources()
    pairs = [pr.split(":") for pr in a.pairs.split(",")]
    an = {}

    def analysis(v, i):
        if (v, i) not in an:
            an[v, i] = fast.analyze(torch.from_numpy(load(j.wav(v, i))), SR, p, res)
        return an[v, i]
    stats = {t: fast.target_stats([analysis(t, i) for i in vs.span("1-8")]) for t in {t for _, t in pairs}}
    scratch = tempfile.TemporaryDirectory(prefix="parallel-oracle-")  # per run, removed at its end
    out = os.path.join(scratch.name, "rendered.wav")
    src_err = {}
    for variant in a.variants.split(","):
        rows = []
        for s, t in pairs:
            for i in vs.span(a.test_utts):
                y = render(variant, analysis(s, i), analysis(t, i), stats[t], p, res,
                           [analysis(t, r) for r in vs.span("1-8")])
                sf.write(out, y / (np.abs(y).max() + 1e-9) * 0.5, SR)
                src_ps, src_wh = source_edits(j, src_err, s, i)
                rows.append(dict(judge(j, out, s, t, j.sents[i - 1]), src_ps=src_ps, src_wh=src_wh))
        print(json.dumps({"variant": variant, **summary(rows)}), flush=True)


if __name__ == "__main__":
    main()
