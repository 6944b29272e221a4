/*
 * songgate page: upload or pick a recording, show its check report, play it with a spectrum drawn
 * from the precomputed frames (or a live AnalyserNode), the waveform with a cursor, and beat pulses.
 *
 * The API needs "Authorization: Bearer <key>"; an <audio> element cannot send headers, so the audio
 * is fetched as a blob and played from an object URL. State for tests lives on window.__songgate.
 */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var state = (window.__songgate = {
    ready: false,
    recordingId: null,
    mode: "precomputed",
    frames: null,
    waveform: null,
    beats: null,
    lastFrameIndex: -1,
    lastDrawTime: -1,
    framesDrawn: 0,
    lastLevels: null,
    errors: [],
  });
  var audio = $("player");
  var spectrum = $("spectrum");
  var waveCanvas = $("waveform");
  var waveImage = null;
  var live = { ctx: null, analyser: null, source: null, bins: null, edges: null };
  var objectUrl = null;

  window.addEventListener("error", function (e) { state.errors.push(String(e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) { state.errors.push(String(e.reason)); });

  // --- API helpers ---------------------------------------------------------------------------
  var keyInput = $("api-key");
  keyInput.value = sessionStorage.getItem("songgate-key") || "";
  keyInput.addEventListener("change", function () { sessionStorage.setItem("songgate-key", keyInput.value.trim()); });

  function authHeaders() {
    var key = keyInput.value.trim();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function setStatus(text, isError) {
    var el = $("status");
    el.textContent = text;
    el.className = isError ? "error" : "";
  }

  async function api(path, options) {
    var opts = options || {};
    var headers = Object.assign({}, authHeaders(), opts.headers || {});
    var resp = await fetch(path, Object.assign({}, opts, { headers: headers }));
    if (!resp.ok) {
      var detail = resp.status + " " + resp.statusText;
      try {
        var problem = await resp.json();
        detail = (problem.title || detail) + (problem.detail ? ": " + problem.detail : "");
      } catch (ignored) { /* not JSON */ }
      var err = new Error(detail);
      err.status = resp.status;
      throw err;
    }
    return resp;
  }

  // --- source: upload or stored --------------------------------------------------------------
  $("upload-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var form = new FormData();
    form.append("user_id", $("user-id").value);
    form.append("song_id", $("song-id").value);
    form.append("kind", $("kind").value);
    form.append("file", $("file").files[0]);
    $("upload").disabled = true;
    setStatus("uploading and checking…");
    try {
      var rec = await (await api("/v1/recordings", { method: "POST", body: form })).json();
      await loadRecording(rec);
    } catch (e) {
      setStatus("upload failed: " + e.message, true);
    } finally {
      $("upload").disabled = false;
    }
  });

  $("refresh").addEventListener("click", async function () {
    try {
      var list = await (await api("/v1/recordings?limit=50")).json();
      var select = $("recordings");
      select.length = 1;
      list.items.forEach(function (r) {
        var opt = document.createElement("option");
        opt.value = r.id;
        opt.textContent = (r.filename || r.id) + " · " + r.duration_s.toFixed(1) + " s · " + r.user_id;
        select.appendChild(opt);
      });
      setStatus(list.items.length + " recordings");
    } catch (e) {
      setStatus("could not list recordings: " + e.message, true);
    }
  });

  $("recordings").addEventListener("change", async function (ev) {
    if (!ev.target.value) return;
    try {
      var rec = await (await api("/v1/recordings/" + encodeURIComponent(ev.target.value))).json();
      await loadRecording(rec);
    } catch (e) {
      setStatus("could not load: " + e.message, true);
    }
  });

  function showReport(rec) {
    var report = rec.report || {};
    $("report-panel").hidden = false;
    var verdict = $("verdict");
    verdict.textContent = report.verdict || "n/a";
    verdict.className = "verdict " + (report.verdict || "");
    $("report").textContent = JSON.stringify(report, null, 2);
    var body = $("checks").querySelector("tbody");
    body.textContent = "";
    var checks = report.checks || [];
    var rows = Array.isArray(checks)
      ? checks
      : Object.keys(checks).map(function (k) { return Object.assign({ name: k }, checks[k]); });
    var counts = {};
    var notable = [];
    rows.forEach(function (c) {
      var status = c.status || c.verdict || c.result || "";
      counts[status] = (counts[status] || 0) + 1;
      if (status && status !== "pass") notable.push((c.name || c.id || c.code) + " (" + status + ")");
    });
    $("check-summary").textContent = rows.length + " checks: " + Object.keys(counts).map(function (k) {
      return counts[k] + " " + k;
    }).join(", ") + (notable.length ? " · " + notable.join(", ") : "");
    rows.forEach(function (c) {
      var tr = document.createElement("tr");
      [c.name || c.id || c.code || "", c.status || c.verdict || c.result || "", c.detail || c.message || c.reason || ""]
        .forEach(function (text) {
          var td = document.createElement("td");
          td.textContent = typeof text === "string" ? text : JSON.stringify(text);
          tr.appendChild(td);
        });
      body.appendChild(tr);
    });
  }

  async function loadRecording(rec) {
    state.ready = false;
    state.recordingId = rec.id;
    showReport(rec);
    setStatus("loading audio and visualizer data…");
    var base = "/v1/recordings/" + encodeURIComponent(rec.id);
    var results = await Promise.all([
      api(base + "/audio").then(function (r) { return r.blob(); }),
      api(base + "/visualizer").then(function (r) { return r.arrayBuffer(); }),
      api(base + "/waveform.json").then(function (r) { return r.json(); }),
      api(base + "/beats").then(function (r) { return r.json(); }),
    ]);
    state.frames = SonggateFrames.parse(results[1]);
    state.waveform = results[2];
    state.beats = results[3];
    state.lastFrameIndex = -1;
    state.framesDrawn = 0;
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(results[0]);
    audio.src = objectUrl;
    $("player-panel").hidden = false;
    $("tempo").textContent = state.beats.tempo_bpm ? state.beats.tempo_bpm.toFixed(1) + " BPM" : "";
    waveImage = renderWaveform(state.waveform);
    await new Promise(function (resolve) {
      if (audio.readyState >= 1) resolve();
      else audio.addEventListener("loadedmetadata", resolve, { once: true });
    });
    state.ready = true;
    setStatus("ready: " + (rec.filename || rec.id) + " · " + state.frames.frameCount + " frames at " +
      state.frames.fps + " fps × " + state.frames.bandCount + " bands");
  }

  // --- live analyser -------------------------------------------------------------------------
  document.querySelectorAll('input[name="mode"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      state.mode = radio.value;
      if (state.mode === "live") ensureLive();
    });
  });

  function ensureLive() {
    if (live.ctx || !state.frames) return;
    var f = state.frames;
    live.ctx = new AudioContext();
    live.source = live.ctx.createMediaElementSource(audio);
    live.analyser = live.ctx.createAnalyser();
    live.analyser.fftSize = f.fftSize;
    live.analyser.smoothingTimeConstant = f.smoothing;
    live.analyser.minDecibels = f.minDb;
    live.analyser.maxDecibels = f.maxDb;
    live.source.connect(live.analyser);
    live.analyser.connect(live.ctx.destination);
    live.bins = new Uint8Array(live.analyser.frequencyBinCount);
    live.edges = live.ctx.sampleRate === f.sampleRate
      ? f.edgesBin
      : SonggateFrames.binEdgesForRate(f.edgesHz, f.fftSize, live.ctx.sampleRate);
    live.levels = new Uint8Array(f.bandCount);
  }

  audio.addEventListener("play", function () { if (live.ctx) live.ctx.resume(); });

  // --- drawing -------------------------------------------------------------------------------
  function renderWaveform(wf) {
    var off = document.createElement("canvas");
    off.width = waveCanvas.width;
    off.height = waveCanvas.height;
    var g = off.getContext("2d");
    var channels = wf.channels || 1;
    var full = wf.bits === 8 ? 128 : 32768;
    var mid = off.height / 2;
    g.fillStyle = "#3a86ff";
    for (var x = 0; x < off.width; x++) {
      var p0 = Math.floor((x / off.width) * wf.length);
      var p1 = Math.max(p0 + 1, Math.floor(((x + 1) / off.width) * wf.length));
      var lo = 0, hi = 0;
      for (var p = p0; p < p1 && p < wf.length; p++) {
        for (var c = 0; c < channels; c++) {
          var at = 2 * (p * channels + c);
          if (wf.data[at] < lo) lo = wf.data[at];
          if (wf.data[at + 1] > hi) hi = wf.data[at + 1];
        }
      }
      var top = mid - (hi / full) * mid;
      var bottom = mid - (lo / full) * mid;
      g.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    return off;
  }

  function lastBeatBefore(t) {
    var beats = state.beats && state.beats.beats_s;
    if (!beats || !beats.length || t < beats[0]) return -1;
    var lo = 0, hi = beats.length - 1;
    while (lo < hi) {
      var m = (lo + hi + 1) >> 1;
      if (beats[m] <= t) lo = m; else hi = m - 1;
    }
    return beats[lo];
  }

  function onsetAt(t) {
    var env = state.beats && state.beats.onset_envelope;
    if (!env || !env.values.length) return 0;
    var i = Math.min(env.values.length - 1, Math.max(0, Math.floor(t * env.frame_rate_hz)));
    return env.values[i];
  }

  function draw() {
    requestAnimationFrame(draw);
    var f = state.frames;
    if (!state.ready || !f) return;
    var t = audio.currentTime;
    var levels;
    var index = f.frameIndexAt(t);
    if (state.mode === "live" && live.analyser) {
      live.analyser.getByteFrequencyData(live.bins);
      levels = SonggateFrames.bandsFromBins(live.bins, live.edges, live.levels);
    } else {
      levels = f.frame(index);
    }
    state.lastFrameIndex = index;
    state.lastDrawTime = t;
    state.lastLevels = levels;
    state.framesDrawn++;

    var g = spectrum.getContext("2d");
    var w = spectrum.width, h = spectrum.height;
    g.clearRect(0, 0, w, h);
    var bw = w / f.bandCount;
    var beat = lastBeatBefore(t);
    var pulse = beat >= 0 ? Math.exp(-(t - beat) / 0.12) : 0;
    for (var b = 0; b < f.bandCount; b++) {
      var v = levels[b] / 255;
      var hue = 340 - 200 * (b / f.bandCount);
      g.fillStyle = "hsl(" + hue + ", 85%, " + (45 + 20 * pulse) + "%)";
      g.fillRect(b * bw + 1, h - v * h, bw - 2, v * h);
    }
    $("pulse").style.opacity = String(0.15 + 0.85 * pulse);
    $("pulse").style.transform = "scale(" + (0.6 + 0.5 * pulse + 0.3 * onsetAt(t)) + ")";
    $("frame-info").textContent = "t=" + t.toFixed(2) + " s · frame " + index + "/" + (f.frameCount - 1) +
      " · " + state.mode;

    var wg = waveCanvas.getContext("2d");
    wg.clearRect(0, 0, waveCanvas.width, waveCanvas.height);
    if (waveImage) wg.drawImage(waveImage, 0, 0);
    var duration = audio.duration || f.duration || 1;
    var x = Math.min(waveCanvas.width - 1, (t / duration) * waveCanvas.width);
    wg.fillStyle = "#ff4d6d";
    wg.fillRect(x, 0, 2, waveCanvas.height);
  }
  requestAnimationFrame(draw);
})();
