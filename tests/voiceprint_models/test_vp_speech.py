"""Speech-only extraction: batched Silero equals the streaming model; silence is removed; inputs
are validated; importing the VAD leaves torch's thread count alone."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch

from audio.errors import EmptyAudio, InvalidSampleRate, InvalidSignal
from voiceprint import silero
from voiceprint.speech import embed_recording, extract_speech, speech_only, to_16k_mono


@pytest.fixture(scope="module")
def speech(speakers3) -> np.ndarray:
    return speakers3[0][: 16000 * 8]


def test_batched_vad_matches_the_streaming_model(speech):
    from silero_vad import load_silero_vad

    model = load_silero_vad()
    model.reset_states()
    padded = np.concatenate([speech, np.zeros((-len(speech)) % 512, np.float32)])
    with torch.no_grad():
        stream = np.array(
            [
                model(torch.from_numpy(padded[i : i + 512])[None], 16000).item()
                for i in range(0, len(padded), 512)
            ]
        )
    batched = silero.vad().probabilities(speech)
    assert batched.shape == stream.shape
    np.testing.assert_allclose(batched, stream, atol=1e-4)
    assert stream.max() > 0.9  # it is speech


def test_long_silence_is_cut_and_speech_measured(speech, rng):
    silence = rng.normal(0, 1e-4, 16000 * 3).astype(np.float32)
    padded = np.concatenate([silence, speech, silence, speech, silence])
    found = extract_speech(padded, sr=16000)
    alone = extract_speech(speech, sr=16000)
    # 9 s of silence in three stretches: each cut to at most 2 x 400 ms of context.
    assert len(found.samples) <= 2 * len(alone.samples) + 3 * 0.8 * 16000
    assert len(found.samples) >= 2 * len(alone.samples) - 0.1 * 16000
    assert found.speech_s == pytest.approx(2 * alone.speech_s, abs=0.3)
    assert 0.6 * len(speech) / 16000 < alone.speech_s <= len(speech) / 16000
    assert found.duration_s == pytest.approx(len(padded) / 16000)
    empty = extract_speech(silence, sr=16000)
    assert empty.speech_s == 0 and len(empty.samples) == 0
    assert len(speech_only(silence, sr=16000)) == 0


def test_short_pauses_are_kept(speech):
    # A 300 ms pause inserted in the middle of the longest speech region survives trimming.
    a, b = max(silero.speech_regions(speech, sr=16000, pad_ms=0), key=lambda r: r[1] - r[0])
    mid = (a + b) // 2
    gap = np.zeros(int(0.3 * 16000), np.float32)
    joined = np.concatenate([speech[:mid], gap, speech[mid:]])
    assert len(speech_only(joined, sr=16000)) >= len(speech_only(speech, sr=16000)) + len(gap) - 1600


def test_embed_recording_enforces_measured_speech(speech, rng):
    from voiceprint.config import VoiceprintSettings
    from voiceprint.errors import TooLittleSpeech

    class Recorder:
        min_duration_s = 1.0

        def embed(self, y, *, sr):
            self.got = (len(y), sr)
            return np.ones(4, np.float32) / 2

    emb = Recorder()
    assert embed_recording(emb, speech, sr=16000).shape == (4,)
    assert emb.got[1] == 16000
    silence = rng.normal(0, 1e-4, 16000 * 4).astype(np.float32)
    with pytest.raises(TooLittleSpeech) as err:
        embed_recording(emb, silence, sr=16000)
    assert err.value.extra["speech_s"] == 0
    # 0.6 s of speech inside 4 s of silence: the padded audio is long enough, the speech is not
    short = np.concatenate([silence[:32000], speech[16000 : 16000 + 9600], silence[:32000]])
    with pytest.raises(TooLittleSpeech):
        embed_recording(emb, short, sr=16000, settings=VoiceprintSettings())


def test_rates_and_channels_are_converted(speech):
    from audio.resample import resample

    at8k = resample(speech, orig_sr=16000, target_sr=8000)
    stereo44 = np.stack([resample(speech, orig_sr=16000, target_sr=44100)] * 2)
    base = len(speech_only(speech, sr=16000))
    for y, sr in ((at8k, 8000), (stereo44, 44100)):
        out = speech_only(y, sr=sr)
        assert out.dtype == np.float32 and out.ndim == 1
        assert abs(len(out) - base) < 0.15 * base
    assert len(to_16k_mono(stereo44, sr=44100)) == pytest.approx(len(speech), abs=2)


@pytest.mark.parametrize(
    ("y", "sr", "expect"),
    [
        (np.zeros(16000, np.float32), 16000, nullcontext()),
        (np.zeros(0, np.float32), 16000, pytest.raises(EmptyAudio)),
        (np.zeros(16000, np.float32), 4000, pytest.raises(InvalidSampleRate)),
        (np.zeros(16000, np.float32), 16000.5, pytest.raises(InvalidSampleRate)),
        (np.zeros((1, 2, 3), np.float32), 16000, pytest.raises(InvalidSignal)),
        (np.array([0.0, np.inf] * 8000, np.float32), 16000, pytest.raises(InvalidSignal)),
        (np.zeros(16000, np.int16), 16000, pytest.raises(InvalidSignal)),
    ],
    ids=["silence", "empty", "4k", "fractional-sr", "3d", "inf", "int16"],
)
def test_inputs_are_validated(y, sr, expect):
    with expect:
        speech_only(y, sr=sr)


def test_loading_the_vad_keeps_torch_threads():
    before = torch.get_num_threads()
    silero.vad()
    assert torch.get_num_threads() == before
