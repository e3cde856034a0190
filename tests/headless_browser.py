"""Open a local HTML page in a real headless Chromium and report what a reader would hit.

No browser-driver package: Chromium is started with ``--remote-debugging-pipe`` and spoken to
with the DevTools protocol (NUL-terminated JSON on file descriptors 3 and 4). :func:`inspect_page`
loads the page at a given viewport width and returns console errors, failed loads, images
that did not decode, audio that did not load its metadata, and the page's horizontal overflow.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    env = os.environ.get("VCGRAPH_BROWSER")
    if env:
        return env if shutil.which(env) or os.path.isfile(env) else None
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


class _Pipe:
    """A DevTools session over Chromium's debugging pipe."""

    def __init__(self, browser: str, profile: str):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # move the child's ends above 10 so that dup2 onto 3 and 4 cannot clobber them
        r_high = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        w_high = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r); os.close(from_child_w)

        def wire():  # in the child, before exec
            os.dup2(r_high, 3)
            os.dup2(w_high, 4)

        args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=wire, close_fds=False)
        os.close(r_high); os.close(w_high)
        self.w, self.r = to_child_w, from_child_r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for m in self._read(deadline):
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)

    def _read(self, deadline: float) -> list[dict]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the browser did not answer")
        ready, _, _ = select.select([self.r], [], [], left)
        if not ready:
            raise TimeoutError("the browser did not answer")
        chunk = os.read(self.r, 1 << 20)
        if not chunk:
            raise RuntimeError("the browser closed the pipe")
        self.buf += chunk
        *msgs, self.buf = self.buf.split(b"\0")
        return [json.loads(m) for m in msgs if m]

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method:
                    return self.events.pop(i)
            self.events.extend(self._read(deadline))

    def close(self):
        try:
            os.write(self.w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        os.close(self.w); os.close(self.r)


# Runs in the page: load every image eagerly, wait for each audio element's metadata, measure overflow.
CHECK_JS = """
(async () => {
  const wait = (el, ok, bad) => new Promise(res => {
    el.addEventListener(ok, () => res(null), {once: true});
    el.addEventListener(bad, () => res(el.currentSrc || el.src), {once: true});
  });
  const images = [...document.images];
  const badImages = (await Promise.all(images.map(async img => {
    img.loading = 'eager';
    try { await img.decode(); return img.naturalWidth > 0 ? null : img.src; } catch (e) { return img.src; }
  }))).filter(Boolean);
  const audios = [...document.querySelectorAll('audio')];
  const badAudio = (await Promise.all(audios.map(a => {
    if (a.readyState >= 1) return null;
    const p = wait(a, 'loadedmetadata', 'error'); a.preload = 'metadata'; a.load(); return p;
  }))).filter(Boolean);
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >
      document.documentElement.clientWidth + 1 && !e.closest('.wrap')).slice(0, 5).map(e => e.tagName + '.' + e.className);
  return JSON.stringify({images: images.length, audios: audios.length, badImages, badAudio,
    durations: audios.map(a => a.duration),
    scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
    wideElements: wide, viewport: !!document.querySelector('meta[name=viewport]')});
})()
"""


def inspect_page(path: str | Path, width: int = 420, height: int = 900, screenshot: str | None = None,
                 browser: str | None = None, timeout: float = 60.0) -> dict:
    """Load ``path`` at ``width`` CSS pixels in headless Chromium; return what went wrong (see module doc)."""
    browser = browser or find_browser()
    if not browser:
        raise FileNotFoundError("no Chromium found")
    profile = tempfile.mkdtemp(prefix="vcgraph-browser-")
    pipe = _Pipe(browser, profile)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        sid = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=sid)
        pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": True}, session=sid)
        pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=sid)
        pipe.wait_event("Page.loadEventFired", timeout=timeout)
        res = pipe.send("Runtime.evaluate", {"expression": CHECK_JS, "awaitPromise": True, "returnByValue": True},
                        session=sid, timeout=timeout)
        if "exceptionDetails" in res:
            raise RuntimeError(f"the check script failed: {res['exceptionDetails']}")
        report = json.loads(res["result"]["value"])
        if screenshot:
            shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=sid)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        errors, failed = [], []
        for m in pipe.events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m.get("method") == "Runtime.exceptionThrown":
                errors.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif m.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
            elif m.get("method") == "Network.loadingFailed" and not p.get("canceled"):
                failed.append(p.get("errorText", "failed"))
        report.update(console_errors=errors, failed_requests=failed)
        return report
    finally:
        pipe.close()
        shutil.rmtree(profile, ignore_errors=True)
