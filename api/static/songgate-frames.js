/*
 * songgate-frames.js: reader for songgate spectrum frames (docs/visualizer-format.md), no build step.
 *
 * Classic script: defines window.SonggateFrames (or module.exports under Node/CommonJS).
 *
 *   const frames = SonggateFrames.parse(await (await fetch(url, {headers})).arrayBuffer());
 *   const levels = frames.frame(frames.frameIndexAt(audio.currentTime));  // Uint8Array(bandCount)
 *
 * Live mode: feed AnalyserNode.getByteFrequencyData() output (fftSize, smoothing and dB range set
 * from the header) through bandsFromBins() with the stored bin edges to get the same band levels.
 */
(function (root, factory) {
  "use strict";
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.SonggateFrames = factory();
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  var MAGIC = "SGVF";
  var VERSION = 1;
  var FIXED_HEADER = 40;
  var MEDIA_TYPE = "application/vnd.songgate.frames";

  function FormatError(message) {
    var err = new Error("songgate frames: " + message);
    err.name = "SonggateFramesFormatError";
    return err;
  }

  /**
   * Parse an ArrayBuffer (or typed array) holding spectrum frames.
   * Returns an object with the header fields, edgesHz (Float32Array, bandCount + 1),
   * edgesBin (Uint16Array, bandCount + 1), levels (Uint8Array, frameCount * bandCount, frame-major)
   * and helpers frame(i), frameIndexAt(seconds), timeOf(i).
   */
  function parse(input) {
    var buffer = input instanceof ArrayBuffer ? input : input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength);
    if (buffer.byteLength < FIXED_HEADER) throw FormatError("shorter than the header");
    var view = new DataView(buffer);
    var magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== MAGIC) throw FormatError("bad magic " + JSON.stringify(magic));
    var version = view.getUint16(4, true);
    if (version !== VERSION) throw FormatError("unsupported version " + version);
    var headerSize = view.getUint16(6, true);
    var sampleRate = view.getUint32(8, true);
    var frameCount = view.getUint32(12, true);
    var dataOffset = view.getUint32(16, true);
    var fps = view.getUint16(20, true);
    var bandCount = view.getUint16(22, true);
    var fftSize = view.getUint16(24, true);
    var flags = view.getUint16(26, true);
    var smoothing = view.getFloat32(28, true);
    var minDb = view.getFloat32(32, true);
    var maxDb = view.getFloat32(36, true);
    if (headerSize < FIXED_HEADER || bandCount === 0 || fps === 0) throw FormatError("inconsistent header");
    var edgesEnd = headerSize + 6 * (bandCount + 1);
    if (dataOffset < edgesEnd || buffer.byteLength !== dataOffset + frameCount * bandCount) {
      throw FormatError("size does not match the header");
    }
    var edgesHz = new Float32Array(bandCount + 1);
    var edgesBin = new Uint16Array(bandCount + 1);
    for (var i = 0; i <= bandCount; i++) {
      edgesHz[i] = view.getFloat32(headerSize + 4 * i, true);
      edgesBin[i] = view.getUint16(headerSize + 4 * (bandCount + 1) + 2 * i, true);
    }
    var levels = new Uint8Array(buffer, dataOffset, frameCount * bandCount);
    return {
      version: version,
      sampleRate: sampleRate,
      frameCount: frameCount,
      fps: fps,
      bandCount: bandCount,
      fftSize: fftSize,
      flags: flags,
      smoothing: smoothing,
      minDb: minDb,
      maxDb: maxDb,
      edgesHz: edgesHz,
      edgesBin: edgesBin,
      levels: levels,
      duration: frameCount > 0 ? (frameCount - 1) / fps : 0,
      /** Levels of frame i: a Uint8Array view of bandCount bytes. */
      frame: function (i) {
        var k = Math.max(0, Math.min(frameCount - 1, i | 0));
        return levels.subarray(k * bandCount, (k + 1) * bandCount);
      },
      /** The frame describing playback time t (seconds): the last frame at or before t. */
      frameIndexAt: function (t) {
        if (!(t > 0)) return 0;
        return Math.max(0, Math.min(frameCount - 1, Math.floor(t * fps + 1e-6)));
      },
      timeOf: function (i) {
        return i / fps;
      },
    };
  }

  /**
   * Band levels from AnalyserNode bin bytes: the mean of the bin bytes of each band, rounded half up
   * (the same integer arithmetic as songgate's Python side). `out` is optional.
   */
  function bandsFromBins(binBytes, edgesBin, out) {
    var bands = edgesBin.length - 1;
    var result = out || new Uint8Array(bands);
    for (var b = 0; b < bands; b++) {
      var lo = edgesBin[b];
      var hi = edgesBin[b + 1];
      var sum = 0;
      for (var k = lo; k < hi; k++) sum += binBytes[k];
      var count = hi - lo;
      result[b] = Math.floor((sum + (count >> 1)) / count);
    }
    return result;
  }

  /**
   * Bin edges for an analyser running at another sample rate (e.g. a 48 kHz AudioContext playing a
   * 44.1 kHz file): the stored Hz edges mapped to that rate's bins, kept strictly increasing.
   */
  function binEdgesForRate(edgesHz, fftSize, sampleRate) {
    var n = edgesHz.length;
    var out = new Uint16Array(n);
    var maxBin = fftSize / 2;
    for (var i = 0; i < n; i++) {
      var k = Math.round((edgesHz[i] * fftSize) / sampleRate);
      if (i > 0 && k <= out[i - 1]) k = out[i - 1] + 1;
      out[i] = Math.min(k, maxBin);
    }
    return out;
  }

  return {
    MAGIC: MAGIC,
    VERSION: VERSION,
    MEDIA_TYPE: MEDIA_TYPE,
    parse: parse,
    bandsFromBins: bandsFromBins,
    binEdgesForRate: binEdgesForRate,
  };
});
