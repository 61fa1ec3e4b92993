"""Frozen, typed records: what `@dataclass(frozen=True, slots=True)` gives, without its start-up cost.

`dataclasses` imports `inspect` and compiles five or six functions per class with exec(): about 0.5 ms a class,
and the runtime spec alone has two dozen classes. `berth-runtime run` pays that on every container start (the issue's
performance budget is "within 2x of runc"), so the OCI runtime model and the runtime use these instead. Type
checkers see them as dataclasses (PEP 681 dataclass_transform): constructor signatures, frozen attributes.

    @record
    class Mount:
        destination: str
        options: tuple[str, ...] = ()
        labels: Mapping[str, str] = field(default_factory=dict)

replace(obj, **changes) is dataclasses.replace for records. May import: nothing (stdlib only).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing is what this module exists to avoid
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform, overload

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs):
        return lambda f: f

    def overload(f):
        return f

_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made fresh for each instance (a dict, a list...)."""
    return _Factory(default_factory)  # type: ignore[return-value]


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True) -> Callable[[type[T]], type[T]]: ...  # noqa: F811


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = True) -> Any:  # noqa: F811
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def _build(cls: Any, frozen: bool) -> Any:
    annotations = cls.__dict__.get("__annotations__", {})
    names = tuple(n for n, a in annotations.items() if not str(a).startswith("ClassVar"))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    required_after_default = [n for i, n in enumerate(names) if n not in defaults
                              and any(m in defaults for m in names[:i])]
    if required_after_default:
        raise TypeError(f"{cls.__name__}: field {required_after_default[0]!r} without a default follows one with")
    namespace = {k: v for k, v in cls.__dict__.items() if k not in defaults and k not in ("__dict__", "__weakref__")}
    count = len(names)
    qualname = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > count:
            raise TypeError(f"{qualname}() takes {count} arguments but {len(args)} were given")
        for i, name in enumerate(names):
            if i < len(args):
                value = args[i]
                if name in kwargs:
                    raise TypeError(f"{qualname}() got multiple values for {name!r}")
            elif name in kwargs:
                value = kwargs.pop(name)
            else:
                value = defaults.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{qualname}() missing required argument {name!r}")
                if isinstance(value, _Factory):
                    value = value.make()
            object.__setattr__(self, name, value)
        if len(args) < count and kwargs:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {next(iter(kwargs))!r}")
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __repr__(self: Any) -> str:
        return f"{qualname}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    def __getstate__(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in names)

    def __setstate__(self: Any, state: tuple[Any, ...]) -> None:
        for n, v in zip(names, state, strict=True):
            object.__setattr__(self, n, v)

    namespace.update(__slots__=names, __init__=__init__, __repr__=__repr__, __eq__=__eq__,
                     __getstate__=__getstate__, __setstate__=__setstate__, __match_args__=names,
                     __record_fields__=names)
    if frozen:
        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {qualname}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {qualname}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, n) for n in names))

        namespace.update(__setattr__=__setattr__, __delattr__=__delattr__, __hash__=__hash__)
    else:
        namespace["__hash__"] = None
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = qualname
    return new


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of a record with some fields changed."""
    names = type(obj).__record_fields__  # type: ignore[attr-defined]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})  # type: ignore[call-arg]
