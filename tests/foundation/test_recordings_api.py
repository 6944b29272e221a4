"""POST/GET /v1/recordings against SQLite and PostgreSQL: fields, dedup, idempotency, errors, ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from signals import chirp, encode, tone

pytestmark = pytest.mark.both_dbs


def _upload(
    client, headers, path: Path, *, user="u1", song="s1", kind="mix", filename=None, extra_headers=None
):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return client.post(
            "/v1/recordings",
            headers={**headers, **(extra_headers or {})},
            data={"user_id": user, "song_id": song, "kind": kind},
            files={"file": (filename or path.name, fh, "application/octet-stream")},
        )


def _blob_files(app) -> list[Path]:  # type: ignore[no-untyped-def]
    root = app.state.blobs.root
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]


def test_upload_m4a_returns_201_with_fields(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = encode(chirp(200, 4000, sr=44100, seconds=3, channels=2), sr=44100, path=tmp_path / "song.m4a")
    r = _upload(client, auth_headers("upload"), path)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("rec_")
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body["sample_rate"] == 44100 and body["channels"] == 2
    assert body["codec"] == "aac" and body["container"] == "m4a" and body["kind"] == "mix"
    assert abs(body["duration_s"] - 3.0) < 0.06
    assert body["report"]["verdict"] in ("pass", "warn", "fail") and body["report"]["checks"]
    got = client.get(f"/v1/recordings/{body['id']}", headers=auth_headers("claim"))
    assert got.status_code == 200 and got.json()["sha256"] == body["sha256"]
    report = client.get(f"/v1/recordings/{body['id']}/report", headers=auth_headers("upload"))
    assert report.status_code == 200 and report.json()["checks"] == body["report"]["checks"]


def test_same_bytes_same_user_returns_existing(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("upload")
    path = encode(tone(440, sr=16000, seconds=1), sr=16000, path=tmp_path / "a.wav")
    first = _upload(client, h, path)
    again = _upload(client, h, path)
    other_user = _upload(client, h, path, user="u2")
    assert first.status_code == 201 and again.status_code == 200 and other_user.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert other_user.json()["id"] != first.json()["id"]
    assert other_user.json()["sha256"] == first.json()["sha256"]
    assert len(_blob_files(client.app)) == 1  # content-addressed: one blob


def test_idempotency_key(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("upload")
    a = encode(tone(440, sr=16000, seconds=1), sr=16000, path=tmp_path / "a.wav")
    b = encode(tone(880, sr=16000, seconds=1), sr=16000, path=tmp_path / "b.wav")
    key = {"Idempotency-Key": "upload-123"}
    first = _upload(client, h, a, extra_headers=key)
    retry = _upload(client, h, a, extra_headers=key)
    assert first.status_code == 201 and retry.status_code == 201
    assert retry.json() == first.json()
    different = _upload(client, h, b, extra_headers=key)
    assert different.status_code == 422
    assert different.json()["code"] == "idempotency_key_reused"
    assert different.headers["content-type"].startswith("application/problem+json")


def _nan_wav(tmp_path: Path) -> Path:
    import soundfile as sf

    y = np.full((2000, 1), 0.1, dtype=np.float32)
    y[10] = np.nan
    sf.write(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    return tmp_path / "nan.wav"


def _wav_header(channels: int, sr: int, data_bytes: int) -> bytes:
    import struct

    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * block, block, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _cut(path: Path) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[: len(data) // 3])
    return out


def _w(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD = [
    ("empty", lambda t: _w(t / "e.wav", b""), 422, "empty_audio"),
    ("random", lambda t: _w(t / "r.bin", np.random.default_rng(3).bytes(5000)), 415, "unsupported_format"),
    (
        "truncated_mp3",
        lambda t: _cut(encode(tone(440, sr=44100, seconds=6), sr=44100, path=t / "a.mp3")),
        422,
        "corrupt_audio",
    ),
    (
        "truncated_m4a",
        lambda t: _cut(encode(tone(440, sr=44100, seconds=6), sr=44100, path=t / "a.m4a")),
        422,
        "corrupt_audio",
    ),
    ("nan", _nan_wav, 422, "corrupt_audio"),
    ("8ch", lambda t: _w(t / "8.wav", _wav_header(8, 48000, 3200) + bytes(3200)), 422, "too_many_channels"),
    (
        "384k",
        lambda t: _w(t / "h.wav", _wav_header(1, 384000, 7680) + bytes(7680)),
        422,
        "invalid_sample_rate",
    ),
    (
        "10_hours",
        lambda t: _w(t / "l.wav", _wav_header(2, 44100, 2_000_000_000) + bytes(10_000)),
        422,
        "too_long",
    ),
]


@pytest.mark.parametrize("make,status,code", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_uploads_get_problem_json_and_leave_nothing(
    client, auth_headers, tmp_path: Path, make, status, code
) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    r = _upload(client, auth_headers("upload"), path, filename="录音 ✓.wav")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code and body["type"].endswith("/" + code) and body["status"] == status
    assert _blob_files(client.app) == []


def test_wrong_extension_and_non_ascii_name_are_fine(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = encode(tone(440, sr=22050, seconds=1), sr=22050, path=tmp_path / "x.flac")
    r = _upload(client, auth_headers("upload"), path, filename="我的歌.mp3")
    assert r.status_code == 201, r.text
    assert r.json()["container"] == "flac" and r.json()["filename"] == "我的歌.mp3"


def test_too_large_is_413(app, tmp_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from db import keys

    tmp_settings.limits.max_upload_bytes = 5000
    with TestClient(app) as client:
        with app.state.session_factory() as s, s.begin():
            _, key = keys.create_key(s, name="t", scopes=["upload"])
        path = encode(tone(440, sr=16000, seconds=2), sr=16000, path=tmp_path / "big.wav")
        r = _upload(client, {"Authorization": f"Bearer {key}"}, path)
        assert r.status_code == 413 and r.json()["code"] == "too_large"
        assert _blob_files(app) == []


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        ({"data": {"user_id": "u", "song_id": "s", "kind": "karaoke"}}, 422, "invalid_request"),
        ({"data": {"user_id": "bad id!", "song_id": "s", "kind": "mix"}}, 422, "invalid_request"),
        ({"data": {"user_id": "u", "song_id": "s", "kind": "mix"}, "nofile": True}, 422, "malformed_upload"),
        ({"json": {"user_id": "u"}}, 415, "unsupported_media_type"),
    ],
)
def test_bad_forms(client, auth_headers, tmp_path: Path, kwargs, status, code) -> None:  # type: ignore[no-untyped-def]
    path = encode(tone(440, sr=16000, seconds=1), sr=16000, path=tmp_path / "a.wav")
    h = auth_headers("upload")
    if "json" in kwargs:
        r = client.post("/v1/recordings", headers=h, json=kwargs["json"])
    elif kwargs.get("nofile"):
        r = client.post("/v1/recordings", headers=h, data=kwargs["data"], files={"other": ("x", b"abc")})
    else:
        r = client.post(
            "/v1/recordings", headers=h, data=kwargs["data"], files={"file": ("a.wav", path.read_bytes())}
        )
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


def test_auth(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = encode(tone(440, sr=16000, seconds=1), sr=16000, path=tmp_path / "a.wav")
    assert _upload(client, {}, path).status_code == 401
    assert _upload(client, {"Authorization": "Bearer nope"}, path).status_code == 401
    r = _upload(client, auth_headers("claim"), path)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert _upload(client, auth_headers("admin"), path).status_code == 201


def test_not_found_and_audio_ranges(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("upload")
    r = client.get("/v1/recordings/rec_missing", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    path = encode(tone(440, sr=16000, seconds=1), sr=16000, path=tmp_path / "a.wav")
    rec = _upload(client, h, path).json()
    full = client.get(f"/v1/recordings/{rec['id']}/audio", headers=h)
    assert full.status_code == 200 and full.content == path.read_bytes()
    assert full.headers["content-type"] == "audio/wav"
    part = client.get(f"/v1/recordings/{rec['id']}/audio", headers={**h, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == path.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{path.stat().st_size}"


def test_ops_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "songgate_http_requests_total" in metrics.text
