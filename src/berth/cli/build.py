"""`berth build`: docker's legacy (classic builder) client. The context is packed here, .dockerignore applied
client side as the docker CLI does, sent as a tar to POST /build with the query the docker CLI sends, and the
daemon's JSON stream printed as docker prints it.

Context: a directory, or `-` (stdin holds a tar, possibly compressed, or a Dockerfile alone). `-f` names the
Dockerfile relative to the current directory; one outside the context (or `-f -`) travels inside the tar as
`.dockerfile.<random>`, listed in a rewritten .dockerignore so the daemon drops it from the context, as docker does.
A build error in the stream exits with its code (a failed RUN's exit status), docker's `StatusError`.

May import: the standard library, berth.cli.*, berth.client, berth.errors, and berth.build.context /
berth.build.dockerignore (stdlib-only modules, imported when this command runs).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping

from berth.cli.context import Ctx
from berth.cli.units import human_size
from berth.errors import BerthError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

_CHUNK = 256 * 1024
_SNIFF = 1024


class BuildFailed(BerthError):
    """The daemon reported an error in the build stream; exit_code is the one it gave (a RUN's status) or 1."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code or 1


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag in the "
                   "\"name:tag\" format")
    p.add_argument("-f", "--file", default="", help="Name of the Dockerfile (Default is \"PATH/Dockerfile\")")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("--target", default="", help="Set the target build stage to build.")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on "
                   "success")
    p.add_argument("--iidfile", default="", help="Write the image ID to the file")
    p.add_argument("--network", default="default", help="Set the networking mode for the RUN instructions during "
                   "build")
    p.add_argument("--cache-from", action="append", default=[], help="Images to consider as cache sources")
    p.add_argument("--platform", default=os.environ.get("DOCKER_DEFAULT_PLATFORM", ""),
                   help="Set platform if server is multi-platform capable")
    p.add_argument("--rm", dest="rm", action="store_true", default=True,
                   help="Remove intermediate containers after a successful build (default true)")
    for text in ("false", "0", "f", "False", "FALSE"):   # docker's bool flag: --rm=false
        p.add_argument(f"--rm={text}", dest="rm", action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    _resource_flags(p)
    p.add_argument("context", nargs="*", metavar="PATH | URL | -")


def _resource_flags(p: argparse.ArgumentParser) -> None:
    """The rest of docker's legacy build flags: passed to the daemon as the docker CLI passes them."""
    from berth.cli.createopts import add_host, go_int, ram_bytes, swap_bytes, ulimit

    p.add_argument("--add-host", action="append", default=[], type=add_host,
                   help="Add a custom host-to-IP mapping (\"host:ip\")")
    p.add_argument("--cgroup-parent", default="", help="Set the parent cgroup for the \"RUN\" instructions during "
                   "build")
    p.add_argument("--compress", action="store_true", help="Compress the build context using gzip")
    p.add_argument("-c", "--cpu-shares", type=go_int, default=0, help="CPU shares (relative weight)")
    p.add_argument("--cpu-period", type=go_int, default=0, help="Limit the CPU CFS (Completely Fair Scheduler) "
                   "period")
    p.add_argument("--cpu-quota", type=go_int, default=0, help="Limit the CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("--disable-content-trust", default="true", help="Skip image verification (default true)")
    p.add_argument("--isolation", default="", help="Container isolation technology")
    p.add_argument("-m", "--memory", type=ram_bytes, default=0, help="Memory limit")
    p.add_argument("--memory-swap", type=swap_bytes, default=0, help="Swap limit equal to memory plus swap: -1 to "
                   "enable unlimited swap")
    p.add_argument("--security-opt", action="append", default=[], help="Security options")
    p.add_argument("--shm-size", type=ram_bytes, default=0, help="Size of \"/dev/shm\"")
    p.add_argument("--squash", action="store_true", help="Squash newly built layers into a single new layer")
    p.add_argument("--ulimit", action="append", default=[], type=ulimit, help="Ulimit options")


# ---- the query --------------------------------------------------------------------------------------------------

def go_json(value: Any, sort_keys: bool = True) -> str:
    """encoding/json.Marshal: compact, map keys sorted (sort_keys=False for structs, whose dicts are already in
    field order), <>& and U+2028/9 escaped, other text kept as UTF-8."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def build_args(values: list[str], environ: Mapping[str, str]) -> dict[str, str | None]:
    """--build-arg K=V, or K alone: the caller's environment value, or null (the Dockerfile's default)."""
    out: dict[str, str | None] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep and key in environ:
            out[key] = environ[key]
        else:
            out[key] = value if sep else None
    return out


def labels(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def build_query(a: argparse.Namespace, dockerfile: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The docker CLI's ImageBuildOptions as query parameters: only the non-default ones, keys sorted."""
    q: dict[str, Any] = {}
    args = build_args(a.build_arg, environ)
    if args:
        q["buildargs"] = go_json(args)
    if a.cache_from:
        q["cachefrom"] = go_json(a.cache_from)
    if a.cgroup_parent:
        q["cgroupparent"] = a.cgroup_parent
    for key, value in (("cpuperiod", a.cpu_period), ("cpuquota", a.cpu_quota), ("cpusetcpus", a.cpuset_cpus),
                       ("cpusetmems", a.cpuset_mems), ("cpushares", a.cpu_shares)):
        if value:
            q[key] = str(value)
    if dockerfile:
        q["dockerfile"] = dockerfile
    if a.add_host:
        q["extrahosts"] = tuple(a.add_host)
    if a.force_rm:
        q["forcerm"] = "1"
    if a.isolation and a.isolation != "default":
        q["isolation"] = a.isolation
    lab = labels(a.label)
    if lab:
        q["labels"] = go_json(lab)
    if a.memory:
        q["memory"] = str(a.memory)
    if a.memory_swap:
        q["memswap"] = str(a.memory_swap)
    if a.network and a.network != "default":
        q["networkmode"] = a.network
    if a.no_cache:
        q["nocache"] = "1"
    if a.platform:
        q["platform"] = a.platform.lower()
    if a.pull:
        q["pull"] = "1"
    if a.quiet:
        q["q"] = "1"
    if not a.rm:
        q["rm"] = "0"
    if a.security_opt:
        q["securityopt"] = tuple(a.security_opt)
    if a.shm_size:
        q["shmsize"] = str(a.shm_size)
    if a.squash:
        q["squash"] = "1"
    if a.tag:
        q["t"] = tuple(a.tag)
    if a.target:
        q["target"] = a.target
    if a.ulimit:
        # a list of structs: Go keeps their field order (Name, Hard, Soft), it sorts only map keys
        q["ulimits"] = go_json(a.ulimit, sort_keys=False)
    q["version"] = "1"
    return q


# ---- the context ------------------------------------------------------------------------------------------------

def _is_archive(head: bytes) -> bool:
    """The CLI's DetectArchiveReader: a compressed stream, or something that parses as a tar header."""
    if head.startswith((b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _dockerfile_rel(context_dir: str, given: str) -> str:
    """getDockerfileRelPath: the Dockerfile relative to the context (may start with ../ when outside it)."""
    if given:
        path = os.path.abspath(given)
    else:
        path = os.path.join(context_dir, "Dockerfile")
        alt = os.path.join(context_dir, "dockerfile")
        if not os.path.lexists(path) and os.path.lexists(alt):
            path = alt
    try:
        path = os.path.realpath(path, strict=True)
    except OSError as exc:
        raise InvalidArgument(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                              f"lstat {exc.filename}: {exc.strerror.lower() if exc.strerror else exc}") from exc
    return os.path.relpath(path, context_dir)


def _context_dir(given: str) -> str:
    path = os.path.abspath(given)
    try:
        path = os.path.realpath(path, strict=True)
    except OSError as exc:
        raise InvalidArgument(f'unable to prepare context: path "{given}" not found') from exc
    if not os.path.isdir(path):
        raise InvalidArgument(f"unable to prepare context: context must be a directory: {path}")
    return path


def _random_dockerfile_name() -> str:
    return ".dockerfile." + os.urandom(10).hex()


def _pack_directory(context_dir: str, rel_dockerfile: str, dockerfile_text: bytes | None
                    ) -> tuple[Iterator[bytes], str]:
    """The context tar as chunks made while they are sent, and the dockerfile name the daemon is to use."""
    from pathlib import Path

    from berth.build.context import context_tar_stream
    from berth.build.dockerignore import read_dockerignore

    ignore = read_dockerignore(context_dir)
    extra: list[tuple[str, bytes]] = []
    name = rel_dockerfile
    if dockerfile_text is not None:
        name = _random_dockerfile_name()
        try:
            with open(os.path.join(context_dir, ".dockerignore"), "rb") as f:
                old = f.read()
        except FileNotFoundError:
            old = b".dockerignore"
        extra = [(name, dockerfile_text), (".dockerignore", old + b"\n" + name.encode() + b"\n")]
    chunks = context_tar_stream(Path(context_dir), "" if dockerfile_text is not None else rel_dockerfile, ignore,
                                extra)
    return chunks, name


class _Counted:
    """Request body chunks, counted as they are sent."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks, self.sent, self.done = chunks, 0, False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += len(chunk)
            yield chunk
        self.done = True


def _stdin_chunks(stdin: BinaryIO, head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while chunk := stdin.read(_CHUNK):
        yield chunk


def _read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < _SNIFF:
        chunk = stream.read(_SNIFF - len(head))
        if not chunk:
            break
        head += chunk
    return head


# ---- output -----------------------------------------------------------------------------------------------------

def _display(messages: Iterator[Any], out: TextIO, terminal: bool) -> str:
    """jsonmessage.DisplayJSONMessagesStream for a build: returns the image id from `aux`."""
    image_id = ""
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if msg.get("aux") is not None:
            aux = msg["aux"]
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]
            continue
        detail = msg.get("errorDetail")
        if detail or msg.get("error"):
            detail = detail if isinstance(detail, dict) else {}
            message = str(detail.get("message") or msg.get("error") or "")
            code = detail.get("code")
            raise BuildFailed(message, code if isinstance(code, int) else 0)
        progress = msg.get("progressDetail") or None
        if progress and not terminal and msg.get("progress"):
            continue  # progress bars only on a terminal
        line = ""
        if msg.get("id"):
            line += f"{msg['id']}: "
        if msg.get("stream"):
            out.write(line + str(msg["stream"]))
        elif terminal and msg.get("progress"):
            out.write(f"\x1b[2K\r{line}{msg.get('status', '')} {msg['progress']}\r")
        else:
            out.write(line + str(msg.get("status", "")) + "\n")
        out.flush()
    return image_id


def _registry_config() -> str:
    """X-Registry-Config: every stored credential, keyed by registry, as the docker CLI sends it (base64url JSON;
    `e30=`, i.e. {}, when there are none), so a FROM on a private registry can be pulled."""
    from pathlib import Path

    from berth.distribution.credentials import CredentialStore, default_config_dir

    path = Path(default_config_dir()) / "config.json"
    try:
        config = json.loads(path.read_bytes() or b"{}")
    except (OSError, ValueError):
        config = {}
    keys: set[str] = set()
    if isinstance(config, dict):
        for section in ("auths", "credHelpers"):
            entries = config.get(section)
            if isinstance(entries, dict):
                keys.update(str(k) for k in entries)
    store = CredentialStore()
    auths: dict[str, dict[str, str]] = {}
    for key in sorted(keys):
        auth = store.get(key)
        entry = {"username": auth.username, "password": auth.password, "serveraddress": key,
                 "identitytoken": auth.identity_token, "registrytoken": auth.registry_token}
        auths[key] = {k: v for k, v in entry.items() if v}   # Go's omitempty, in the struct's field order
    return base64.urlsafe_b64encode(go_json(auths, sort_keys=False).encode()).decode()


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """--compress: the context as a gzip stream, compressed while it is sent."""
    import zlib

    packer = zlib.compressobj(wbits=31)
    for chunk in chunks:
        out = packer.compress(chunk)
        if out:
            yield out
    yield packer.flush()


def _prepare(ctx: Ctx, a: argparse.Namespace, tmp: str) -> tuple[_Counted, str]:
    """The body to send and the dockerfile parameter."""
    given = a.context[0]
    dockerfile_from_stdin = a.file == "-"
    if given == "-":
        if dockerfile_from_stdin:
            raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
        head = _read_head(ctx.stdin)
        if _is_archive(head):
            return _Counted(_stdin_chunks(ctx.stdin, head)), a.file
        # a Dockerfile alone becomes the whole context, as the CLI's WriteTempDockerfile does
        context_dir = os.path.join(tmp, "context")
        os.mkdir(context_dir)
        with open(os.path.join(context_dir, "Dockerfile"), "wb") as f:
            f.write(head)
            shutil.copyfileobj(ctx.stdin, f)
        rel, text = "Dockerfile", None
    else:
        if given.startswith(("http://", "https://", "git://", "git@", "github.com/")):
            raise InvalidArgument("unable to prepare context: remote contexts (URLs, git) are not supported by "
                                  "berth build yet: clone or download it and pass the directory")
        context_dir = _context_dir(given)
        text = None
        rel = "-" if dockerfile_from_stdin else _dockerfile_rel(context_dir, a.file)
        if dockerfile_from_stdin:
            text = ctx.stdin.read()
        elif rel.startswith("../"):
            try:
                with open(a.file, "rb") as f:
                    text = f.read()
            except OSError as exc:
                raise InvalidArgument(f"unable to open Dockerfile: {exc}") from exc
    chunks, dockerfile = _pack_directory(context_dir, rel, text)
    return _Counted(chunks), dockerfile


def run_build(ctx: Ctx, a: argparse.Namespace) -> int:
    out = ctx.out
    # with -q, docker keeps the progress and the build output aside and shows them only when the build fails
    progress: TextIO = io.StringIO() if a.quiet else out
    result: TextIO = io.StringIO() if a.quiet else out
    with tempfile.TemporaryDirectory(prefix="berth-build-") as tmp:
        counted, dockerfile = _prepare(ctx, a, tmp)
        if a.compress:
            counted = _Counted(_gzipped(counted.chunks))
        query = build_query(a, dockerfile, ctx.environ)
        try:
            resp = ctx.client.open("POST", "/build", query, body=counted,
                                   headers={"Content-Type": "application/x-tar",
                                            "X-Registry-Config": _registry_config()})
        finally:
            if counted.done:  # docker reports the upload once it is complete, whatever the answer
                progress.write(f"Sending build context to Docker daemon {human_size(counted.sent):>8}\r\r\n")
                progress.flush()
        try:
            image_id = _display(resp.json_lines(), result, not a.quiet and ctx.out_is_terminal())
        except BuildFailed:
            if a.quiet:
                ctx.err.write(_text(progress) + _text(result))
            raise
        finally:
            resp.close()
    if a.quiet:
        image_id = _text(result)
        out.write(image_id)
        out.flush()
    if a.iidfile:
        if not image_id:
            raise InvalidArgument(f"Server did not provide an image ID. Cannot write {a.iidfile}")
        with open(a.iidfile, "w") as f:
            f.write(image_id)
    return 0


def _text(stream: TextIO) -> str:
    getvalue = getattr(stream, "getvalue", None)
    return str(getvalue()) if getvalue is not None else ""
