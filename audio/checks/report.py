"""The recording report: every check on one signal, graded against :class:`CheckSettings`.

:class:`CheckStream` takes the signal block by block (as a file is decoded) and keeps only
bounded state: the fused per-frame pass (:mod:`audio.checks.scan`), the full-scale run tracker,
the true-peak search, <= 192 analysis frames for the bandwidth spectrum, the decimated mono for
hum and, for vocals, the 8 kHz mono for the VAD. Every check is then derived from that state, so a
10-minute file never exists in memory at once. ``run_checks`` feeds a whole array the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from audio.checks import bandwidth as bw
from audio.checks import clipping, hum, noise, silence, stereo, truepeak
from audio.checks.config import CheckSettings, KindThresholds
from audio.checks.dc import dc_offsets
from audio.checks.loudness import REASON_SILENT, LoudnessStats, loudness_from_stats
from audio.checks.model import Check, Verdict, above, at_least, below, rnd, worst
from audio.checks.scan import FrameStats, Scanner, last_boundary
from audio.checks.vad import VadFeed, speech_duration
from audio.checks.validate import MAX_CHANNELS, as_array, check_rate
from audio.errors import EmptyAudio, InvalidSignal
from core.errors import InvalidRequest

KINDS = ("mix", "vocal")
CHUNK = 1 << 17  # samples per channel per pass (~3 s at 44.1 kHz): bounds the per-block temporaries

_NULL_WHY = {
    REASON_SILENT: "the signal is silent",
    "too_short": "the signal is too short",
}


class CheckStream:
    """Check a recording fed block by block.

    Parameters
    ----------
    sr : sample rate, Hz
    channels : channel count
    kind : "mix" (a full song) or "vocal" (a solo voice take; adds ``vocal.*``)
    settings : thresholds; defaults to ``CheckSettings()``
    expected : samples per channel expected (a header's claim; 0: unknown); only sizes buffers

    Raises
    ------
    InvalidSampleRate, InvalidSignal (channel count), InvalidRequest (unknown kind)
    """

    def __init__(
        self,
        *,
        sr: int,
        channels: int,
        kind: str = "mix",
        settings: CheckSettings | None = None,
        expected: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {KINDS}, got {kind!r}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise InvalidSignal(f"expected 1 to {MAX_CHANNELS} channels, got {channels}")
        self.sr, self.channels, self.kind = check_rate(sr), channels, kind
        self.settings = settings or CheckSettings()
        s = self.settings
        self._scanner = Scanner(
            sr=self.sr,
            channels=channels,
            min_zero=max(1, int(round(s.dropout_min_zero_ms * self.sr / 1000.0))),
            hum=True,
            expected=expected,
        )
        self._clips = clipping.ClipTracker(s)
        self._true_peak = truepeak.TruePeakTracker(channels)
        self._spectrum = bw.SpectrumSampler(
            sr=self.sr, channels=channels, silence_dbfs=s.silence_threshold_dbfs
        )
        self._vad = VadFeed(sr=self.sr, backend=s.vad_backend, expected=expected) if kind == "vocal" else None
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def feed(self, block: np.ndarray) -> None:
        """Add samples: float32 [shape=(channels, m)], full scale 1.0.

        Raises
        ------
        InvalidSignal : wrong dtype or shape, NaN or infinite samples
        """
        if not isinstance(block, np.ndarray) or block.dtype != np.float32:
            raise InvalidSignal(
                f"expected float32 samples, got {getattr(block, 'dtype', type(block).__name__)}"
            )
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise InvalidSignal(f"expected shape ({self.channels}, m), got {block.shape}")
        if block.shape[1] == 0:
            return
        self._pending.append(block)
        self._pending_n += block.shape[1]
        if self._pending_n >= CHUNK:
            self._drain(last=False)

    def finish(self) -> dict[str, Any]:
        """The report (see :func:`run_checks`); call once, after the last block.

        Raises
        ------
        EmptyAudio : nothing was fed
        """
        self._drain(last=True)
        n, sr = self._scanner.n, self.sr
        if n == 0:
            raise EmptyAudio("the signal has no samples")
        stats = self._scanner.result()
        settings, t = self.settings, self.settings.for_kind(self.kind)
        levels = silence.frame_levels(stats)
        peak = max(self._clips.hi, -self._clips.lo)

        checks: list[Check] = []
        checks += _format_checks(stats, t, settings)
        checks += _loudness_checks(loudness_from_stats(stats), t, settings)
        checks += _peak_checks(self._true_peak.best, peak, settings)
        checks += _clipping_checks(self._clips.result(n), sr, settings)
        checks += _silence_checks(stats, levels, t, settings)
        checks += _dc_checks(stats, settings)
        checks += _noise_checks(stats, t, settings)
        checks += _bandwidth_checks(self._spectrum.frames(), stats, levels, settings)
        checks += _hum_checks(stats, settings)
        if self._vad is not None:
            checks += _vocal_checks(self._vad.segments(), n / sr, t, settings)

        return {
            "verdict": worst([c.verdict for c in checks]),
            "settings_version": settings.version,
            "kind": self.kind,
            "duration_s": round(n / sr, 3),
            "sample_rate": sr,
            "channels": self.channels,
            "checks": [c.to_dict() for c in checks],
        }

    def _drain(self, *, last: bool) -> None:
        """Run the passes over pending samples in chunks that end on the 10 ms frame grid."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
        self._pending, self._pending_n = [], 0
        pos, total = 0, data.shape[1]
        while pos < total:
            offset = self._scanner.n
            want = min(total - pos, CHUNK)
            if pos + want == total and last:
                m = want
            else:
                m = last_boundary(offset + want, self.sr) - offset
                if m <= 0:  # less than one frame left: keep it for the next block
                    break
            self._process(data[:, pos : pos + m], last=last and pos + m == total)
            pos += m
        if pos < total:
            self._pending, self._pending_n = [data[:, pos:]], total - pos

    def _process(self, x: np.ndarray, *, last: bool) -> None:
        offset = self._scanner.n
        block = self._scanner.feed(x, last=last)
        if not block.finite:
            raise InvalidSignal("the signal contains NaN or infinite samples")
        self._clips.feed(x, offset, (block.bounds, block.fmax, block.fmin))
        self._true_peak.feed(x, offset, block.bounds, block.peak)
        levels = silence.levels_of(block.rpow, np.diff(block.bounds))
        self._spectrum.feed(x, offset, block.bounds[:-1], levels)
        if self._vad is not None:
            self._vad.feed(x)


def run_checks(
    y: np.ndarray, *, sr: int, kind: str = "mix", settings: CheckSettings | None = None
) -> dict[str, Any]:
    """Check a recording held in memory.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], float32 (other float dtypes are converted),
        full scale 1.0, at its native rate (``audio.decode.decode_file(...).samples``)
    sr : sample rate, Hz
    kind : "mix" (a full song) or "vocal" (a solo voice take; adds ``vocal.*``)
    settings : thresholds; defaults to ``CheckSettings()``

    Returns
    -------
    dict, JSON-serialisable: ``verdict`` (pass|warn|fail, the worst check), ``settings_version``,
    ``kind``, ``duration_s``, ``sample_rate``, ``channels`` and ``checks``, a list of
    ``{code, value, unit, verdict, message}``. Values are finite numbers or null.

    Raises
    ------
    InvalidSignal, EmptyAudio, InvalidSampleRate, InvalidRequest (unknown kind)
    """
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {KINDS}, got {kind!r}")
    y, sr = as_array(y, sr=sr)  # NaN / inf are found by the stream's own pass
    stream = CheckStream(sr=sr, channels=y.shape[0], kind=kind, settings=settings, expected=y.shape[1])
    stream.feed(y)
    return stream.finish()


def check_blocks(
    blocks: Iterable[np.ndarray],
    *,
    sr: int,
    channels: int,
    kind: str = "mix",
    settings: CheckSettings | None = None,
    expected: int = 0,
) -> dict[str, Any]:
    """Check a recording given as float32 ``(channels, m)`` blocks (e.g. a decoder's output)."""
    stream = CheckStream(sr=sr, channels=channels, kind=kind, settings=settings, expected=expected)
    for block in blocks:
        stream.feed(block)
    return stream.finish()


def check_file(
    path: str | os.PathLike[str],
    *,
    kind: str = "mix",
    settings: CheckSettings | None = None,
    limits: Any = None,
) -> tuple[dict[str, Any], Any]:
    """Decode ``path`` block by block and check it without holding the decoded signal.

    Returns
    -------
    (report, :class:`audio.decode.AudioInfo`)

    Raises
    ------
    the decoder's errors (UnsupportedFormat, CorruptAudio, TooLong, ...) and run_checks' errors
    """
    from audio.decode import open_stream

    stream = open_stream(path, limits=limits)
    info = stream.info
    # the header's duration sizes buffers only (capped by the limit); a lying header costs nothing
    limit = int(stream.max_frames)
    expected = min(int((info.declared_duration_s or 0.0) * info.sample_rate * 1.02), limit)
    report = check_blocks(
        stream, sr=info.sample_rate, channels=info.channels, kind=kind, settings=settings, expected=expected
    )
    return report, info


# --- format ------------------------------------------------------------------------------


def _format_checks(stats: FrameStats, t: KindThresholds, s: CheckSettings) -> list[Check]:
    dur = stats.n / stats.sr
    v: Verdict
    if dur < t.min_duration_s:
        v, msg = "fail", f"{dur:.2f} s is shorter than the {t.min_duration_s:g} s minimum"
    elif dur > t.max_duration_s:
        v, msg = "fail", f"{dur:.1f} s is longer than the {t.max_duration_s:g} s maximum"
    else:
        v, msg = "pass", f"{dur:.2f} s"
    out = [Check("format.duration", rnd(dur, 3), "s", v, msg)]

    sr = stats.sr
    if sr < t.min_sample_rate_hz:
        v, msg = "fail", f"{sr} Hz is below the {t.min_sample_rate_hz} Hz minimum"
    elif sr < t.recommended_sample_rate_hz:
        v, msg = "warn", f"{sr} Hz is below the recommended {t.recommended_sample_rate_hz} Hz"
    else:
        v, msg = "pass", f"{sr} Hz"
    out.append(Check("format.sample_rate", sr, "Hz", v, msg))

    c = stats.channels
    if c > t.max_channels:
        out.append(Check("format.channels", c, "count", "fail", f"{c} channels; at most {t.max_channels}"))
    else:
        out.append(Check("format.channels", c, "count", "pass", "mono" if c == 1 else f"{c} channels"))

    st = stereo.stereo_stats(stats)
    if st is None:
        out.append(Check("format.false_stereo", None, "dB", "pass", "not a two-channel file"))
        out.append(Check("format.channel_imbalance", None, "dB", "pass", "not a two-channel file"))
        return out
    if st.side_mid_db is None:
        out.append(Check("format.false_stereo", None, "dB", "pass", "both channels are silent"))
    elif st.side_mid_db <= s.false_stereo_side_db:
        out.append(
            Check(
                "format.false_stereo",
                rnd(st.side_mid_db),
                "dB",
                "warn",
                f"left and right are practically identical (side {st.side_mid_db:.1f} dB below mid): "
                "mono content stored as stereo",
            )
        )
    elif st.side_mid_db >= 20.0:
        out.append(
            Check(
                "format.false_stereo",
                rnd(st.side_mid_db),
                "dB",
                "warn",
                f"left and right cancel when mixed to mono (side {st.side_mid_db:.1f} dB above mid): "
                "one channel is polarity-inverted",
            )
        )
    else:
        out.append(
            Check(
                "format.false_stereo",
                rnd(st.side_mid_db),
                "dB",
                "pass",
                f"real stereo (side {st.side_mid_db:.1f} dB re mid)",
            )
        )
    if st.imbalance_db is None:
        out.append(Check("format.channel_imbalance", None, "dB", "pass", "both channels are silent"))
    else:
        v = above(st.imbalance_db, warn=s.channel_imbalance_warn_db, fail=s.channel_imbalance_fail_db)
        msg = (
            "one channel is silent"
            if st.imbalance_db >= 120.0
            else f"channel levels differ by {st.imbalance_db:.1f} dB"
        )
        out.append(Check("format.channel_imbalance", rnd(st.imbalance_db), "dB", v, msg))
    return out


# --- loudness and peaks ---------------------------------------------------------------------


def _null(code: str, unit: str, reason: str | None, verdict: Verdict = "warn") -> Check:
    why = _NULL_WHY.get(reason or "", reason or "not measurable")
    if reason == REASON_SILENT and code.startswith("loudness."):
        why = "no block above the -70 LUFS absolute gate (silence)"
    if reason == "too_short":
        why = {
            "loudness.integrated": "shorter than one 400 ms gating block",
            "loudness.momentary_max": "shorter than one 400 ms block",
            "loudness.range": "shorter than one 3 s short-term window",
            "loudness.short_term_max": "shorter than one 3 s short-term window",
        }.get(code, why)
    return Check(code, None, unit, verdict, why)


def _loudness_checks(ls: LoudnessStats, t: KindThresholds, s: CheckSettings) -> list[Check]:
    out = []
    v: Verdict
    if ls.integrated is None:
        out.append(
            _null(
                "loudness.integrated",
                "LUFS",
                ls.integrated_reason,
                "fail" if ls.integrated_reason == REASON_SILENT else "warn",
            )
        )
    else:
        i = ls.integrated
        if t.integrated_fail_below_lufs is not None and i < t.integrated_fail_below_lufs:
            v, msg = "fail", f"{i:.1f} LUFS is far too quiet (below {t.integrated_fail_below_lufs:g} LUFS)"
        elif t.integrated_warn_below_lufs is not None and i < t.integrated_warn_below_lufs:
            v, msg = "warn", f"{i:.1f} LUFS is quiet (below {t.integrated_warn_below_lufs:g} LUFS)"
        elif t.integrated_warn_above_lufs is not None and i > t.integrated_warn_above_lufs:
            v, msg = "warn", f"{i:.1f} LUFS is very loud (above {t.integrated_warn_above_lufs:g} LUFS)"
        else:
            v, msg = "pass", f"{i:.1f} LUFS"
        out.append(Check("loudness.integrated", rnd(i), "LUFS", v, msg))

    if ls.range is None:
        reason = ls.range_reason
        out.append(_null("loudness.range", "LU", reason, "warn" if reason == REASON_SILENT else "pass"))
    else:
        v = above(ls.range, warn=s.loudness_range_warn_above_lu, fail=None)
        msg = f"{ls.range:.1f} LU" + (" (very wide dynamics)" if v != "pass" else "")
        out.append(Check("loudness.range", rnd(ls.range), "LU", v, msg))

    for code, value, reason in (
        ("loudness.momentary_max", ls.momentary_max, ls.momentary_reason),
        ("loudness.short_term_max", ls.short_term_max, ls.short_term_reason),
    ):
        if value is None:
            short_ok = reason == "too_short" and code == "loudness.short_term_max"
            out.append(_null(code, "LUFS", reason, "pass" if short_ok else "warn"))
        else:
            out.append(Check(code, rnd(value), "LUFS", "pass", f"{value:.1f} LUFS"))
    return out


def _peak_checks(true_peak: float, peak: float, s: CheckSettings) -> list[Check]:
    if peak == 0.0:
        return [
            Check("peak.true", None, "dBTP", "warn", "digital silence"),
            Check("peak.sample", None, "dBFS", "warn", "digital silence"),
        ]
    sp = 20.0 * float(np.log10(peak))
    tp = truepeak.to_db(true_peak) or sp  # >= sample peak > 0
    v = above(tp, warn=s.true_peak_warn_above_dbtp, fail=s.true_peak_fail_above_dbtp)
    msg = (
        f"{tp:.1f} dBTP"
        + {
            "pass": "",
            "warn": f" (above {s.true_peak_warn_above_dbtp} dBTP: may clip after lossy encoding)",
            "fail": f" (above {s.true_peak_fail_above_dbtp} dBTP: inter-sample clipping)",
        }[v]
    )
    return [
        Check("peak.true", rnd(tp), "dBTP", v, msg),
        Check("peak.sample", rnd(sp), "dBFS", "pass", f"{sp:.2f} dBFS"),
    ]


# --- clipping, silence, dropouts, DC, noise ---------------------------------------------------


def _clipping_checks(cs: clipping.ClipStats, sr: int, s: CheckSettings) -> list[Check]:
    v_count = at_least(cs.count, warn=s.clip_count_warn, fail=s.clip_count_fail)
    v_share = above(cs.share, warn=None, fail=s.clip_share_fail)
    desc = f"runs of >= {s.clip_min_run} samples flat at the peak"
    return [
        Check(
            "clipping.count",
            cs.count,
            "count",
            v_count,
            f"{cs.count} clipped run(s) ({desc})" if cs.count else "no clipping",
        ),
        Check(
            "clipping.longest_run",
            cs.longest,
            "samples",
            "pass",
            f"longest clipped run {cs.longest} samples ({cs.longest / sr * 1000:.2f} ms)"
            if cs.count
            else "no clipping",
        ),
        Check(
            "clipping.share",
            rnd(cs.share, 6),
            "ratio",
            v_share,
            f"{cs.share * 100:.3f} % of the duration is clipped",
        ),
    ]


def _silence_checks(
    stats: FrameStats, levels: np.ndarray, t: KindThresholds, s: CheckSettings
) -> list[Check]:
    ss = silence.silence_stats(stats, levels, threshold_dbfs=s.silence_threshold_dbfs)
    thr = f"below {s.silence_threshold_dbfs:g} dBFS"
    out = [
        Check(
            "silence.leading",
            rnd(ss.leading_s, 3),
            "s",
            above(ss.leading_s, warn=t.leading_silence_warn_s, fail=None),
            f"{ss.leading_s:.2f} s of leading silence ({thr})",
        ),
        Check(
            "silence.trailing",
            rnd(ss.trailing_s, 3),
            "s",
            above(ss.trailing_s, warn=t.trailing_silence_warn_s, fail=None),
            f"{ss.trailing_s:.2f} s of trailing silence ({thr})",
        ),
        Check(
            "silence.share",
            rnd(ss.share, 4),
            "ratio",
            "fail"
            if ss.all_silent
            else above(ss.share, warn=t.silence_share_warn, fail=t.silence_share_fail),
            "the whole signal is silent"
            if ss.all_silent
            else f"{ss.share * 100:.1f} % of the duration is silent",
        ),
    ]
    drops = silence.find_dropouts(stats, levels, s)
    v = at_least(len(drops), warn=s.dropouts_warn, fail=s.dropouts_fail)
    if drops:
        where = ", ".join(f"{d.start_s:.2f} s ({d.duration_s * 1000:.0f} ms {d.kind})" for d in drops[:5])
        more = f" and {len(drops) - 5} more" if len(drops) > 5 else ""
        msg = f"{len(drops)} dropout(s) at {where}{more}"
    else:
        msg = "no dropouts"
    longest = max((d.duration_s for d in drops), default=0.0)
    out.append(Check("dropouts.count", len(drops), "count", v, msg))
    out.append(
        Check(
            "dropouts.longest",
            rnd(longest, 3),
            "s",
            "pass",
            f"longest dropout {longest * 1000:.0f} ms" if drops else "no dropouts",
        )
    )
    return out


def _dc_checks(stats: FrameStats, s: CheckSettings) -> list[Check]:
    offsets = dc_offsets(stats)
    worst_dc = float(np.abs(offsets).max())
    v = at_least(worst_dc, warn=s.dc_warn_fs, fail=s.dc_fail_fs)
    per = ", ".join(f"{o:+.5f}" for o in offsets)
    return [Check("dc.offset", rnd(worst_dc, 6), "FS", v, f"mean per channel {per} of full scale")]


def _noise_checks(stats: FrameStats, t: KindThresholds, s: CheckSettings) -> list[Check]:
    ns = noise.noise_stats(
        stats,
        frame_ms=s.noise_frame_ms,
        noise_percentile=s.noise_percentile,
        signal_percentile=s.signal_percentile,
    )
    if ns.floor_dbfs is None or ns.snr_db is None:
        return [_null("noise.floor", "dBFS", ns.reason), _null("noise.snr", "dB", ns.reason)]
    vf = above(ns.floor_dbfs, warn=t.noise_floor_warn_dbfs, fail=t.noise_floor_fail_dbfs)
    vs = below(ns.snr_db, warn=t.snr_warn_db, fail=t.snr_fail_db)
    return [
        Check(
            "noise.floor",
            rnd(ns.floor_dbfs),
            "dBFS",
            vf,
            f"noise floor {ns.floor_dbfs:.1f} dBFS ({s.noise_percentile:g}th percentile of "
            f"{s.noise_frame_ms:g} ms RMS levels)",
        ),
        Check(
            "noise.snr",
            rnd(ns.snr_db),
            "dB",
            vs,
            f"SNR {ns.snr_db:.1f} dB ({s.signal_percentile:g}th minus {s.noise_percentile:g}th "
            "percentile level)",
        ),
    ]


# --- spectrum: bandwidth and hum --------------------------------------------------------------


def _bandwidth_checks(
    frames: np.ndarray | None, stats: FrameStats, levels: np.ndarray, s: CheckSettings
) -> list[Check]:
    b = bw.bandwidth_stats(
        frames,
        levels,
        sr=stats.sr,
        silence_dbfs=s.silence_threshold_dbfs,
        width_hz=s.cliff_width_hz,
        min_drop_db=s.cliff_min_drop_db,
    )
    if b.reason is not None:
        return [_null("bandwidth.cutoff", "Hz", b.reason, "pass")]
    if b.cutoff_hz is None:
        return [
            Check(
                "bandwidth.cutoff",
                rnd(b.nyquist_hz, 1),
                "Hz",
                "pass",
                f"full band: no spectral cliff below Nyquist ({b.nyquist_hz:.0f} Hz)",
            )
        ]
    fc = b.cutoff_hz
    if fc >= s.cliff_max_ratio * b.nyquist_hz:
        return [
            Check(
                "bandwidth.cutoff",
                rnd(fc, 1),
                "Hz",
                "pass",
                f"cliff at {fc:.0f} Hz, near Nyquist (the file's own anti-alias filter)",
            )
        ]
    v = below(fc, warn=s.bandwidth_warn_below_hz, fail=s.bandwidth_fail_below_hz)
    hint = (
        "upsampled from a lower rate or a low-bitrate lossy transcode"
        if v == "fail"
        else "typical of a lossy transcode (e.g. 128 kbps MP3 ~ 17 kHz)"
        if v == "warn"
        else "lossy-codec low-pass"
    )
    return [
        Check(
            "bandwidth.cutoff",
            rnd(fc, 1),
            "Hz",
            v,
            f"spectral cliff at {fc:.0f} Hz ({b.drop_db:.0f} dB drop), far below Nyquist "
            f"{b.nyquist_hz:.0f} Hz: {hint}",
        )
    ]


def _hum_checks(stats: FrameStats, s: CheckSettings) -> list[Check]:
    h = hum.hum_stats(
        stats.hum,
        stats.hum_sr,
        min_prominence_db=s.hum_min_prominence_db,
        max_harmonic=s.hum_max_harmonic,
        detect_dbfs=s.hum_detect_dbfs,
    )
    if h.reason is not None:
        return [
            Check("hum.level", None, "dBFS", "pass", "too short to measure hum (needs 2 s)"),
            Check("hum.frequency", None, "Hz", "pass", "too short to measure hum (needs 2 s)"),
        ]
    if h.level_dbfs is None or h.base_hz is None:
        return [
            Check("hum.level", None, "dBFS", "pass", "no mains hum found"),
            Check("hum.frequency", None, "Hz", "pass", "no mains hum found"),
        ]
    v = above(h.level_dbfs, warn=s.hum_warn_dbfs, fail=s.hum_fail_dbfs)
    comps = ", ".join(f"{c.freq_hz:g} Hz {c.level_dbfs:.1f} dBFS" for c in h.components)
    return [
        Check("hum.level", rnd(h.level_dbfs), "dBFS", v, f"{h.base_hz:g} Hz mains hum: {comps}"),
        Check(
            "hum.frequency",
            rnd(h.base_hz, 1),
            "Hz",
            v,
            f"{h.base_hz:g} Hz mains ({len(h.components)} component(s))",
        ),
    ]


# --- vocal activity -----------------------------------------------------------------------------


def _vocal_checks(
    segments: list[tuple[float, float]], dur: float, t: KindThresholds, s: CheckSettings
) -> list[Check]:
    active = speech_duration(segments)
    share = min(1.0, active / dur) if dur > 0 else 0.0
    v = below(share, warn=t.vocal_activity_warn_below, fail=t.vocal_activity_fail_below)
    return [
        Check(
            "vocal.activity",
            rnd(share, 4),
            "ratio",
            v,
            f"voice in {share * 100:.1f} % of the recording ({len(segments)} segment(s), {s.vad_backend} VAD)",
        ),
        Check("vocal.active_duration", rnd(active, 3), "s", "pass", f"{active:.2f} s of voice"),
    ]


# --- reading reports ----------------------------------------------------------------------------


def report_check(report: dict[str, Any], code: str) -> dict[str, Any]:
    """The check ``code`` of a report (raises KeyError when the report has no such check)."""
    for check in report["checks"]:
        if check["code"] == code:
            return check  # type: ignore[no-any-return]
    raise KeyError(f"no check {code!r} in this report (settings {report.get('settings_version')})")


def report_value(report: dict[str, Any], code: str) -> float | int | None:
    """The value of check ``code`` (None when it could not be measured; KeyError when absent)."""
    return report_check(report, code)["value"]  # type: ignore[no-any-return]


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of a report, for ``songgate check``."""
    head = (
        f"verdict: {report['verdict'].upper()}   kind: {report.get('kind', '?')}   "
        f"{report['duration_s']:.2f} s   {report['sample_rate']} Hz   {report['channels']} ch   "
        f"settings {report['settings_version']}"
    )
    rows = [("check", "value", "verdict", "details")]
    for c in report["checks"]:
        value = "-" if c["value"] is None else f"{c['value']:g} {c['unit']}"
        rows.append((c["code"], value, c["verdict"], c["message"]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [head, ""]
    for i, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
        if i == 0:
            lines.append("-" * (sum(widths) + 6 + max(len(r[3]) for r in rows)))
    return "\n".join(lines)


def warm_up() -> None:
    """Load (or, on a fresh install, compile: ~8 s of CPU) the numba kernels now.

    Call it in a worker-pool initializer or the API lifespan so that the first upload does not pay
    ~0.3 s (cache load) on top of its checks.
    """
    rng = np.random.default_rng(0)
    for channels in (1, 2):
        run_checks((rng.standard_normal((channels, 16000)) * 0.1).astype(np.float32), sr=16000, kind="vocal")
