"""API-level errors: authentication and authorization (the rest come from the domain packages)."""

from __future__ import annotations

from core.errors import SonggateError


class ApiError(SonggateError):
    code = "api_error"
    status = 400
    title = "Bad request"


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401
    title = "Missing or invalid API key"


class Forbidden(ApiError):
    code = "forbidden"
    status = 403
    title = "API key lacks the required scope"


class UnsupportedMediaType(ApiError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported request content type"


class MalformedUpload(ApiError):
    code = "malformed_upload"
    status = 422
    title = "Malformed multipart upload"
