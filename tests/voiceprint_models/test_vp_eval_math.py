"""EER / minDCF / threshold math on scores with known answers; AS-norm; eval conditions and data."""

from __future__ import annotations

from contextlib import nullcontext
from math import erf, sqrt
from pathlib import Path

import numpy as np
import pytest

from voiceprint.eval import conditions
from voiceprint.eval.asnorm import asnorm, cohort_stats
from voiceprint.eval.data import all_pairs, build_utterances, list_speakers, read_trials
from voiceprint.eval.metrics import eer, error_rates, min_dcf, summarize, threshold_at_far


def scores_labels(tar, non):
    return np.array([*tar, *non], dtype=float), np.array([1] * len(tar) + [0] * len(non))


def test_eer_known_small_case():
    # At threshold 0.7: one target (0.3) missed of 3, one non-target (0.7) accepted of 3.
    s, y = scores_labels([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])
    value, thr = eer(s, y)
    assert value == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.7)


def test_eer_interpolates_between_operating_points():
    # Thresholds 0.4 -> (p_miss 0, p_fa 1/4) and 0.5 -> (p_miss 1/2, p_fa 1/4): the rates cross
    # half-way, where both are 1/4 (no threshold attains it exactly).
    s, y = scores_labels([0.6, 0.4], [0.5, 0.3, 0.2, 0.1])
    thr, p_miss, p_fa = error_rates(s, y)
    assert list(p_miss[3:5]) == [0.0, 0.5] and list(p_fa[3:5]) == [0.25, 0.25]
    assert eer(s, y)[0] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("tar", "non", "expected"),
    [([0.9, 0.8], [0.1, 0.2], 0.0), ([0.1, 0.2], [0.9, 0.8], 1.0), ([0.5, 0.5], [0.5, 0.5], 0.5)],
    ids=["separated", "inverted", "identical"],
)
def test_eer_extremes(tar, non, expected):
    s, y = scores_labels(tar, non)
    assert eer(s, y)[0] == pytest.approx(expected)


def test_eer_of_gaussians_matches_theory(rng):
    # Equal-variance Gaussians d' apart: EER = Phi(-d'/2).
    d = 2.0
    s, y = scores_labels(rng.normal(d, 1, 40_000), rng.normal(0, 1, 40_000))
    theory = 0.5 * (1 + erf(-d / 2 / sqrt(2)))
    assert eer(s, y)[0] == pytest.approx(theory, abs=0.005)


def test_metrics_are_invariant_to_monotonic_score_maps(rng):
    s, y = scores_labels(rng.normal(1, 1, 300), rng.normal(0, 1, 900))
    for f in (lambda x: 3 * x + 1, np.tanh, lambda x: np.exp(x)):
        assert eer(f(s), y)[0] == pytest.approx(eer(s, y)[0])
        assert min_dcf(f(s), y)[0] == pytest.approx(min_dcf(s, y)[0])


def test_min_dcf_known_answer():
    s, y = scores_labels([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])
    # normalized cost with p_target 0.01 = p_miss + 99 p_fa: best is rejecting 0.7 (p_miss 1/3).
    value, thr = min_dcf(s, y, p_target=0.01)
    assert value == pytest.approx(1 / 3)
    assert 0.7 < thr <= 0.8
    # with p_target 0.5 it is p_miss + p_fa: 1/3 at several thresholds
    assert min_dcf(s, y, p_target=0.5)[0] == pytest.approx(1 / 3)
    assert min_dcf(*scores_labels([0.9], [0.1]))[0] == 0.0


def test_min_dcf_is_at_most_one():
    s, y = scores_labels([0.1, 0.2], [0.9, 0.8])  # hopeless system: the trivial one costs 1
    assert min_dcf(s, y)[0] == pytest.approx(1.0)


def test_threshold_at_far_keeps_far_at_or_below_target(rng):
    non = rng.normal(0, 1, 10_000)
    s, y = scores_labels(rng.normal(3, 1, 1000), non)
    for far in (0.1, 0.01, 0.001):
        thr = threshold_at_far(s, y, target_far=far)
        assert np.mean(non >= thr) <= far
        assert np.mean(non >= np.nextafter(thr, -np.inf) - 1e-9) > far - 1 / non.size
    # ties at the boundary are rejected together
    s, y = scores_labels([1.0], [0.5, 0.5, 0.5, 0.1])
    thr = threshold_at_far(s, y, target_far=0.5)
    assert thr > 0.5 and np.mean(np.array([0.5, 0.5, 0.5, 0.1]) >= thr) == 0


def test_summarize_reports_far_and_frr_at_the_threshold(rng):
    s, y = scores_labels(rng.normal(2, 1, 500), rng.normal(0, 1, 5000))
    out = summarize(s, y, target_far=0.01).as_dict()
    assert out["far_percent_at_threshold"] <= 1.0
    assert 0 < out["frr_percent_at_threshold"] < 100
    assert out["n_target"] == 500 and out["n_nontarget"] == 5000


@pytest.mark.parametrize(
    ("scores", "labels", "expect"),
    [
        ([0.1, 0.2], [1, 0], nullcontext()),
        ([0.1, 0.2], [1, 1], pytest.raises(ValueError)),
        ([0.1, np.nan], [1, 0], pytest.raises(ValueError)),
        ([0.1, 0.2], [1, 2], pytest.raises(ValueError)),
        ([0.1, 0.2, 0.3], [1, 0], pytest.raises(ValueError)),
    ],
)
def test_metric_inputs_are_validated(scores, labels, expect):
    with expect:
        eer(np.array(scores), np.array(labels))


# --- AS-norm ---------------------------------------------------------------------------------


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cohort_stats_use_the_top_n_scores(rng):
    cohort = unit(rng.normal(size=(50, 8)))
    e = unit(rng.normal(size=(3, 8)))
    mu, sd = cohort_stats(e, cohort, top_n=5)
    top = np.sort(e @ cohort.T, axis=1)[:, -5:]
    np.testing.assert_allclose(mu, top.mean(axis=1))
    np.testing.assert_allclose(sd, top.std(axis=1))
    mu_all, _ = cohort_stats(e, cohort, top_n=10_000)  # capped at the cohort size
    np.testing.assert_allclose(mu_all, (e @ cohort.T).mean(axis=1))


def test_asnorm_is_symmetric_and_centres_impostor_scores(rng):
    raw = np.array([0.2, 0.8])
    e_stats = (np.array([0.2, 0.1]), np.array([0.1, 0.2]))
    t_stats = (np.array([0.2, 0.3]), np.array([0.1, 0.1]))
    out = asnorm(raw, e_stats, t_stats)
    assert out[0] == pytest.approx(0.0)  # a score equal to both sides' impostor mean
    np.testing.assert_allclose(out, asnorm(raw, t_stats, e_stats))
    assert out[1] == pytest.approx(0.5 * ((0.8 - 0.1) / 0.2 + (0.8 - 0.3) / 0.1))


def test_asnorm_separates_better_when_speakers_differ_in_score_scale(rng):
    # Two groups of enrollment speakers whose impostor scores sit at different levels: raw cosine
    # needs one threshold for both, AS-norm removes the offset.
    cohort = unit(rng.normal(size=(200, 16)))
    base = unit(rng.normal(size=(16,)))
    groups = [unit(base * w + rng.normal(size=(40, 16))) for w in (0.0, 3.0)]
    emb = np.concatenate(groups)
    targets = unit(emb + 0.6 * rng.normal(size=emb.shape))
    imp = unit(base * 3.0 + rng.normal(size=emb.shape))
    raw_t = np.sum(emb * targets, axis=1)
    raw_i = np.sum(emb * imp, axis=1)
    labels = np.array([1] * len(emb) + [0] * len(emb))
    raw = np.concatenate([raw_t, raw_i])
    se = cohort_stats(emb, cohort, top_n=20)
    st = cohort_stats(np.concatenate([targets, imp]), cohort, top_n=20)
    norm = asnorm(raw, (np.tile(se[0], 2), np.tile(se[1], 2)), st)
    assert eer(norm, labels)[0] <= eer(raw, labels)[0]


# --- conditions ------------------------------------------------------------------------------


def test_crop_is_three_seconds(rng):
    y = rng.normal(0, 0.1, 16000 * 10).astype(np.float32)
    assert len(conditions.apply("crop3", y, rng=rng)) == 3 * 16000
    assert len(conditions.apply("crop3", y[:16000], rng=rng)) == 16000


def test_noise_is_added_at_ten_db_snr(rng):
    y = (0.1 * np.sin(2 * np.pi * 200 * np.arange(32000) / 16000)).astype(np.float32)
    noisy = conditions.add_noise(y, rng=rng)
    snr = 10 * np.log10(np.mean(y**2) / np.mean((noisy - y) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_aac_roundtrip_keeps_length_and_waveform(rng):
    t = np.arange(16000 * 2) / 16000
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    z = conditions.aac_roundtrip(y)
    assert z.shape == y.shape
    assert np.corrcoef(y[2000:-2000], z[2000:-2000])[0, 1] > 0.95


def test_telephone_band_removes_energy_above_4khz(rng):
    y = rng.normal(0, 0.1, 16000 * 2).astype(np.float32)
    z = conditions.apply("tel8k", y, rng=rng)
    spec_y, spec_z = np.abs(np.fft.rfft(y)) ** 2, np.abs(np.fft.rfft(z)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / 16000)
    high = f > 4200
    assert spec_z[high].sum() / spec_y[high].sum() < 1e-3
    mid = (f > 500) & (f < 3000)
    assert spec_z[mid].sum() / spec_y[mid].sum() > 0.5


def test_unknown_condition_is_refused(rng):
    with pytest.raises(ValueError):
        conditions.apply("underwater", np.zeros(10, np.float32), rng=rng)


# --- data ------------------------------------------------------------------------------------


def _write_wav(path: Path, seconds: float, rng) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, rng.normal(0, 0.1, int(seconds * 16000)).astype(np.float32), 16000)
    return path


def test_speakers_from_folders_or_a_regex(tmp_path, rng):
    for spk in ("a", "b"):
        for i in range(2):
            _write_wav(tmp_path / "dirs" / spk / f"{i}.wav", 1.0, rng)
            _write_wav(tmp_path / "flat" / f"{i}_{spk}_x.wav", 1.0, rng)
    by_dir = list_speakers(tmp_path / "dirs")
    by_re = list_speakers(tmp_path / "flat", speaker_regex=r"^\d+_([a-z]+)_")
    assert sorted(by_dir) == sorted(by_re) == ["a", "b"]
    assert all(len(v) == 2 for v in by_re.values())
    with pytest.raises(ValueError, match="speaker-regex"):
        list_speakers(tmp_path / "flat")


def test_segments_do_not_overlap_and_concat_uses_each_file_once(tmp_path, rng):
    files = [_write_wav(tmp_path / "s" / f"{i}.wav", 1.0 + i, rng) for i in range(4)]
    utts = build_utterances({"s": files[:1]}, segments=2, min_seconds=0.1, rng=rng)
    assert [len(u.audio) for u in utts] == [8000, 8000]
    joined = build_utterances({"s": files}, concat=2, min_seconds=0.1, rng=rng)
    assert len(joined) == 2
    used = [src for u in joined for src in u.sources]
    assert sorted(used) == sorted(str(f) for f in files)
    a, b, labels = all_pairs(utts + build_utterances({"t": files[1:2]}, rng=rng))
    assert list(labels) == [1, 0, 0]


def test_trial_lists_are_parsed(tmp_path):
    (tmp_path / "t.txt").write_text("# comment\n1 a.wav b.wav\nnontarget a.wav c.wav\n")
    got = read_trials(tmp_path / "t.txt", tmp_path)
    assert [t[0] for t in got] == [1, 0] and got[0][1] == (tmp_path / "a.wav").resolve()
    (tmp_path / "bad.txt").write_text("maybe a.wav b.wav\n")
    with pytest.raises(ValueError):
        read_trials(tmp_path / "bad.txt", tmp_path)
