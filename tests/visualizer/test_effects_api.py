"""The visualizer routes: defaults stored on upload, on-demand parameters cached, ETag/304,
Cache-Control, 422 problem+json for bad parameters, 404 for unknown recordings, auth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from signals import chirp, encode, tone
from sqlalchemy import select

from effects import frames_format, waveform
from effects.tables import EffectArtifact

pytestmark = pytest.mark.both_dbs


def _store(app, path: Path) -> dict:  # type: ignore[no-untyped-def]
    """Store a recording the way the upload pipeline does (blob, row, default artifacts), without
    depending on the recording checks."""
    from audio.decode import decode_file
    from db.base import new_id
    from db.tables import Recording
    from effects import compute_default_artifacts
    from effects.store import save_artifacts

    sha, size = app.state.blobs.put_bytes(path.read_bytes())
    decoded = decode_file(app.state.blobs.path(sha))
    arts = compute_default_artifacts(
        decoded.samples, sr=decoded.sample_rate, settings=app.state.settings.effects
    )
    rec = Recording(
        id=new_id("rec"), user_id="u1", song_id="s1", kind="mix", sha256=sha, size_bytes=size,
        filename=path.name, media_type=decoded.info.media_type, container=decoded.info.container,
        codec=decoded.info.codec, sample_rate=decoded.sample_rate, channels=decoded.channels,
        duration_s=decoded.duration_s, report={}, report_version="test",
    )  # fmt: skip
    with app.state.session_factory() as s, s.begin():
        s.add(rec)
        s.flush()
        save_artifacts(s, rec.id, arts)
        save_artifacts(s, rec.id, arts)  # idempotent
    return {"id": rec.id}


def _upload(client, headers, path: Path) -> dict:  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        r = client.post(
            "/v1/recordings",
            headers=headers,
            data={"user_id": "u1", "song_id": "s1", "kind": "mix"},
            files={"file": (path.name, fh, "application/octet-stream")},
        )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def stereo_recording(client, auth_headers, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    y = chirp(100, 8000, sr=44100, seconds=4, channels=2)
    y[1] *= 0.5  # make the channels differ
    return _store(client.app, encode(y, sr=44100, path=tmp_path / "song.wav"))


def _rows(app, rec_id: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with app.state.session_factory() as s:
        return sorted(s.execute(select(EffectArtifact.kind, EffectArtifact.params_key)
                                .where(EffectArtifact.recording_id == rec_id)).tuples())  # fmt: skip


def test_defaults_are_stored(client, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    kinds = [k for k, _ in _rows(client.app, stereo_recording["id"])]
    assert kinds == ["beats", "spectrum", "waveform_dat"]


def test_upload_path_stores_defaults(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rec = _upload(
        client,
        auth_headers("upload"),
        encode(tone(440, sr=44100, seconds=3), sr=44100, path=tmp_path / "u.wav"),
    )
    assert [k for k, _ in _rows(client.app, rec["id"])] == ["beats", "spectrum", "waveform_dat"]


def test_visualizer_binary_and_json(client, auth_headers, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("claim")
    url = f"/v1/recordings/{stereo_recording['id']}/visualizer"
    r = client.get(url, headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"] == frames_format.MEDIA_TYPE
    frames = frames_format.decode(r.content)
    assert (frames.fps, frames.bands, frames.sample_rate) == (30, 64, 44100)
    assert frames.frame_count == 4 * 30 + 1
    j = client.get(url, params={"format": "json"}, headers=h)
    assert j.status_code == 200 and j.headers["content-type"].startswith("application/json")
    body = j.json()
    assert body["frames"] == frames.levels.tolist() and body["edges_bin"] == frames.edges_bin.tolist()
    other = client.get(url, params={"fps": "60", "bands": "32"}, headers=h)
    assert other.status_code == 200
    f60 = frames_format.decode(other.content)
    assert (f60.fps, f60.bands, f60.frame_count) == (60, 32, 241)
    # cached per parameters now
    keys = _rows(client.app, stereo_recording["id"])
    assert sum(1 for k, _ in keys if k == "spectrum") == 2 and ("spectrum_json" in dict(keys))


def test_etag_and_cache_control(client, auth_headers, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("upload")
    url = f"/v1/recordings/{stereo_recording['id']}/beats"
    r = client.get(url, headers=h)
    assert r.status_code == 200
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert "max-age=" in r.headers["cache-control"]
    again = client.get(url, headers={**h, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    listed = client.get(url, headers={**h, "If-None-Match": f'"nope", W/{etag}'})
    assert listed.status_code == 304
    stale = client.get(url, headers={**h, "If-None-Match": '"0123"'})
    assert stale.status_code == 200 and stale.content == r.content
    body = json.loads(r.content)
    assert set(body) == {"version", "tempo_bpm", "beats_s", "onset_envelope"}


def test_waveform_dat_and_json_zoom_levels(client, auth_headers, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("upload")
    base = f"/v1/recordings/{stereo_recording['id']}"
    r = client.get(f"{base}/waveform.dat", headers=h)
    assert r.status_code == 200
    wf, bits = waveform.decode_dat(r.content)
    assert bits == 16 and wf.channels == 2 and wf.samples_per_pixel == 256
    assert wf.length == -(-4 * 44100 // 256)
    for spp in (512, 1024, 2048, 4096):
        for b in (8, 16):
            z = client.get(f"{base}/waveform.dat", params={"samples_per_pixel": spp, "bits": b}, headers=h)
            assert z.status_code == 200, z.text
            zw, zb = waveform.decode_dat(z.content)
            assert zb == b and zw.samples_per_pixel == spp and zw.length == -(-4 * 44100 // spp)
            expect = waveform.rescale(wf, samples_per_pixel=spp).data
            if b == 8:
                expect = (np.fix(expect / 256) * 256).astype(np.int16)
            np.testing.assert_array_equal(zw.data, expect)
    j = client.get(f"{base}/waveform.json", params={"samples_per_pixel": "1024", "bits": "8"}, headers=h)
    assert j.status_code == 200
    body = j.json()
    assert (body["version"], body["channels"], body["bits"], body["samples_per_pixel"]) == (2, 2, 8, 1024)
    assert len(body["data"]) == body["length"] * 2 * 2


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("visualizer", {"fps": "0"}, "fps"),
        ("visualizer", {"fps": "61"}, "fps"),
        ("visualizer", {"fps": "abc"}, "fps"),
        ("visualizer", {"bands": "4"}, "bands"),
        ("visualizer", {"bands": "1000"}, "bands"),
        ("visualizer", {"format": "xml"}, "format"),
        ("waveform.dat", {"samples_per_pixel": "300"}, "samples_per_pixel"),
        ("waveform.dat", {"bits": "12"}, "bits"),
        ("waveform.json", {"samples_per_pixel": "-256"}, "samples_per_pixel"),
    ],
)
def test_bad_parameters_are_422_problems(
    client, auth_headers, stereo_recording, path, params, parameter
) -> None:  # type: ignore[no-untyped-def]
    r = client.get(
        f"/v1/recordings/{stereo_recording['id']}/{path}", params=params, headers=auth_headers("upload")
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "invalid_effect_params" and body["parameter"] == parameter


def test_unknown_recording_and_auth(client, auth_headers) -> None:  # type: ignore[no-untyped-def]
    for path in ("visualizer", "waveform.dat", "waveform.json", "beats"):
        r = client.get(f"/v1/recordings/rec_missing/{path}", headers=auth_headers("claim"))
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        assert client.get(f"/v1/recordings/rec_missing/{path}").status_code == 401


def test_computes_when_nothing_is_cached(client, auth_headers, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    """Recordings stored without artifacts (e.g. before effects existed) are computed from the blob."""
    rec_id = stereo_recording["id"]
    h = auth_headers("upload")
    first = {
        p: client.get(f"/v1/recordings/{rec_id}/{p}", headers=h).content
        for p in ("visualizer", "waveform.dat", "beats")
    }
    with client.app.state.session_factory() as s, s.begin():
        s.query(EffectArtifact).filter(EffectArtifact.recording_id == rec_id).delete()
    for p, content in first.items():
        r = client.get(f"/v1/recordings/{rec_id}/{p}", headers=h)
        assert r.status_code == 200 and r.content == content  # deterministic
    assert len(_rows(client.app, rec_id)) == 3


def test_mono_recording_gets_version_1_dat(client, auth_headers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = auth_headers("upload")
    rec = _store(client.app, encode(tone(440, sr=22050, seconds=2), sr=22050, path=tmp_path / "mono.flac"))
    r = client.get(f"/v1/recordings/{rec['id']}/waveform.dat", headers=h)
    assert r.status_code == 200 and int.from_bytes(r.content[:4], "little") == 1
    j = client.get(f"/v1/recordings/{rec['id']}/waveform.json", headers=h).json()
    assert j["version"] == 1 and "channels" not in j


def test_artifacts_cascade_with_recording(client, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    from db.tables import Recording

    with client.app.state.session_factory() as s, s.begin():
        s.delete(s.get(Recording, stereo_recording["id"]))
    assert _rows(client.app, stereo_recording["id"]) == []


def test_concurrent_misses_compute_once(client, stereo_recording) -> None:  # type: ignore[no-untyped-def]
    """Parallel requests for the same uncached artifact share one computation (single flight)."""
    import asyncio

    from effects.artifacts import spectrum_spec
    from effects.store import get_or_compute

    app = client.app
    calls: list[str] = []

    class CountingPool:
        async def run(self, fn, *args):  # type: ignore[no-untyped-def]
            calls.append(fn.__name__)
            await asyncio.sleep(0.05)
            return fn(*args)

    settings = app.state.settings.effects
    spec = spectrum_spec(fps=12, bands=16, fmt="bin", settings=settings)

    class Rec:
        id = stereo_recording["id"]
        sha256 = None

    with app.state.session_factory() as s:
        from db.tables import Recording

        Rec.sha256 = s.get(Recording, Rec.id).sha256

    async def many():  # type: ignore[no-untyped-def]
        return await asyncio.gather(*[
            get_or_compute(session_factory=app.state.session_factory, pool=CountingPool(), blobs=app.state.blobs,
                           recording=Rec, spec=spec, settings=settings)
            for _ in range(4)
        ])  # fmt: skip

    results = asyncio.run(many())
    assert calls == ["compute_from_file"]
    assert len({r.data for r in results}) == 1
    assert frames_format.decode(results[0].data).bands == 16
    assert sum(1 for k, p in _rows(app, Rec.id) if k == "spectrum" and p == spec.key) == 1
