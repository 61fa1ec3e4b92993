"""JSON on the container start path, through CPython's C accelerator `_json` rather than the `json` package.

`import json` pulls in `re` and its compiler: about 5 ms of the ~50 ms a `berth-runtime run` takes. `_json` is the
C module `json` itself uses for the same work (scanner and encoder); only the thin Python wrappers are skipped.
Error paths fall back to the real `json` for its messages. Never used inside a container (nothing here runs after
pivot_root). May import: nothing from berth.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _Context:
    """What _json.make_scanner reads from json.JSONDecoder: strict parsing, plain dicts, ints and floats."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # typeshed wants a JSONDecoder; any object with these attributes does


def _unencodable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None, ": ", ", ", False, False,
                             True)


def loads(data: bytes | str) -> Any:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
        if not text[end:].strip(_WS):
            return value
    except Exception:  # noqa: BLE001, S110 (any trouble: let the json package decide and explain)
        pass
    # Invalid JSON (or a scanner surprise): the json package raises its JSONDecodeError (a ValueError) with
    # line and column, or, should the fast path have been wrong, returns the value.
    import json

    return json.loads(text)


def dumps(value: Any) -> str:
    return "".join(_encode(value, 0))
