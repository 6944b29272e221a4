"""Evaluation data: speakers' files, utterances built from them, and trials.

A dataset directory holds one sub-folder of audio per speaker; a flat directory works too with a
regular expression whose first group is the speaker (``^(\\d+)-`` for LibriSpeech file names,
``^\\d+_([a-z]+)_`` for FSDD). Utterances are built per speaker:

- ``segments=N`` splits each file into N non-overlapping equal parts (LibriSpeech excerpts have one
  recording per speaker, so same-speaker trials come from the same recording: optimistic);
- ``concat=K`` joins K different files of a speaker into one utterance, each file used once (FSDD
  digits: K=8 makes an 8-digit prompt like a verification challenge).

Without a trial list, every pair of utterances is a trial (target if same speaker).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from audio.decode import decode_file

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"}
SR = 16000


@dataclass
class Utterance:
    """One side of a trial.

    Attributes
    ----------
    key : str, unique id (``speaker/file[#segment]`` or ``speaker/concat-i``)
    speaker : str
    audio : np.ndarray [shape=(n,)], float32, 16 kHz mono (after the condition)
    sources : list of str, the files it was cut or joined from
    """

    key: str
    speaker: str
    audio: np.ndarray
    sources: list[str] = field(default_factory=list)


def list_speakers(
    root: Path, *, speaker_regex: str | None = None, max_speakers: int | None = None
) -> dict[str, list[Path]]:
    """Speaker -> sorted audio files, from sub-folders or from ``speaker_regex`` on file names."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    out: dict[str, list[Path]] = {}
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if subdirs and speaker_regex is None:
        for d in subdirs:
            files = sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if files:
                out[d.name] = files
    else:
        if speaker_regex is None:
            raise ValueError(f"{root} has no speaker sub-folders: give --speaker-regex")
        pattern = re.compile(speaker_regex)
        for p in sorted(root.iterdir()):
            if p.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            m = pattern.search(p.name)
            if m:
                out.setdefault(m.group(1), []).append(p)
    speakers = sorted(out)
    if max_speakers is not None:
        speakers = speakers[:max_speakers]
    return {s: out[s] for s in speakers}


def load(path: Path) -> np.ndarray:
    """Decode a file to 16 kHz mono float32 [shape=(n,)] with audio.decode."""
    return decode_file(path, sr=SR, mono=True).samples[0]


def build_utterances(
    speakers: dict[str, list[Path]],
    *,
    segments: int = 1,
    concat: int = 1,
    max_per_speaker: int | None = None,
    min_seconds: float = 1.0,
    rng: np.random.Generator,
) -> list[Utterance]:
    """Utterances per speaker (see the module docstring); parts shorter than ``min_seconds`` dropped."""
    if segments < 1 or concat < 1:
        raise ValueError("segments and concat must be >= 1")
    out: list[Utterance] = []
    for spk, files in speakers.items():
        mine: list[Utterance] = []
        if concat > 1:
            order = rng.permutation(len(files))
            for i in range(len(files) // concat):
                chosen = [files[j] for j in order[i * concat : (i + 1) * concat]]
                audio = np.concatenate([load(p) for p in chosen])
                mine.append(Utterance(f"{spk}/concat-{i}", spk, audio, [str(p) for p in chosen]))
                if max_per_speaker is not None and len(mine) >= max_per_speaker:
                    break
        else:
            for p in files:
                audio = load(p)
                bounds = np.linspace(0, len(audio), segments + 1).astype(int)
                for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=False)):
                    key = f"{spk}/{p.name}" + (f"#{k}" if segments > 1 else "")
                    mine.append(Utterance(key, spk, audio[a:b], [str(p)]))
                if max_per_speaker is not None and len(mine) >= max_per_speaker:
                    mine = mine[:max_per_speaker]
                    break
        out.extend(u for u in mine if len(u.audio) >= min_seconds * SR)
    return out


def all_pairs(utterances: Sequence[Utterance]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair: (index a, index b, label 1 if same speaker)."""
    n = len(utterances)
    if n < 2:
        raise ValueError("need at least two utterances")
    a, b = np.array(list(combinations(range(n), 2)), dtype=np.int64).T
    spk = np.array([u.speaker for u in utterances])
    return a, b, (spk[a] == spk[b]).astype(np.int8)


def read_trials(path: Path, root: Path) -> list[tuple[int, Path, Path]]:
    """A trial list: lines ``LABEL ENROLL TEST`` (LABEL 1/0 or target/nontarget; paths relative
    to ``root`` or absolute; ``#`` comments)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 'LABEL ENROLL TEST'")
        label = {"1": 1, "0": 0, "target": 1, "nontarget": 0}.get(parts[0].lower())
        if label is None:
            raise ValueError(f"{path}:{n}: label must be 1/0/target/nontarget")
        out.append((label, (root / parts[1]).resolve(), (root / parts[2]).resolve()))
    if not out:
        raise ValueError(f"{path}: no trials")
    return out
