"""Stream a multipart/form-data upload straight into the blob store.

The body is parsed incrementally (python-multipart's push parser), the file part is hashed and
written to a temp file as it arrives, and the byte limit is enforced mid-stream, so neither memory
nor disk grows past the limit whatever the client sends (chunked bodies without Content-Length too).
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

import anyio
from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import MalformedUpload, UnsupportedMediaType
from audio.errors import EmptyAudio, TooLarge
from db.blobstore import LocalBlobStore, PendingBlob

MAX_FIELD_BYTES = 4096
MAX_PARTS = 16
#: Room for multipart framing and small fields on top of the file limit.
ENVELOPE_BYTES = 64 * 1024
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^;]+)", re.IGNORECASE)


@dataclasses.dataclass
class ReceivedUpload:
    sha256: str
    size: int
    created: bool
    filename: str | None
    content_type: str | None
    fields: dict[str, str]


class _State:
    def __init__(self, blobs: LocalBlobStore, max_bytes: int, file_field: str) -> None:
        self.blobs, self.max_bytes, self.file_field = blobs, max_bytes, file_field
        self.fields: dict[str, str] = {}
        self.parts = 0
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.buf = bytearray()
        self.pending: PendingBlob | None = None
        self.file_seen = False
        self.error: Exception | None = None

    # python-multipart callbacks ------------------------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise MalformedUpload(f"more than {MAX_PARTS} form parts")
        self.headers, self.name, self.buf = {}, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        raw = self.headers.get(b"content-disposition", b"")
        _, params = parse_options_header(raw)
        self.name = _decode(params.get(b"name", b""))
        filename = params.get(b"filename")
        star = _FILENAME_STAR.search(raw.decode("latin-1"))
        if star:  # RFC 5987: filename*=utf-8''%E5%90%8D.wav
            value = star.group(1).strip().strip('"')
            _, _, encoded = value.partition("''")
            filename = urllib.parse.unquote(encoded or value).encode()
        if self.name == self.file_field:
            if self.file_seen:
                raise MalformedUpload(f"more than one '{self.file_field}' part")
            self.file_seen = True
            self.filename = _decode(filename)[:512] if filename else None
            ctype = self.headers.get(b"content-type")
            self.content_type = _decode(ctype)[:128] if ctype else None
            self.pending = self.blobs.begin(max_bytes=self.max_bytes)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.pending is not None and self.name == self.file_field:
            self.pending.write(data[start:end])
        else:
            self.buf += data[start:end]
            if len(self.buf) > MAX_FIELD_BYTES:
                raise MalformedUpload(f"form field '{self.name}' is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self.name and self.name != self.file_field:
            self.fields[self.name] = _decode(bytes(self.buf))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def receive_upload(
    request: Request, blobs: LocalBlobStore, *, max_bytes: int, file_field: str = "file"
) -> ReceivedUpload:
    """Parse the request body, storing the ``file_field`` part as a blob.

    Raises TooLarge (413) past ``max_bytes``, UnsupportedMediaType (415) for non-multipart bodies,
    MalformedUpload (422) for broken framing or a missing file part, EmptyAudio for an empty file.
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedMediaType("send the upload as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes + ENVELOPE_BYTES:
                raise TooLarge(f"upload exceeds {max_bytes} bytes", limit_bytes=max_bytes)
        except ValueError:
            raise MalformedUpload("invalid Content-Length") from None
    state = _State(blobs, max_bytes, file_field)
    parser = MultipartParser(
        params[b"boundary"],
        callbacks={  # type: ignore[arg-type]
            "on_part_begin": state.on_part_begin,
            "on_header_field": state.on_header_field,
            "on_header_value": state.on_header_value,
            "on_header_end": state.on_header_end,
            "on_headers_finished": state.on_headers_finished,
            "on_part_data": state.on_part_data,
            "on_part_end": state.on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
        if state.pending is None:
            raise MalformedUpload(f"the form has no '{file_field}' file part")
        if state.pending.size == 0:
            raise EmptyAudio("the uploaded file is empty")
        pending = state.pending
        sha, size = await anyio.to_thread.run_sync(pending.commit)
    except BaseException as exc:
        if state.pending is not None:
            state.pending.discard()
        if isinstance(exc, (TooLarge, MalformedUpload, EmptyAudio)):
            raise
        if isinstance(exc, Exception) and type(exc).__module__.startswith("python_multipart"):
            raise MalformedUpload(f"could not parse the multipart body: {exc}") from None
        raise
    return ReceivedUpload(sha, size, pending.created, state.filename, state.content_type, state.fields)
