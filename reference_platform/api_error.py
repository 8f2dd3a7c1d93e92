"""The one error shape of the platform: an exception the handlers raise and its JSON response."""

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status, code, message, field=None, headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra


def error_response(status, code, message, field=None, headers=None, **extra):
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=headers)
