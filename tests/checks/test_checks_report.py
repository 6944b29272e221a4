"""The report as a whole: shape, JSON, error handling, invariants, settings and the table."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pytest
from checks_helpers import music_like
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signals import tone

from audio.checks import CheckSettings, format_table, report_check, report_value, run_checks, warm_up
from audio.errors import EmptyAudio, InvalidSampleRate, InvalidSignal
from core.errors import InvalidRequest, SonggateError

CODES_ALWAYS = {
    "format.duration",
    "format.sample_rate",
    "format.channels",
    "format.false_stereo",
    "format.channel_imbalance",
    "loudness.integrated",
    "loudness.range",
    "loudness.momentary_max",
    "loudness.short_term_max",
    "peak.true",
    "peak.sample",
    "clipping.count",
    "clipping.longest_run",
    "clipping.share",
    "silence.leading",
    "silence.trailing",
    "silence.share",
    "dropouts.count",
    "dropouts.longest",
    "dc.offset",
    "noise.floor",
    "noise.snr",
    "bandwidth.cutoff",
    "hum.level",
    "hum.frequency",
}
RATIOS = {"clipping.share", "silence.share", "vocal.activity"}


def _assert_well_formed(report: dict[str, Any]) -> None:
    text = json.dumps(report, allow_nan=False)  # no NaN / inf anywhere
    assert json.loads(text) == report
    assert report["verdict"] in {"pass", "warn", "fail"}
    assert report["settings_version"] == CheckSettings().version
    ranks = {"pass": 0, "warn": 1, "fail": 2}
    assert ranks[report["verdict"]] == max(ranks[c["verdict"]] for c in report["checks"])
    for c in report["checks"]:
        assert set(c) == {"code", "value", "unit", "verdict", "message"}
        assert c["value"] is None or isinstance(c["value"], int | float)
        assert c["verdict"] in {"pass", "warn", "fail"} and c["message"]
        if c["code"] in RATIOS and c["value"] is not None:
            assert 0.0 <= c["value"] <= 1.0, c


def test_report_shape(rng: np.random.Generator) -> None:
    y = music_like(rng, sr=44100, seconds=12.0)
    report = run_checks(y, sr=44100)
    _assert_well_formed(report)
    assert {c["code"] for c in report["checks"]} == CODES_ALWAYS
    assert report["duration_s"] == 12.0 and report["sample_rate"] == 44100 and report["channels"] == 2
    vocal = run_checks(y, sr=44100, kind="vocal")
    assert {c["code"] for c in vocal["checks"]} == CODES_ALWAYS | {"vocal.activity", "vocal.active_duration"}


def test_report_value_and_table(rng: np.random.Generator) -> None:
    report = run_checks(tone(1000.0, sr=48000, seconds=12.0, amp_dbfs=-23.0, channels=2), sr=48000)
    assert report_value(report, "loudness.integrated") == pytest.approx(-23.0, abs=0.1)
    assert report_check(report, "peak.sample")["unit"] == "dBFS"
    with pytest.raises(KeyError):
        report_value(report, "no.such.check")
    table = format_table(report)
    assert "loudness.integrated" in table and "-22.99 LUFS" in table and report["verdict"].upper() in table
    assert len(table.splitlines()) == len(report["checks"]) + 4


_GOOD = np.zeros((2, 44100), np.float32)


@pytest.mark.parametrize(
    ("y", "sr", "kind", "expect"),
    [
        (np.zeros((2, 44100 * 2), np.float32), 44100, "mix", nullcontext()),  # silence: nulls, no error
        (np.zeros(16000, np.float64), 16000, "vocal", nullcontext()),  # 1-D float64 is converted
        (np.ones((1, 10), np.float32) * 0.1, 44100, "mix", nullcontext()),  # shorter than one block
        (np.full((2, 1000), np.nan, np.float32), 44100, "mix", pytest.raises(InvalidSignal)),
        (np.array([[0.0, np.inf]], np.float32), 44100, "mix", pytest.raises(InvalidSignal)),
        (np.zeros((2, 2, 100), np.float32), 44100, "mix", pytest.raises(InvalidSignal)),
        (np.zeros((44100, 2), np.float32), 44100, "mix", pytest.raises(InvalidSignal)),  # transposed
        (np.zeros((2, 0), np.float32), 44100, "mix", pytest.raises(EmptyAudio)),
        (np.zeros((2, 100), np.int16), 44100, "mix", pytest.raises(InvalidSignal)),
        ([0.0, 0.1, 0.2], 44100, "mix", pytest.raises(InvalidSignal)),
        (_GOOD, 0, "mix", pytest.raises(InvalidSampleRate)),
        (_GOOD, -44100, "mix", pytest.raises(InvalidSampleRate)),
        (_GOOD, 44100.5, "mix", pytest.raises(InvalidSampleRate)),
        (_GOOD, "44100", "mix", pytest.raises(InvalidSampleRate)),
        (_GOOD, 4000, "mix", pytest.raises(InvalidSampleRate)),
        (_GOOD, 44100, "song", pytest.raises(InvalidRequest)),
    ],
)
def test_inputs(y: Any, sr: Any, kind: str, expect: AbstractContextManager[Any]) -> None:
    with expect:
        _assert_well_formed(run_checks(y, sr=sr, kind=kind))


def test_errors_are_songgate_errors_with_codes() -> None:
    with pytest.raises(SonggateError) as info:
        run_checks(np.full((1, 100), np.nan, np.float32), sr=44100)
    assert info.value.to_problem()["code"] == "invalid_signal"


def test_silence_reports_null_loudness_with_reasons() -> None:
    report = run_checks(np.zeros((2, 44100 * 5), np.float32), sr=44100)
    check = report_check(report, "loudness.integrated")
    assert check["value"] is None and check["verdict"] == "fail" and "silen" in check["message"]
    assert report_value(report, "peak.true") is None
    assert report["verdict"] == "fail"


@st.composite
def signals(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    sr = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]))
    channels = draw(st.integers(1, 3))
    seconds = draw(st.floats(0.01, 4.0))
    seed = draw(st.integers(0, 2**32 - 1))
    level = draw(st.floats(-100.0, 12.0))
    r = np.random.default_rng(seed)
    n = max(1, int(sr * seconds))
    y = r.standard_normal((channels, n)) * 10 ** (level / 20)
    if draw(st.booleans()):  # hard clipping
        y = np.clip(y, -1.0, 1.0)
    if draw(st.booleans()) and n > 10:  # a stretch of digital zeros somewhere
        a = int(r.integers(0, n - 1))
        y[:, a : a + int(r.integers(1, n - a))] = 0.0
    if draw(st.booleans()):
        y = y + draw(st.floats(-0.5, 0.5))
    return y.astype(np.float32), sr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signal=signals(), kind=st.sampled_from(["mix", "vocal"]))
def test_invariants(signal: tuple[np.ndarray, int], kind: str) -> None:
    y, sr = signal
    report = run_checks(y, sr=sr, kind=kind)
    _assert_well_formed(report)
    dur = y.shape[1] / sr
    assert report_value(report, "silence.leading") <= dur + 1e-3
    assert report_value(report, "silence.trailing") <= dur + 1e-3
    tp, spk = report_value(report, "peak.true"), report_value(report, "peak.sample")
    if spk is not None:
        assert tp is not None and tp >= spk - 0.01
    i, m = report_value(report, "loudness.integrated"), report_value(report, "loudness.momentary_max")
    if i is not None:
        assert m is not None and i <= m + 0.01
    if kind == "vocal":
        assert 0.0 <= report_value(report, "vocal.active_duration") <= dur + 1e-3


def test_thresholds_come_from_settings(rng: np.random.Generator) -> None:
    y = music_like(rng, sr=44100, seconds=12.0) + np.float32(0.002)
    assert report_check(run_checks(y, sr=44100), "dc.offset")["verdict"] == "pass"
    strict = CheckSettings(dc_warn_fs=0.001, version="checks-test")
    report = run_checks(y, sr=44100, settings=strict)
    assert report_check(report, "dc.offset")["verdict"] == "warn"
    assert report["settings_version"] == "checks-test"


def test_settings_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    monkeypatch.setenv("SONGGATE_CHECKS__VOCAL__SNR_FAIL_DB", "12.5")
    monkeypatch.setenv("SONGGATE_CHECKS__SILENCE_THRESHOLD_DBFS", "-55")
    s = Settings()
    assert s.checks.vocal.snr_fail_db == 12.5
    assert s.checks.silence_threshold_dbfs == -55.0
    assert s.checks.mix.snr_fail_db is None


def test_warm_up_and_pool_friendly_call() -> None:
    """warm_up runs; run_checks pickles as a partial for the API's process pool."""
    import functools
    import pickle

    warm_up()
    fn = pickle.loads(
        pickle.dumps(functools.partial(run_checks, sr=16000, kind="vocal", settings=CheckSettings()))
    )
    assert fn(np.zeros((1, 16000), np.float32))["kind"] == "vocal"
