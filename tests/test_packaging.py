"""The distribution boundary: the engine installs and runs without the voice plugin (or torch);
the voice plugin is a distribution of its own that depends on the engine."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from engine_helpers import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "plugins" / "vcgraph_voice"
VOICE_ONLY = ("vcgraph_voice", "torch", "torchaudio", "resemblyzer", "pyworld", "pocketsphinx", "librosa")

BLOCKER = textwrap.dedent(f"""\
    import sys
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {VOICE_ONLY!r}:
                raise ImportError("blocked for this test: " + name)
    sys.meta_path.insert(0, Blocker())
    """)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          env=subprocess_env(**env), timeout=120, cwd=ROOT)


def test_engine_imports_without_the_voice_plugin_or_torch():
    proc = _python("""
        import vcgraph, vcgraph.cli, vcgraph.bench, vcgraph.pipeline
        from vcgraph.plugins import get_registry
        get_registry().plugins()
        assert not [m for m in sys.modules if m.split(".")[0] in {blocked!r}], sorted(sys.modules)
        print("ok", len(get_registry().stages))
        """.replace("{blocked!r}", repr(VOICE_ONLY)), VCGRAPH_DISABLE_PLUGIN_AUTOLOAD="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_vcgraph_run_with_the_echo_plugin_and_no_voice_plugin(echo_target, tmp_path):
    out = tmp_path / "echo.wav"
    proc = _python(f"""
        from vcgraph.cli import main
        code = main(["run", "examples/vcgraph-echo/echo.yaml", "--input", "audio=examples/audio/source.wav",
                     "-o", {str(out)!r}, "--no-progress", "--report"])
        assert not [m for m in sys.modules if m.split(".")[0] in {VOICE_ONLY!r}]
        sys.exit(code)
        """, PYTHONPATH=f"{echo_target}:{ROOT}", VCGRAPH_PLUGINS="echo")
    assert proc.returncode == 0, proc.stderr
    assert "echo" in proc.stdout and "cpu" in proc.stdout
    import soundfile as sf
    dry, _ = sf.read(ROOT / "examples" / "audio" / "source.wav")
    wet, _ = sf.read(out)
    assert len(wet) == len(dry) and abs(wet - dry).max() > 0.01  # the echo was added


def test_seed_api_comes_from_the_voice_plugin():
    import vcgraph
    import vcgraph_voice
    from vcgraph_voice.api import PipelineConfig
    assert vcgraph_voice.PipelineConfig is PipelineConfig
    with pytest.raises(AttributeError, match="from vcgraph_voice import VoiceConversionPipeline"):
        vcgraph.VoiceConversionPipeline  # noqa: B018


tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")


def _project(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_engine_distribution_declares_no_voice_dependency():
    project = _project(ROOT / "pyproject.toml")["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert names.isdisjoint({"torch", "torchaudio", "resemblyzer", "pyworld", "pocketsphinx", "librosa",
                             "setuptools"}), names
    # the engine's only plugin is its model stages
    assert project["entry-points"]["vcgraph"] == {"models": "vcgraph.models"}


def test_voice_distribution_depends_on_the_engine_and_packages_every_subpackage():
    data = _project(VOICE / "pyproject.toml")
    project, tool = data["project"], data["tool"]["setuptools"]
    assert project["entry-points"]["vcgraph"] == {"voice": "vcgraph_voice"}
    assert any(d.startswith("vcgraph>") or d == "vcgraph" for d in project["dependencies"])
    found = {"vcgraph_voice." + ".".join(p.parent.relative_to(VOICE).parts) if p.parent != VOICE else "vcgraph_voice"
             for p in VOICE.rglob("__init__.py") if not {"__pycache__", "build"} & set(p.relative_to(VOICE).parts)}
    assert found == set(tool["packages"]), "update packages in plugins/vcgraph_voice/pyproject.toml"
    assert {"configs/*.yaml", "data/*.wav", "models/*"} <= set(tool["package-data"]["vcgraph_voice"])


def test_help_imports_no_heavy_module():
    """`vcgraph --help` loads every plugin's commands, but neither numpy, pydantic, omegaconf nor
    torch: plugins keep slow imports out of module level (see the plugin guide)."""
    code = textwrap.dedent("""\
        import sys
        from vcgraph.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        heavy = {"numpy", "pydantic", "omegaconf", "torch", "torchaudio", "scipy", "yaml"}
        print("HEAVY", sorted({m.split(".")[0] for m in sys.modules} & heavy))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert "enroll" in proc.stdout and "convert" in proc.stdout  # the voice plugin's commands are there
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("pip install 'torch")]
    install_and_run, test = commands[0], commands[1]
    assert "-e . -e plugins/vcgraph_voice &&" in install_and_run  # engine and voice plugin, one line
    assert test.endswith("&& python -m pytest") and "plugins/vcgraph_voice[eval]" in test
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_default_preset_builds_without_importing_pyworld():
    """pyworld (WORLD, the quality preset's analysis) is imported on first use, not by every
    command: building the default graph registers every method's stages but loads no WORLD."""
    code = textwrap.dedent("""\
        import sys
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "pyworld":
                    raise ImportError("blocked for this test: " + name)
        sys.meta_path.insert(0, Blocker())
        from vcgraph_voice import PipelineConfig, VoiceConversionPipeline
        from vcgraph_voice.methods import stage_types
        VoiceConversionPipeline(PipelineConfig())
        print("ok", len(stage_types()))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
