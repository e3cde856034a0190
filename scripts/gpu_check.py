#!/usr/bin/env python3
"""One run that proves the CUDA implementations on a GPU and measures them (issue 14).

    python3 scripts/gpu_check.py [OUT_DIR]          # default: $OUT, else /tmp/vcgraph-gpu-check

In one go, under a total time budget (--budget, default 540 s), each step with its own cap:

  1. env      GPU, driver, torch and CUDA versions, the commit
  2. enroll   a voice profile from examples/audio/target_0*.wav (`vcgraph enroll`)
  3. parity   per offline preset (configs/*.yaml but stream*) and per node: the cuda
              implementation fed the very inputs the cpu one got, outputs compared
              (vcgraph.parity; tolerance: relative RMS error <= 1e-3 per output array)
  4. tests    the CUDA tests (cuda/cpu parity per stage, the content encoder, lengths)
  5. bench    `vcgraph bench PRESET --kinds cuda --durations 1,5,30`: first call and warm
              median, RTF, peak RSS and CUDA memory, per node (JSON and text)
  6. stream   `vcgraph stream --no-pace --json` of stream and stream-content on cuda and on cpu:
              block ratios, latency, the implementations, and the two outputs' difference
  7. batch    32 conversions of 5 s clips per preset, as users run it (cuda preferred, cpu
              fallback): clips per second, audio seconds per wall second, which implementation
              each node used, peak CUDA memory
  8. tests    the whole suite (`pytest -rs`, over the cores with pytest-xdist where it is
              installed) in the time left

The most telling steps come first, so a budget cut short loses the least. Writes at most 8
files (what a device run can bring back): summary.txt (every step's output, what ran and what
was skipped), results.json (all figures), bench.txt, parity.txt, batch.txt, stream.txt,
pytest.log, voice.vcp. Exits 1 when a step failed (a test, a parity mismatch,
an error), else 0.

Without CUDA (this project's CPU machine) the CUDA steps are skipped with the reason, the
test step runs only the CUDA tests (which skip, saying why), and the script exits 0.

Packages: the GPU machine has torch but not all of vcgraph's dependencies. Run
``python3 scripts/gpu_check.py --fetch-wheels .whl`` here first (cp312 manylinux wheels with pip,
the source of packages without one) and carry ``.whl`` (ignored by git: add it to
.git/info/exclude); on the GPU machine the script installs ``.whl/*`` into /tmp/site before
it starts, building the source archives there (no network needed), then vcgraph and its
voice plugin from this checkout (the plugin is found through its entry point, which only an
installed distribution has). Device call, for example:
``run(command="python3 scripts/gpu_check.py", carry=[".whl"], timeout_s=600)``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY_RTOL = 1e-3
# what vcgraph needs beyond the GPU machine's image (torch, numpy, pluggy, matplotlib, ... are there)
WHEELS = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "omegaconf", "soundfile",
          "pyworld", "pocketsphinx", "resemblyzer", "webrtcvad-wheels", "librosa==0.11.0", "soxr", "audioread",
          "lazy-loader", "pooch", "platformdirs", "decorator", "standard-aifc", "standard-sunau",
          "standard-chunk", "speechmos"]
PURE_SDISTS = ["antlr4-python3-runtime==4.9.3"]  # omegaconf's parser runtime: source only, pure Python


class Run:
    """Collects what each step printed and found; writes summary.txt and results.json."""

    def __init__(self, out: str, budget: float):
        self.out, self.t0, self.budget = out, time.monotonic(), budget
        self.lines: list[str] = []
        self.results: dict = {"steps": {}}
        self.failed: list[str] = []
        self.skipped: list[str] = []
        self.logs: list[str] = []  # pytest's output, every run

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.t0)

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def step(self, name: str) -> None:
        self.say(f"\n== {name}  (t={time.monotonic() - self.t0:.0f} s, {self.left():.0f} s left)")

    def skip(self, what: str, why: str) -> None:
        self.skipped.append(f"{what}: {why}")
        self.say(f"SKIPPED {what}: {why}")

    def fail(self, what: str) -> None:
        self.failed.append(what)
        self.say(f"FAILED {what}")

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.out, name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def finish(self) -> int:
        self.say("\n== done in %.0f s" % (time.monotonic() - self.t0))
        self.say("skipped: " + ("; ".join(self.skipped) if self.skipped else "nothing"))
        self.say("failed: " + (", ".join(self.failed) if self.failed else "nothing"))
        self.results.update(skipped=self.skipped, failed=self.failed, seconds=time.monotonic() - self.t0)
        self.write("results.json", json.dumps(self.results, indent=2, default=str) + "\n")
        self.write("summary.txt", "\n".join(self.lines) + "\n")
        return 1 if self.failed else 0


def sh(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, float]:
    """(exit status, stdout+stderr, seconds); 124 on timeout."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(1.0, timeout))
        return p.returncode, p.stdout + p.stderr, time.monotonic() - t0
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, text + f"\n(timed out after {timeout:.0f} s)", time.monotonic() - t0


def presets() -> list[str]:
    """The offline presets (the streaming graphs have a step of their own)."""
    return sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.yaml"))
                  if not os.path.basename(p).startswith("stream"))


def vcgraph_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from vcgraph.cli import main; sys.exit(main(sys.argv[1:]))", *args]


# -- steps -----------------------------------------------------------------------------------------
def step_env(run: Run, cuda: bool) -> None:
    run.step("env")
    import torch
    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda_available": cuda,
            "torch_cuda": torch.version.cuda, "cpu_count": os.cpu_count()}
    if cuda:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1)
    rc, text, _ = sh(["git", "log", "-1", "--format=%H %s"], 10)
    info["commit"] = text.strip() if rc == 0 else "(no git)"
    rc, text, _ = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 20) \
        if cuda else (1, "", 0)
    if rc == 0:
        info["nvidia_smi"] = text.strip()
    for k, v in info.items():
        run.say(f"  {k}: {v}")
    run.results["env"] = info


def step_enroll(run: Run) -> str | None:
    run.step("enroll")
    profile = os.path.join(run.out, "voice.vcp")
    refs = sorted(glob.glob(os.path.join(REPO, "examples", "audio", "target_0*.wav")))
    rc, text, secs = sh(vcgraph_cmd("enroll", *refs, "-o", profile, "--no-progress"), min(120, run.left()))
    run.say(text.strip()[-2000:])
    run.results["steps"]["enroll"] = {"rc": rc, "seconds": secs}
    if rc != 0:
        run.fail("enroll")
        return None
    run.say(f"  profile from {len(refs)} references in {secs:.1f} s")
    return profile


def _inputs(profile: str, seconds: float | None = None):
    from vcgraph.audio import read_audio
    from vcgraph.bench import fit_audio
    from vcgraph_voice.profile import load_target
    audio = read_audio(os.path.join(REPO, "examples", "audio", "source.wav"))
    if seconds:
        audio = fit_audio(audio, seconds)
    return {"audio": audio, "target": load_target(profile)}


def _json_document(out: str) -> dict | None:
    """The JSON document a command printed on stdout (warnings may follow it), or None."""
    try:
        return json.JSONDecoder().raw_decode(out[out.index("{"):])[0]
    except ValueError:
        return None


def _can_run(run: Run, name: str, cuda: bool, profile: str | None) -> bool:
    """Whether a CUDA step can run; if not, it is recorded as skipped with the reason."""
    if not cuda:
        run.skip(name, "CUDA is not available on this machine")
    elif not profile:
        run.skip(name, "no profile (enroll failed)")
    return bool(cuda and profile)


def step_parity(run: Run, cuda: bool, profile: str | None) -> None:
    run.step("parity: cuda vs cpu, per node, same inputs")
    if not _can_run(run, "parity", cuda, profile):
        return
    from vcgraph.parity import compare_kinds, format_parity, rows_to_dicts
    text, found = [], {}
    for preset in presets():
        name = os.path.splitext(os.path.basename(preset))[0]
        if run.left() < 60:
            run.skip(f"parity {name}", "time budget spent")
            continue
        t0 = time.monotonic()
        try:
            rows = compare_kinds(preset, _inputs(profile, 5.0), kind="cuda", reference="cpu", rtol=PARITY_RTOL)
        except Exception as exc:  # noqa: BLE001
            run.fail(f"parity {name}: {type(exc).__name__}: {exc}")
            continue
        block = f"-- {name} (5 s of speech; {time.monotonic() - t0:.1f} s)\n{format_parity(rows)}"
        run.say(block)
        text.append(block)
        found[name] = rows_to_dicts(rows)
        for r in rows:
            if r.ok is False:
                run.fail(f"parity {name}/{r.node}")
    run.write("parity.txt", "\n\n".join(text) + "\n")
    run.results["parity"] = found


def step_bench(run: Run, cuda: bool, profile: str | None) -> None:
    run.step("bench: vcgraph bench PRESET --kinds cuda at 1, 5, 30 s")
    if not _can_run(run, "bench", cuda, profile):
        return
    from vcgraph.bench import BenchRow, format_rows
    src = os.path.join(REPO, "examples", "audio", "source.wav")
    text, found = [], {}
    for preset in presets():
        name = os.path.splitext(os.path.basename(preset))[0]
        cap = min(90.0, run.left() - 30)
        if cap < 30:
            run.skip(f"bench {name}", "time budget spent")
            continue
        rc, out, secs = sh(vcgraph_cmd("bench", preset, "-i", f"audio={src}", "-i", f"target={profile}",
                                       "--kinds", "cuda", "--durations", "1,5,30", "--repeat", "3", "--json"), cap)
        data = _json_document(out)
        if data is None:
            run.fail(f"bench {name} (exit {rc})")
            run.say(out[-3000:])
            continue
        rows = [BenchRow(**r) for r in data.get("runs", [])]
        block = f"-- {name} ({secs:.0f} s)\n{format_rows(rows)}"
        run.say(block)
        text.append(block)
        found[name] = data
        if rc != 0 or any(r.error for r in rows):
            run.fail(f"bench {name}")
    run.write("bench.txt", "\n\n".join(text) + "\n")
    run.results["bench"] = found


def step_batch(run: Run, cuda: bool, profile: str | None, n: int = 32, seconds: float = 5.0) -> None:
    run.step(f"batch: {n} conversions of {seconds:g} s clips per preset (cuda preferred, cpu fallback)")
    if not _can_run(run, "batch", cuda, profile):
        return
    import numpy as np
    import torch
    from vcgraph.pipeline import Pipeline
    base = _inputs(profile)
    rng = np.random.default_rng(0)
    x = np.asarray(base["audio"].samples)
    sr = base["audio"].sample_rate
    from vcgraph.audio import Audio
    from vcgraph.bench import fit_audio
    clips = []
    for i in range(n):  # different clips: each a rotation of the tiled source
        a = fit_audio(Audio(np.roll(x, int(rng.integers(0, len(x)))), sr), seconds)
        clips.append(a)
    text, found = [], {}
    for preset in presets():
        name = os.path.splitext(os.path.basename(preset))[0]
        if run.left() < 60:
            run.skip(f"batch {name}", "time budget spent")
            continue
        pipe = Pipeline.from_yaml(preset)
        pipe.run({"audio": clips[0], "target": base["target"]})  # warm-up: models loaded, kernels compiled
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times, impl = [], {}
        t_all = time.perf_counter()
        deadline = time.monotonic() + min(30.0, run.left() - 40)
        for clip in clips:
            t0 = time.perf_counter()
            res = pipe.run({"audio": clip, "target": base["target"]})
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            impl = {k: f"{v.implementation}@{v.device}" for k, v in res.report.nodes.items()}
            if time.monotonic() > deadline:
                break
        wall = time.perf_counter() - t_all
        done = len(times)
        entry = {"clips": done, "clip_s": seconds, "wall_s": wall, "clips_per_s": done / wall,
                 "audio_s_per_wall_s": done * seconds / wall, "median_s": statistics.median(times),
                 "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20, "implementations": impl}
        block = (f"-- {name}: {done} clips of {seconds:g} s in {wall:.2f} s: {entry['clips_per_s']:.2f} clips/s, "
                 f"{entry['audio_s_per_wall_s']:.1f} s of audio per s, median {entry['median_s'] * 1e3:.1f} ms "
                 f"per clip, CUDA peak {entry['cuda_peak_mb']:.0f} MB\n   nodes: "
                 + ", ".join(f"{k} {v}" for k, v in impl.items()))
        run.say(block)
        text.append(block)
        found[name] = entry
    run.write("batch.txt", "\n".join(text) + "\n")
    run.results["batch"] = found


def step_stream(run: Run, cuda: bool, profile: str | None) -> None:
    """`vcgraph stream` (20 ms blocks, unpaced) on cuda and on cpu: block ratios, and how far apart
    the two outputs are."""
    run.step("stream: vcgraph stream --no-pace --json, use_cuda true / false")
    if not _can_run(run, "stream", cuda, profile):
        return
    import numpy as np
    import soundfile as sf
    src = os.path.join(REPO, "examples", "audio", "source.wav")
    found, text = {}, []
    for config in ("stream", "stream-content"):
        outs = {}
        for use_cuda in ("true", "false"):
            if run.left() < 40:
                run.skip(f"stream {config}", "time budget spent")
                break
            wav = os.path.join("/tmp", f"gpu-check-{config}-{use_cuda}.wav")
            rc, out, secs = sh(vcgraph_cmd("stream", src, "--target", profile, "-o", wav, "--no-pace", "--json",
                                           "--config", config, "--set", f"settings.use_cuda={use_cuda}"),
                               min(90.0, run.left() - 30))
            data = _json_document(out)
            if data is None:
                run.fail(f"stream {config} use_cuda={use_cuda} (exit {rc})")
                run.say(out[-2000:])
                continue
            outs[use_cuda] = sf.read(wav, dtype="float32")[0]
            found[f"{config} use_cuda={use_cuda}"] = data
            line = (f"-- {config}, use_cuda={use_cuda} ({secs:.0f} s): block p50 {data.get('p50_block_ratio')} / "
                    f"p99 {data.get('p99_block_ratio')} of {data.get('block_ms')} ms, latency "
                    f"{data.get('algorithmic_latency_ms')} ms; " + json.dumps({k: v for k, v in data.items()
                                                                             if "impl" in k or "node" in k}))
            run.say(line)
            text.append(line)
        if len(outs) == 2:
            a, b = outs["true"], outs["false"]
            n = min(len(a), len(b))
            err = float(np.sqrt(np.mean((a[:n] - b[:n]) ** 2)) / (np.sqrt(np.mean(b[:n] ** 2)) + 1e-12))
            line = f"   {config}: cuda vs cpu output, relative RMS difference {err:.2e} ({n} samples)"
            run.say(line)
            text.append(line)
            found[f"{config} cuda_vs_cpu_rel_rms"] = err
    run.write("stream.txt", "\n".join(text) + "\n")
    run.results["stream"] = found


CUDA_TESTS = ["tests/test_cuda_parity.py", "tests/test_content_method.py", "tests/test_dsp_fast.py", "-k", "cuda"]


def step_tests(run: Run, cuda: bool, whole: bool = False) -> None:
    """The CUDA tests; with ``whole`` (on a GPU) the whole suite, spread over the cores when
    pytest-xdist is there, in the time left."""
    if whole and not cuda:
        return
    run.step("tests: " + ("the whole suite" if whole else "the CUDA tests" + ("" if cuda else " (no CUDA here)")))
    label, selection = "cuda tests", CUDA_TESTS
    if whole:
        import importlib.util
        label, selection = "whole suite", (["-n", str(min(8, os.cpu_count() or 1))]
                                           if importlib.util.find_spec("xdist") else [])
    cap = run.left() - 10
    if cap < 30:
        run.skip(f"tests ({label})", "time budget spent")
        return
    cmd = [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", *selection]
    rc, text, secs = sh(cmd, cap)
    run.logs.append(f"==== {label}: {shlex.join(cmd)} (exit {rc}, {secs:.0f} s)\n{text}")
    tail = [ln for ln in text.splitlines() if ln.startswith(("FAILED", "ERROR", "SKIPPED")) or " passed" in ln
            or " failed" in ln or " skipped" in ln]
    run.say(f"-- {label} (exit {rc}, {secs:.0f} s)\n" + "\n".join(tail[-60:]))
    run.results["steps"][f"tests {label}"] = {"rc": rc, "seconds": secs, "command": shlex.join(cmd)}
    if rc == 124:
        run.skip(f"tests ({label})", f"cut off by the time budget after {secs:.0f} s")
    elif rc not in (0, 5):  # 5: nothing collected
        run.fail(f"tests {label} (pytest exit {rc})")
    run.write("pytest.log", "\n".join(run.logs))


def fetch_wheels(folder: str) -> int:
    """Download cp312 manylinux wheels of what the GPU machine lacks; the source of those without one.

    Packages that publish no matching wheel (pyworld, say) come as source archives, built on the
    GPU machine without network (its image has a compiler, Cython and numpy).
    """
    os.makedirs(folder, exist_ok=True)
    plat = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                        "manylinux2014_x86_64", "manylinux1_x86_64") for a in ("--platform", p)]
    wheel = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
             "3.12", "--implementation", "cp", *plat, "-d", folder]
    # the source archive only: no build isolation, so pip does not build the build's needs from source
    source = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation", "-d", folder]

    def fetch_source(pkg: str) -> bool:
        name = pkg.split("=")[0].split("<")[0].split(">")[0]
        return subprocess.call(source + [f"--no-binary={name}", pkg]) == 0

    missing = []
    for pkg in WHEELS:
        if subprocess.call(wheel + [pkg], stderr=subprocess.DEVNULL) != 0:
            print(f"{pkg}: no cp312 wheel, fetching its source")
            if not fetch_source(pkg):
                missing.append(pkg)
    for pkg in PURE_SDISTS:
        if not fetch_source(pkg):
            missing.append(pkg)
    files = sorted(glob.glob(os.path.join(folder, "*.whl")) + glob.glob(os.path.join(folder, "*.tar.gz")))
    total = sum(os.path.getsize(p) for p in files)
    print(f"{len(files)} files, {total / 2 ** 20:.1f} MiB in {folder}" + (f"; not found: {missing}" if missing else ""))
    return 1 if missing else 0


def install_carried_wheels() -> str | None:
    """Install ``.whl/*`` (wheels and source archives carried to the GPU machine) into /tmp/site."""
    folder = os.path.join(REPO, ".whl")
    wheels = sorted(glob.glob(os.path.join(folder, "*.whl")))
    sources = sorted(glob.glob(os.path.join(folder, "*.tar.gz")))
    if not wheels and not sources:
        return None
    site = "/tmp/site"
    base = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
            "--upgrade", "--target", site]
    if wheels:
        subprocess.check_call(base + wheels)
    if sources:  # built here, against the image's own setuptools, Cython and numpy
        subprocess.check_call(base + ["--no-build-isolation"] + sources)
    # vcgraph and its voice plugin themselves: the plugin is found through its entry point, which
    # only an installed distribution has (the code still runs from the checkout, first on the path)
    subprocess.check_call(base + ["--no-build-isolation", REPO, os.path.join(REPO, "plugins", "vcgraph_voice")])
    return site


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT") or "/tmp/vcgraph-gpu-check",
                    help="folder for the files (default: $OUT, else /tmp/vcgraph-gpu-check)")
    ap.add_argument("--budget", type=float, default=540.0, help="total seconds for all steps (default 540)")
    ap.add_argument("--skip", action="append", default=[], choices=("parity", "bench", "stream", "batch", "tests"))
    ap.add_argument("--fetch-wheels", metavar="DIR", help="only download the wheels the GPU machine lacks, into DIR")
    args = ap.parse_args()
    if args.fetch_wheels:
        return fetch_wheels(args.fetch_wheels)

    site = install_carried_wheels()
    paths = [REPO, os.path.join(REPO, "plugins")] + ([site] if site else [])
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p])
    sys.path[:0] = paths
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.makedirs(args.out, exist_ok=True)
    run = Run(args.out, args.budget)
    run.say(f"gpu_check: {REPO} -> {args.out}" + (f" (wheels installed into {site})" if site else ""))
    from vcgraph.devices import cuda_available
    cuda = cuda_available()
    try:
        step_env(run, cuda)
        profile = step_enroll(run)
        steps = (("parity", step_parity), ("tests", lambda r, c, _: step_tests(r, c)), ("bench", step_bench),
                 ("stream", step_stream), ("batch", step_batch),
                 ("tests", lambda r, c, _: step_tests(r, c, whole=True)))
        for name, fn in steps:  # the most telling first: a cut budget loses the rest
            if name in args.skip:
                run.skip(name, "--skip")
            else:
                try:
                    fn(run, cuda, profile)
                except Exception as exc:  # noqa: BLE001 - one step's crash must not lose the others
                    run.fail(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        rc = run.finish()
    return rc


if __name__ == "__main__":
    sys.exit(main())
