#!/usr/bin/env python3
"""Train the content encoder from scratch on the data of ``make_data.py``.

Random 2.5 s crops, each normalised on its own (as an utterance is at run time), with
vocal-tract-length augmentation on the mel axis, SpecAugment-style masks and label
smoothing; AdamW with a one-cycle schedule for a fixed wall-clock budget. Writes safetensors
weights with the recipe and held-out accuracy in their metadata.

    python scripts/content_model/train.py --data /tmp/cm-data --minutes 25 \
        --out plugins/vcgraph_voice/models/content-encoder.safetensors
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins"))
from vcgraph_voice import content_model as cm  # noqa: E402


def load(pattern: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(pattern)):
        rows.extend(torch.load(path, weights_only=True))
    return rows


def warp_mel(mel: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Stretch the band axis of (B, T, M) log-mels by per-item factors (VTL augmentation)."""
    B, T, M = mel.shape
    pos = (torch.arange(M, dtype=torch.float32)[None, :] / alpha[:, None]).clamp(0, M - 1.001)
    i0 = pos.floor().long()
    w = (pos - i0)[:, None, :]
    g0 = mel.gather(2, i0[:, None, :].expand(B, T, M))
    g1 = mel.gather(2, (i0 + 1)[:, None, :].expand(B, T, M))
    return g0 * (1 - w) + g1 * w


def batch(rows: list[dict], n: int, frames: int, r: random.Random, augment: bool = True):
    mels, labels = [], []
    for _ in range(n):
        row = rows[r.randrange(len(rows))]
        mel, lab = row["mel"].float(), row["label"].long()
        T = mel.shape[0]
        if T > frames:
            a = r.randrange(T - frames + 1)
            mel, lab = mel[a:a + frames], lab[a:a + frames]
        mel = cm.ContentFrontend.normalise(mel)
        pad = frames - mel.shape[0]
        mels.append(F.pad(mel, (0, 0, 0, pad)))
        labels.append(F.pad(lab, (0, pad), value=-100))
    mel, lab = torch.stack(mels), torch.stack(labels)
    if augment:
        alpha = torch.exp(torch.empty(n).uniform_(math.log(0.9), math.log(1.1)))
        mel = warp_mel(mel, alpha)
        for b in range(n):
            f0 = r.randrange(cm.N_MELS - 8); mel[b, :, f0:f0 + r.randrange(9)] = 0.0
            t0 = r.randrange(frames - 20); mel[b, t0:t0 + r.randrange(21)] = 0.0
        mel = mel + 0.05 * torch.randn_like(mel)
    return mel, lab


@torch.no_grad()
def accuracy(model, rows: list[dict]) -> dict:
    """Frame accuracy on whole utterances: phone-state classes and phones (states merged)."""
    model.eval()
    ok_s = ok_p = n = 0
    for row in rows:
        mel = cm.ContentFrontend.normalise(row["mel"].float())
        logits, _ = model(mel[None])
        pred, lab = logits[0].argmax(-1), row["label"].long()
        ok_s += int((pred == lab).sum()); ok_p += int((pred // 3 == lab // 3).sum()); n += lab.numel()
    model.train()
    return {"state_accuracy": round(ok_s / max(n, 1), 4), "phone_accuracy": round(ok_p / max(n, 1), 4),
            "frames": n, "utterances": len(rows)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=cm.WEIGHTS)
    ap.add_argument("--minutes", type=float, default=25.0, help="wall-clock training budget")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    r = random.Random(a.seed)
    train = load(os.path.join(a.data, "train-*.pt"))
    held = load(os.path.join(a.data, "heldout-*.pt"))
    print(f"{len(train)} training utterances ({sum(x['mel'].shape[0] for x in train) / 360000:.2f} h), "
          f"{len({x['base_voice'] for x in train})} voices; {len(held)} held-out utterances", flush=True)
    model = cm.ContentEncoder()
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    # time the first steps to size the schedule to the budget
    t0 = time.time()
    budget = a.minutes * 60
    step, total = 0, None
    ema = None
    while True:
        elapsed = time.time() - t0
        if total is None and step == 20:
            total = max(50, int(20 * budget / elapsed))
            print(f"{elapsed / 20:.2f} s/step -> {total} steps", flush=True)
        if total is not None and step >= total:
            break
        frac = step / (total or 10_000)
        lr = a.lr * min(1.0, step / 100) * (0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        mel, lab = batch(train, a.batch, a.frames, r)
        logits, _ = model(mel)
        loss = F.cross_entropy(logits.reshape(-1, cm.N_CLASSES), lab.reshape(-1), ignore_index=-100,
                               label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        step += 1
        if step % 200 == 0:
            print(f"step {step}/{total} loss {ema:.3f} lr {lr:.2e} {time.time() - t0:.0f} s", flush=True)
        if step % 1000 == 0:
            print("held-out", accuracy(model, held[:60]), flush=True)
    minutes = (time.time() - t0) / 60
    acc = accuracy(model, held)
    print(f"trained {step} steps in {minutes:.1f} min; held-out synthetic voices: {acc}", flush=True)
    meta = {"recipe": vars(a) | {"steps": step, "train_minutes": round(minutes, 1)},
            "data": {"utterances": len(train), "voices": len({x['base_voice'] for x in train})},
            "held_out_synthetic": acc}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    cm.save_encoder(model, a.out, meta)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
