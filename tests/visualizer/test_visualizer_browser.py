"""The page at ``/`` in headless Chromium (selenium + the Debian chromium/chromedriver packages).

1. Upload through the page, play, and check that the drawn spectrum frame follows
   ``<audio>.currentTime`` (``window.__songgate``), with no console errors; a screenshot is saved
   under test-artifacts/.
2. Render the same audio through a live ``AnalyserNode`` in an ``OfflineAudioContext`` (deterministic,
   suspended at every frame time like a page polling at the frame rate) and compare its band levels
   with the precomputed bytes: median absolute difference at most 2 levels per band.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from signals import encode

from effects import frames_format

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def driver(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("headless browser tests need the Debian chromium and chromium-driver packages")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--window-size=1100,1200",
    ):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_script_timeout(120)
    try:
        yield drv
    finally:
        drv.quit()


def _music_like(sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Stereo test signal with structure in time and frequency: a rising chord, a kick-like pulse at
    120 BPM, amplitude-modulated noise and a sweep (float32, (2, n))."""
    t = np.arange(int(sr * seconds)) / sr
    chord = sum(0.12 * np.sin(2 * np.pi * f * (1 + 0.05 * t) * t) for f in (220.0, 277.2, 329.6, 440.0))
    beat_phase = (t % 0.5) / 0.5
    kick = 0.5 * np.exp(-beat_phase * 12) * np.sin(2 * np.pi * (60 + 60 * np.exp(-beat_phase * 20)) * t)
    noise = rng.standard_normal(t.size) * 0.05 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) ** 2
    sweep = 0.08 * np.sin(2 * np.pi * (200 * t + 1500 * t**2 / seconds))
    left = chord + kick + noise + sweep
    right = chord + kick + 0.6 * noise - sweep
    return np.stack([left, right]).astype(np.float32) * 0.8


def _checks_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload pipeline runs the recording checks (another issue). Until they exist, a fixed
    report stands in; the visualizer does not depend on it. The pool runs in threads in tests."""
    import audio.checks

    if not hasattr(audio.checks, "run_checks"):
        monkeypatch.setattr(
            audio.checks, "run_checks",
            lambda y, *, sr, kind, settings: {"verdict": "pass", "checks": [], "settings_version": "stand-in"},
            raising=False,
        )  # fmt: skip


def _console_errors(driver) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_page_upload_play_frames_follow_current_time(
    driver,
    app,
    live_server,
    make_key,
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    _checks_stand_in(monkeypatch)
    key = make_key(app, "upload")
    path = encode(_music_like(44100, 8.0, rng), sr=44100, path=tmp_path / "karaoke take.wav")

    driver.get(live_server + "/")
    driver.find_element("id", "api-key").send_keys(key)
    driver.find_element("id", "file").send_keys(str(path))
    driver.find_element("id", "upload").click()
    deadline = time.monotonic() + 90
    while not driver.execute_script("return window.__songgate.ready"):
        status = driver.find_element("id", "status").text
        assert "failed" not in status, status
        assert time.monotonic() < deadline, f"page never became ready: {status}"
        time.sleep(0.2)
    fps = driver.execute_script("return window.__songgate.frames.fps")
    assert fps == 30
    assert driver.find_element("id", "verdict").text != ""

    driver.execute_script("return document.getElementById('player').play()")
    samples = []
    deadline = time.monotonic() + 30
    while len(samples) < 12 and time.monotonic() < deadline:
        time.sleep(0.25)
        s = driver.execute_script(
            "var s = window.__songgate, a = document.getElementById('player');"
            "var f = s.frames.frame(s.lastFrameIndex);"
            "return {t: s.lastDrawTime, i: s.lastFrameIndex, now: a.currentTime, drawn: s.framesDrawn,"
            " same: s.lastLevels !== null && Array.prototype.every.call(f, function (v, k) { return v === s.lastLevels[k]; })};"
        )
        if s["t"] > 0.2:
            samples.append(s)
    assert len(samples) >= 8, f"audio did not play: {samples}"
    for s in samples:
        assert s["i"] == int(np.floor(s["t"] * fps + 1e-6)), s  # the drawn frame is the one for its time
        assert abs(s["now"] - s["t"]) < 0.25, s  # drawing keeps up with playback
        assert s["same"], s  # and shows exactly the precomputed bytes of that frame
    indices = [s["i"] for s in samples]
    assert indices == sorted(indices) and indices[-1] - indices[0] >= fps  # moves with playback (>= 1 s)
    assert samples[-1]["drawn"] > samples[0]["drawn"]

    # the stored-recordings picker lists the upload
    driver.find_element("id", "refresh").click()
    deadline = time.monotonic() + 10
    while len(driver.find_elements("css selector", "#recordings option")) < 2:
        assert time.monotonic() < deadline, "stored recordings were not listed"
        time.sleep(0.1)
    assert "karaoke take.wav" in driver.find_element("id", "recordings").text

    ARTIFACTS.mkdir(exist_ok=True)
    driver.execute_script("document.getElementById('player-panel').scrollIntoView()")
    time.sleep(0.3)
    driver.save_screenshot(str(ARTIFACTS / "visualizer-page.png"))
    assert _console_errors(driver) == []
    assert driver.execute_script("return window.__songgate.errors") == []


LIVE_ANALYSER_JS = """
const [url, key, header, done] = arguments;
(async () => {
  const frames = SonggateFrames.parse(new Uint8Array(header.map(Number)));
  const wav = await (await fetch(url, {headers: {Authorization: 'Bearer ' + key}})).arrayBuffer();
  const probe = new OfflineAudioContext(1, 1, frames.sampleRate);
  const buffer = await probe.decodeAudioData(wav);
  const ctx = new OfflineAudioContext(buffer.numberOfChannels, buffer.length, frames.sampleRate);
  const src = ctx.createBufferSource();
  src.buffer = buffer;
  const an = ctx.createAnalyser();
  an.fftSize = frames.fftSize;
  an.smoothingTimeConstant = frames.smoothing;
  an.minDecibels = frames.minDb;
  an.maxDecibels = frames.maxDb;
  src.connect(an);
  an.connect(ctx.destination);
  const bins = new Uint8Array(an.frequencyBinCount);
  const out = [];
  const last = Math.floor((buffer.length / frames.sampleRate) * frames.fps) - 1;
  for (let i = 1; i <= last; i++) {
    ctx.suspend(i / frames.fps).then(() => {
      an.getByteFrequencyData(bins);
      out.push([i, Array.from(SonggateFrames.bandsFromBins(bins, frames.edgesBin))]);
      ctx.resume();
    });
  }
  src.start(0);
  await ctx.startRendering();
  done({ok: true, sampleRate: ctx.sampleRate, frames: out});
})().catch((e) => done({ok: false, error: String(e && e.stack || e)}));
"""


def test_live_analyser_matches_precomputed_bytes(
    driver, app, live_server, make_key, tmp_path: Path, rng: np.random.Generator
) -> None:  # type: ignore[no-untyped-def]
    from test_effects_api import _store

    key = make_key(app, "claim")
    rec = _store(app, encode(_music_like(44100, 6.0, rng), sr=44100, path=tmp_path / "take.wav"))
    req = urllib.request.Request(
        f"{live_server}/v1/recordings/{rec['id']}/visualizer", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        blob = resp.read()
    pre = frames_format.decode(blob)

    driver.get(live_server + "/")
    # The page only needs the header and band edges: send them as a file with zero frames.
    header_only = bytearray(blob[: _data_offset(blob)])
    header_only[12:16] = (0).to_bytes(4, "little")
    result = driver.execute_async_script(
        LIVE_ANALYSER_JS, f"{live_server}/v1/recordings/{rec['id']}/audio", key, list(header_only)
    )
    assert result["ok"], result.get("error")
    assert result["sampleRate"] == pre.sample_rate
    live = {i: np.array(levels) for i, levels in result["frames"]}
    assert len(live) >= 6 * pre.fps - 5  # a frame for (nearly) every frame time
    idx = np.array(sorted(live))
    live_levels = np.stack([live[i] for i in idx]).astype(int)
    diff = np.abs(live_levels - pre.levels[idx].astype(int))
    per_band_median = np.median(diff, axis=0)
    report = {
        "median_per_band_max": float(per_band_median.max()),
        "mean_abs_diff": float(diff.mean()),
        "p95_abs_diff": float(np.percentile(diff, 95)),
        "frames_compared": int(len(idx)),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "live-vs-precomputed.json").write_text(json.dumps(report, indent=2))
    assert per_band_median.max() <= 2, report
    assert report["mean_abs_diff"] < 1.0, report  # in practice identical bar rounding (see docs)
    # The signal is loud enough that this compares real levels, not two floors of zeros.
    assert pre.levels[idx].mean() > 60
    assert _console_errors(driver) == []


def _data_offset(blob: bytes) -> int:
    return int.from_bytes(blob[16:20], "little")
