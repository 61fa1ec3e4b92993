"""The one place where berth's error kinds become HTTP statuses (STYLE.md §7)."""

from __future__ import annotations

from berth.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    NotModified,
    Unauthorized,
    Unavailable,
)

HTTP_STATUS: dict[type[BaseException], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidArgument: 400,
    Unavailable: 503,
    NotModified: 304,
    Unauthorized: 401,
    Forbidden: 403,
}


def http_status(err: BaseException) -> int:
    for kind in type(err).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500
