"""Go struct shapes for `inspect --format`: docker runs a template on its typed struct first, then on raw JSON.

A GoStruct wraps the daemon's JSON object with the Go field names, kinds and `omitempty` tags of the type
docker decodes it into, so `{{.ID}}`, `{{.Config.Env}}` (a nil slice prints `[]`), `{{.Metadata.LastTagTime}}`
(a time.Time) and `{{json .Config}}` (omitempty fields dropped) print as docker prints them. `raw_value` turns
the same JSON into what docker's fallback sees: untyped maps, `[]interface {}` lists and untyped nils.

May import: the standard library, berth.cli.gotemplate.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from berth.cli.gotemplate import NO_VALUE, GoNil, GoValue, RawDict, RawList


@dataclass(frozen=True)
class F:
    name: str
    kind: str  # string int bool slice map ptr struct time any
    key: str = ""  # JSON key when it differs from the Go name
    omitempty: bool = False
    sub: GoType | None = None
    embedded: bool = False


@dataclass(frozen=True)
class GoType:
    name: str
    fields: tuple[F, ...]


def _zero(kind: str) -> Any:
    return {"string": "", "int": 0, "bool": False, "slice": GoNil("slice"), "map": GoNil("map"),
            "ptr": GoNil("ptr"), "time": GoTime(""), "any": GoNil("ptr")}.get(kind, GoNil("ptr"))


class GoTime(GoValue):
    """A time.Time decoded from RFC 3339 JSON: prints as Go's Time.String()."""

    def __init__(self, text: str) -> None:
        self.text = text

    def go_string(self) -> str:
        if not self.text:
            return "0001-01-01 00:00:00 +0000 UTC"
        date, _, rest = self.text.partition("T")
        clock = rest.rstrip("Z")
        zone = " +0000 UTC" if rest.endswith("Z") else ""
        if not zone:
            for sign in ("+", "-"):
                if sign in clock:
                    clock, _, off = clock.partition(sign)
                    zone = f" {sign}{off.replace(':', '')}"
                    break
        whole, dot, frac = clock.partition(".")
        frac = frac.rstrip("0")
        return f"{date} {whole}{'.' + frac if frac else ''}{zone}"

    def json_value(self) -> Any:
        return self.text or "0001-01-01T00:00:00Z"

    def truthy(self) -> bool:
        return True

    def sort_key(self) -> Any:
        try:
            return _dt.datetime.fromisoformat(self.text.replace("Z", "+00:00"))
        except ValueError:
            return self.text


class GoStruct(GoValue):
    def __init__(self, gotype: GoType, data: dict[str, Any], pointer: bool = False) -> None:
        self.gotype, self.data, self.pointer = gotype, data, pointer
        self.type_name = ("*" if pointer else "") + gotype.name

    def lookup(self, name: str) -> tuple[bool, Any]:
        for f in self.gotype.fields:
            if f.embedded and f.sub is not None:
                found, value = GoStruct(f.sub, self.data).lookup(name)
                if found:
                    return True, value
            elif f.name == name:
                return True, self._value(f)
        return False, None

    def _value(self, f: F) -> Any:
        raw = self.data.get(f.key or f.name)
        if raw is None:
            return _zero(f.kind) if f.kind != "struct" else GoStruct(f.sub or _EMPTY, {})
        if f.kind == "time":
            return GoTime(str(raw))
        if f.kind in ("struct", "ptr") and f.sub is not None and isinstance(raw, dict):
            return GoStruct(f.sub, raw, pointer=f.kind == "ptr")
        if f.kind == "map" and isinstance(raw, dict):
            return {k: (GoStruct(_EMPTY, {}) if v == {} else v) for k, v in raw.items()}
        return raw

    def go_string(self) -> str:
        from berth.cli.gotemplate import go_print

        parts = []
        for f in self.gotype.fields:
            if f.embedded and f.sub is not None:
                parts.append(GoStruct(f.sub, self.data).go_string())
                continue
            value = self._value(f)
            if isinstance(value, GoStruct) and value.pointer:
                parts.append("0xc000000000")  # Go prints a nested pointer as its address
            else:
                parts.append(go_print(value))
        return "{" + " ".join(parts) + "}"

    def json_value(self) -> Any:
        from berth.cli.gotemplate import to_json_value

        out: dict[str, Any] = {}
        for f in self.gotype.fields:
            if f.embedded and f.sub is not None:
                out.update(GoStruct(f.sub, self.data).json_value())
                continue
            value = self._value(f)
            if f.omitempty and _empty(value):
                continue
            out[f.key or f.name] = to_json_value(value)
        return out

    def truthy(self) -> bool:
        return True


def _empty(value: Any) -> bool:
    if isinstance(value, GoNil):
        return True
    if isinstance(value, GoStruct):
        return False
    if isinstance(value, GoTime):
        return False
    return value in ("", 0, False) or (isinstance(value, list | dict) and not value)


_EMPTY = GoType("struct {}", ())

HEALTH = GoType("container.HealthConfig", (
    F("Test", "slice", omitempty=True), F("Interval", "int", omitempty=True), F("Timeout", "int", omitempty=True),
    F("StartPeriod", "int", omitempty=True), F("StartInterval", "int", omitempty=True),
    F("Retries", "int", omitempty=True)))

CONTAINER_CONFIG = GoType("container.Config", (
    F("Hostname", "string"), F("Domainname", "string"), F("User", "string"), F("AttachStdin", "bool"),
    F("AttachStdout", "bool"), F("AttachStderr", "bool"), F("ExposedPorts", "map", omitempty=True),
    F("Tty", "bool"), F("OpenStdin", "bool"), F("StdinOnce", "bool"), F("Env", "slice"), F("Cmd", "slice"),
    F("Healthcheck", "ptr", omitempty=True, sub=HEALTH), F("ArgsEscaped", "bool", omitempty=True),
    F("Image", "string"), F("Volumes", "map"), F("WorkingDir", "string"), F("Entrypoint", "slice"),
    F("NetworkDisabled", "bool", omitempty=True), F("MacAddress", "string", omitempty=True),
    F("OnBuild", "slice"), F("Labels", "map"), F("StopSignal", "string", omitempty=True),
    F("StopTimeout", "ptr", omitempty=True), F("Shell", "slice", omitempty=True)))

OCI_IMAGE_CONFIG = GoType("v1.ImageConfig", (
    F("User", "string", omitempty=True), F("ExposedPorts", "map", omitempty=True),
    F("Env", "slice", omitempty=True), F("Entrypoint", "slice", omitempty=True), F("Cmd", "slice", omitempty=True),
    F("Volumes", "map", omitempty=True), F("WorkingDir", "string", omitempty=True),
    F("Labels", "map", omitempty=True), F("StopSignal", "string", omitempty=True),
    F("ArgsEscaped", "bool", omitempty=True)))

DOCKER_IMAGE_CONFIG_EXT = GoType("v1.DockerOCIImageConfigExt", (
    F("Healthcheck", "ptr", omitempty=True, sub=HEALTH), F("OnBuild", "slice", omitempty=True),
    F("Shell", "slice", omitempty=True)))

DOCKER_IMAGE_CONFIG = GoType("v1.DockerOCIImageConfig", (
    F("ImageConfig", "struct", sub=OCI_IMAGE_CONFIG, embedded=True),
    F("DockerOCIImageConfigExt", "struct", sub=DOCKER_IMAGE_CONFIG_EXT, embedded=True)))

IMAGE_INSPECT = GoType("image.InspectResponse", (
    F("ID", "string", key="Id"), F("RepoTags", "slice"), F("RepoDigests", "slice"), F("Parent", "string"),
    F("Comment", "string"), F("Created", "string", omitempty=True), F("Container", "string", omitempty=True),
    F("ContainerConfig", "ptr", omitempty=True, sub=CONTAINER_CONFIG), F("DockerVersion", "string"),
    F("Author", "string"), F("Config", "ptr", sub=DOCKER_IMAGE_CONFIG), F("Architecture", "string"),
    F("Variant", "string", omitempty=True), F("Os", "string"), F("OsVersion", "string", omitempty=True),
    F("Size", "int"), F("VirtualSize", "int", omitempty=True),
    F("GraphDriver", "struct", sub=GoType("storage.DriverData", (F("Data", "map"), F("Name", "string")))),
    F("RootFS", "struct", sub=GoType("image.RootFS", (F("Type", "string", omitempty=True),
                                                        F("Layers", "slice", omitempty=True)))),
    F("Metadata", "struct", sub=GoType("image.Metadata", (F("LastTagTime", "time", omitempty=True),))),
    F("Descriptor", "ptr", omitempty=True, sub=_EMPTY), F("Manifests", "slice", omitempty=True)))


def image_inspect_value(data: dict[str, Any]) -> GoStruct:
    return GoStruct(IMAGE_INSPECT, data)


def raw_value(data: Any) -> Any:
    """The JSON as Go's `interface{}` decoding has it: nulls untyped, arrays `[]interface {}`."""
    if data is None:
        return NO_VALUE
    if isinstance(data, dict):
        return RawDict((k, raw_value(v)) for k, v in data.items())
    if isinstance(data, list):
        return RawList(raw_value(v) for v in data)
    return data


class JsonStruct(GoValue):
    """A JSON object standing in for a Go struct we have no schema for (info, version, containers): fields are
    its keys, an unknown field is an error naming `type_name`, nested objects are structs too, except maps."""

    MAP_KEYS = frozenset({"Labels", "Volumes", "ExposedPorts", "Data", "Options", "Ports", "Networks",
                          "DriverOpts", "Runtimes", "RegistryConfig", "IndexConfigs", "Plugins"})

    def __init__(self, data: dict[str, Any], type_name: str) -> None:
        self.data = data
        self.type_name = type_name

    # Go field names whose JSON key is spelled differently
    ALIASES = {"APIVersion": "ApiVersion", "MinAPIVersion": "MinAPIVersion", "ID": "ID"}

    # fields of docker's structs that are omitted from the JSON when nil (`omitempty` pointers): a template may
    # still name them, and Go prints <nil>
    NIL_WHEN_ABSENT = {"container.InspectResponse": frozenset({"SizeRw", "SizeRootFs", "Node"})}

    def lookup(self, name: str) -> tuple[bool, Any]:
        name = self.ALIASES.get(name, name)
        if name not in self.data:
            if name in self.NIL_WHEN_ABSENT.get(self.type_name, ()):
                return True, GoNil("ptr")
            return False, None
        value = self.data[name]
        if value is None:
            return True, GoNil("map" if name in self.MAP_KEYS else "ptr")   # a nil map prints map[]
        if isinstance(value, dict) and name not in self.MAP_KEYS:
            return True, JsonStruct(value, self.type_name)
        return True, value

    def go_string(self) -> str:
        from berth.cli.gotemplate import go_print

        return "{" + " ".join(go_print(self.lookup(k)[1]) for k in self.data) + "}"

    def json_value(self) -> Any:
        return self.data
