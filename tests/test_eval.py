"""``vcgraph eval`` on known cases: metrics, manifest validation, the runner, the report, the CLI.

Uses the speech-dev data (``VCGRAPH_DEV_DATA``, default ``<repo>/../shared/data/speech-dev``);
tests that need it or the scoring extra are skipped when they are absent. Models are loaded
once for the module; two short sentences keep it quick.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins"))

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
    assert "pip install 'vcgraph[eval]'" in msg and module in msg


def test_missing_matplotlib_in_report(monkeypatch, tmp_path):
    from vcgraph_voice.eval.report import write_report
    from vcgraph_voice.eval.runner import EvalResult
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(M.MissingDependencyError, match=r"pip install 'vcgraph\[eval\]'"):
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
    return Scorers()


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


def test_report_folder_has_every_file_it_links(identity_result, tmp_path):
    from vcgraph_voice.eval.report import write_report
    folder = tmp_path / "report"
    index = write_report(identity_result, str(folder))
    text = open(index, encoding="utf-8").read()
    parser = _Links()
    parser.feed(text)
    parser.close()
    assert text.lstrip().startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    files = [u for u in parser.links if not u.startswith("#")]
    assert sum(u.endswith(".wav") for u in files) >= 6 and sum(u.endswith(".png") for u in files) >= 2
    for url in parser.links:
        parts = urlparse(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url  # relative only
        if url.startswith("#"):
            assert url[1:] in parser.ids, url
        else:
            assert (folder / unquote(parts.path)).is_file(), url
    assert "<audio controls" in text and "Summary" in text


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
                   "pip install 'vcgraph[eval]'"):
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
                                 "--skip", "dnsmos", "--json", str(out_json), "--report", str(report),
                                 "--no-progress"])
    assert cli.cmd_eval(args, converter_factory=lambda a: Identity()) == 0
    data = json.loads(out_json.read_text())
    assert data["summary"]["items"] == 1 and data["items"][0]["mcd"] > 4.0
    assert (report / "index.html").is_file()
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
