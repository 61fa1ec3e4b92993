"""Containers' lifecycle: create, start, attach, wait, stop, kill, restart, pause, rename, remove, and the
reconciliation after a daemon restart. Every running container has a monitor (berth.monitor) that outlives
berthd; this service talks to it over its socket and records what it reports.

Each multi-step operation records how to undo its steps (STYLE.md §11): a failed create or start leaves no
snapshot, mount, monitor or record behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berth.engine import linkenv, monitors, nsmodes, recovery, volumeuse
from berth.engine import netns as netns_mod
from berth.engine.containers import Container, ContainerConfig, ContainerState, ContainerStore, Status, check_transition
from berth.engine.events import EventService, rfc3339_to_ns
from berth.engine.health import health_at_start, health_at_stop, merge_healthcheck, validate_healthcheck
from berth.engine.names import check_name, random_name
from berth.engine.networks import NetworkService, container_view
from berth.engine.specgen import ResolvedUser, SpecPaths, build_spec, validate
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, NotModified, RuntimeFailure, Unavailable
from berth.images.service import ImageService
from berth.monitor.options import MonitorOptions
from berth.network.model import NetworkFailure
from berth.oci.config import ImageConfig
from berth.runtime import api as runtime
from berth.snapshots.store import Snapshotter
from berth.util.atomic import read_json, write_atomic, write_json_atomic
from berth.volumes.store import VolumeStore

log = logging.getLogger("berthd")
HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
         "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    t = time.time_ns()
    return datetime.fromtimestamp(t // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{t % 10**9:09d}Z"


@dataclass(frozen=True, slots=True)
class CreateRequest:
    name: str
    draft: ContainerConfig      # the user's choices; cmd/entrypoint None = "the image's"


def merge_image(draft: ContainerConfig, image_id: str, image: ImageConfig) -> ContainerConfig:
    """Docker's merge of a create request with the image's defaults."""
    cfg = image.config
    entrypoint = draft.entrypoint if draft.entrypoint is not None else cfg.entrypoint
    if draft.cmd:
        cmd: tuple[str, ...] | None = draft.cmd
    else:
        cmd = cfg.cmd if draft.entrypoint is None else None   # a new entrypoint drops the image's CMD
    env = list(cfg.env)
    for item in draft.env:
        key = item.partition("=")[0]
        env = [e for e in env if e.partition("=")[0] != key] + [item]
    from berth.oci.digest import Digest
    return replace(draft, image_id=Digest.parse(image_id), entrypoint=entrypoint, cmd=cmd,
                   args=tuple(entrypoint or ()) + tuple(cmd or ()), env=tuple(env),
                   working_dir=draft.working_dir or cfg.working_dir, user=draft.user or cfg.user,
                   labels={**cfg.labels, **draft.labels}, stop_signal=draft.stop_signal or cfg.stop_signal,
                   exposed_ports=tuple(sorted(set(cfg.exposed_ports) | set(draft.exposed_ports))),
                   volumes=tuple(sorted(set(cfg.volumes) | set(draft.volumes))),
                   healthcheck=merge_healthcheck(draft.healthcheck, cfg.healthcheck))


class StartFailed(InvalidArgument):
    """The runtime could not start the container's process (Docker answers 400; the CLI exits 126/127)."""


class ContainerService:
    def __init__(self, root: Path, exec_root: Path, images: ImageService, snapshots: Snapshotter,
                 spawn_monitor: Callable[[MonitorOptions], object], events: EventService | None = None,
                 volumes: VolumeStore | None = None, network: NetworkService | None = None,
                 default_init: bool = False) -> None:
        self.store = ContainerStore(root / "containers")
        self._default_init = default_init    # berthd --init
        self.network = network
        self.volumes = volumes or VolumeStore(root / "volumes", users=volumeuse.VolumeUsers(self.store),
                                              notify=lambda action, v: self.events.volume(action, v.name, v.driver))
        self.events = events if events is not None else EventService(None)
        self._exec_root = exec_root
        self.state_root = self._state_root = exec_root / "runtime"
        self._sockets = exec_root / "m"
        for d in (self._state_root, self._sockets):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._images, self._snapshots = images, snapshots
        self._spawn_monitor = spawn_monitor
        self._lock = threading.RLock()            # names and state transitions
        self._changed = threading.Condition(self._lock)
        self._pending: dict[str, list[threading.Event]] = {}   # attach clients waiting for a start
        self._attached: dict[str, list[threading.Event]] = {}
        self._final: dict[str, ContainerState] = {}           # last states of removed containers, for wait
        # Starts run outside the lock (20 at once must not queue behind each other's mounts and monitors):
        # _starting holds the containers being started, _live those whose monitor already serves attach clients.
        self._starting: set[str] = set()
        self._live: set[str] = set()
        self._closing = False

    def shutdown(self) -> None:
        """berthd is stopping: wake every blocked wait and attach so their threads end (containers run on)."""
        with self._lock:
            self._closing = True
            for events in self._pending.values():
                for ready in events:
                    ready.set()
            self._changed.notify_all()

    # -- lookup -----------------------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix, as Docker resolves them."""
        ref = ref.lstrip("/")
        if len(ref) == 64:
            with contextlib.suppress(NotFound):
                return self.store.load(ref)
        # a name or a prefix: found from the state files alone, then that one record read (not all of them)
        names = self.store.names()
        found = names.get(ref)
        prefixed = {i for i in names.values() if i.startswith(ref)} if ref and found is None else set()
        with contextlib.suppress(NotFound, ValueError, KeyError, TypeError, AttributeError):
            if found is not None:
                return self.store.load(found)
            if len(prefixed) == 1:
                return self.store.load(prefixed.pop())
        every = list(self.store.all())   # ambiguous, absent, or a record that does not parse: the full scan
        for c in every:
            if c.name == ref:
                return c
        matches = [c for c in every if c.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def list_containers(self) -> list[Container]:
        return sorted(self.store.all(), key=lambda c: c.created, reverse=True)

    def using_image(self, image_id: object) -> list[tuple[str, bool]]:
        return [(c.id, c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING))
                for c in self.store.all() if c.config.image_id == image_id]

    def socket_of(self, container_id: str) -> Path:
        return self._sockets / f"{container_id[:16]}.sock"

    def netns_of(self, container_id: str) -> Path:
        return self._exec_root / "netns" / container_id[:16]

    def bundle_of(self, c: Container) -> Path:
        return c.dir / "bundle"

    # -- create -----------------------------------------------------------------------------------------

    def create(self, request: CreateRequest) -> Container:
        image = self._images.resolve(request.draft.image)
        image_config = ImageConfig.parse(self._images.raw_config(image))
        config = merge_image(request.draft, str(image.id), image_config)
        if self._default_init and (config.extra.get("HostConfig") or {}).get("Init") is None:
            config = replace(config, init=True)
        container_id = secrets.token_hex(32)
        if not config.hostname and config.network_mode.startswith("container:"):
            with contextlib.suppress(NotFound):     # dockerd: it takes the names of the container it joins
                joined = self.get(config.network_mode.partition(":")[2]).config
                config = replace(config, hostname=joined.hostname, domainname=joined.domainname)
        if not config.hostname:
            config = replace(config, hostname=container_id[:12])
        if not config.args:
            raise InvalidArgument("No command specified")
        validate(config)
        validate_healthcheck(config.healthcheck)
        chain = image_config.chain_ids
        with contextlib.ExitStack() as undo:
            # the snapshot first, outside the lock: its id is new, and 20 creates at once must not queue behind
            # each other's directories (bench/containers.py burst)
            self._snapshots.prepare(container_id, chain[-1] if chain else None)
            undo.callback(self._snapshots.remove, container_id)
            with self._lock, self.volumes.lock(), contextlib.ExitStack() as record_undo:
                c = self._create_record(request, config, container_id, record_undo)
                record_undo.pop_all()
            undo.pop_all()
        self.events.container(c, "create")
        return c

    def _create_record(self, request: CreateRequest, config: ContainerConfig, container_id: str,
                       undo: contextlib.ExitStack) -> Container:
        """Caller holds both locks; every step registers its undo."""
        taken = self.store.names()
        if request.name:
            name = check_name(request.name)
            if name in taken:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{taken[name]}". You have to remove (or rename) that container to be able to '
                               f"reuse that name.")
        else:
            name = random_name(set(taken))
        config = volumeuse.resolve(config, self.volumes, self.get, undo)
        c = self.store.create(container_id, now_rfc3339(), config, name)
        undo.callback(self.store.remove, container_id)
        if self.network is not None:
            self.network.register(container_view(c))
            undo.callback(self.network.forget, container_id)
        self._write_etc(c)
        (c.dir / "bundle" / "rootfs").mkdir(parents=True)
        volumeuse.populate(c, self._snapshots, self.volumes)
        return c

    def _write_etc(self, c: Container) -> None:
        # not fsynced: every start writes them again (_launch; hosts and resolv.conf through the network service)
        write_atomic(c.dir / "hostname", (c.config.hostname + "\n").encode(), durable=False)
        write_atomic(c.dir / "hosts", HOSTS.encode(), durable=False)
        write_atomic(c.dir / "resolv.conf", _resolv_conf().encode(), durable=False)

    # -- start ------------------------------------------------------------------------------------------

    def start(self, ref: str) -> Container:
        with self._lock:
            c = self.get(ref)
            if c.state.status in (Status.RUNNING, Status.PAUSED):
                raise NotModified(f"container {c.id} is already running")
            check_transition(c.id, c.state.status, Status.RUNNING)
            if c.id in self._starting:
                raise Conflict(f"container {c.id} is already being started")
            self._starting.add(c.id)
        try:
            c = self._launch(c)
        except BerthError as exc:
            with self._lock:
                self._start_failed(c, exc)
            if isinstance(exc, NetworkFailure):
                raise   # Docker answers 500 for these ("port is already allocated")
            raise StartFailed(str(exc)) from exc
        except OSError as exc:
            # A full disk on the way (hosts, spec): a failed start like any other, so --rm still removes it
            # (the docker CLI waits for that removal: without it `docker run --rm` hangs).
            failure = RuntimeFailure(f"cannot start container {c.id}: {exc.strerror or exc}")
            with self._lock:
                self._start_failed(c, failure)
            raise failure from exc
        finally:
            with self._lock:
                self._starting.discard(c.id)
                self._changed.notify_all()
        return c

    def _wait_not_starting(self, container_id: str, seconds: float = 60) -> None:
        """Caller holds the lock: wait until a start of this container running in another thread is over."""
        deadline = time.monotonic() + seconds
        while container_id in self._starting and time.monotonic() < deadline:
            self._changed.wait(timeout=0.2)

    def _start_failed(self, c: Container, exc: BerthError) -> None:
        """Docker's record of a failed start: the error and 127/126/128 in the state; --rm removes it."""
        text = str(exc)
        code = 127 if ("not found" in text or "no such file" in text.lower()) else \
            126 if "permission denied" in text.lower() else 128
        c = self.store.save_state(c, replace(c.state, error=text, exit_code=code))
        if c.config.auto_remove:
            self._remove(c)
        self._changed.notify_all()

    def _launch(self, c: Container) -> Container:
        """Mount the rootfs, write the spec, spawn the monitor (container created), connect waiting attach
        clients, then start. Runs outside the lock (start() marks the container as starting)."""
        bundle = self.bundle_of(c)
        rootfs = bundle / "rootfs"
        sock = self.socket_of(c.id)
        with contextlib.ExitStack() as undo:
            if not os.path.ismount(rootfs):
                self._snapshots.mount(c.id, rootfs)
                undo.callback(self._snapshots.unmount, rootfs)
            user = self._resolve_user(c, rootfs)
            volumeuse.prepare(c, self.volumes, undo, self.events)
            netns: str | None = None
            if self.network is not None:
                joined = self.network.setup(container_view(c), undo)
                netns = str(joined) if joined is not None else None
            elif c.config.network_mode != "host":
                pinned = self.netns_of(c.id)
                netns_mod.remove(pinned)          # one left by a crash
                netns_mod.create(pinned)
                undo.callback(netns_mod.remove, pinned)
                netns = str(pinned)
            write_atomic(c.dir / "hostname", (c.config.hostname + "\n").encode(), durable=False)
            spec = build_spec(c.config, c.id, user, SpecPaths(str(c.dir / "hostname"), str(c.dir / "hosts"),
                                                               str(c.dir / "resolv.conf")), netns)
            spec = nsmodes.apply(spec, c.config, self.get)      # --pid, --ipc, --uts host|container:
            spec = linkenv.apply(spec, c, self.get, self.network)   # legacy links' variables
            write_json_atomic(bundle / "config.json", spec, durable=False)   # rewritten at every start
            for stale in ("exit.json", "started.json"):
                (c.dir / stale).unlink(missing_ok=True)
            with contextlib.suppress(BerthError, OSError):
                runtime.delete(c.id, str(self._state_root), force=True)   # a runtime record left by a crash
            self._spawn_monitor(MonitorOptions(
                c.id, str(bundle), str(self._state_root), str(c.dir), str(sock), tty=c.config.tty,
                # moby's CloseStdin = StdinOnce && !Tty: with a tty, a client leaving (detach keys) keeps stdin
                stdin=c.config.open_stdin, stdin_once=c.config.open_stdin and c.config.stdin_once
                and not c.config.tty,
                log_max_size=c.config.log_max_size or -1, log_max_file=c.config.log_max_file,
                runtime=c.config.runtime))
            undo.callback(self._abort_monitor, c.id)
            with self._lock:
                self._live.add(c.id)
            undo.callback(self._not_live, c.id)
            self._connect_pending(c.id)
            monitors.request(sock, {"op": "start"})
            started = read_json(c.dir / "started.json") if (c.dir / "started.json").exists() else {}
            state = replace(c.state, status=Status.RUNNING, pid=int(started.get("pid", 0)), exit_code=0, error="",
                            oom_killed=False, started_at=str(started.get("started_at") or now_rfc3339()),
                            finished_at=ZERO_TIME, stopped_by_user=False,
                            health=health_at_start(c.config.healthcheck, c.state.health))
            with self._lock:
                c = self.store.save_state(c, state, durable=False)
                self.events.container(c, "start")
                self._live.discard(c.id)
                self._changed.notify_all()
            undo.pop_all()
        threading.Thread(target=self._watch, args=(c.id,), name=f"watch-{c.id[:12]}", daemon=True).start()
        return c

    def _not_live(self, container_id: str) -> None:
        with self._lock:
            self._live.discard(container_id)

    def _abort_monitor(self, container_id: str) -> None:
        with contextlib.suppress(BerthError, OSError):
            runtime.delete(container_id, str(self._state_root), force=True)

    def _resolve_user(self, c: Container, rootfs: Path) -> ResolvedUser:
        if not c.config.user:
            return ResolvedUser(0, 0)
        from berth.runtime.users import resolve_user
        try:
            u = resolve_user(str(rootfs), c.config.user)
        except NotFound as exc:
            raise InvalidArgument(f"unable to find user {c.config.user}: {exc}") from exc
        extra = []
        for g in c.config.group_add:
            if not g.isdigit():
                raise InvalidArgument(f"--group-add {g!r}: only numeric group ids are supported")
            extra.append(int(g))
        return ResolvedUser(u.uid, u.gid, tuple(dict.fromkeys([*u.groups, *extra])), u.home)

    # -- attach -----------------------------------------------------------------------------------------

    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool, timeout: float = 600) -> socket.socket:
        """A stream of the container's output (and its stdin). For a created container, waits for its start
        and is connected before the process runs, so nothing is missed."""
        ready, done = threading.Event(), threading.Event()
        with self._lock:   # a start makes its monitor live under the lock: no attach falls between
            c = self.get(ref)
            self.events.container(c, "attach")
            if c.state.status in (Status.RUNNING, Status.PAUSED) or c.id in self._live:
                return monitors.attach(self.socket_of(c.id), stdin, stdout, stderr)
            if c.state.status not in (Status.CREATED, Status.EXITED):
                raise Conflict(f"container {c.id} is {c.state.status}; you cannot attach to it")
            self._pending.setdefault(c.id, []).append(ready)
            self._attached.setdefault(c.id, []).append(done)
        try:
            if not ready.wait(timeout):
                raise Conflict(f"container {c.id} was not started within {timeout:.0f}s of the attach")
            if self._closing:
                raise Unavailable("berthd is shutting down")
            return monitors.attach(self.socket_of(c.id), stdin, stdout, stderr)
        finally:
            done.set()
            with self._lock:
                with contextlib.suppress(ValueError):
                    self._pending.get(c.id, []).remove(ready)

    def _connect_pending(self, container_id: str) -> None:
        with self._lock:
            waiting = self._pending.pop(container_id, [])
            done = self._attached.pop(container_id, [])
        for ready in waiting:
            ready.set()
        for d in done:
            d.wait(10)

    # -- exits ------------------------------------------------------------------------------------------

    def _watch(self, container_id: str) -> None:
        """Wait for the monitor to report the exit, then record it (and apply --rm)."""
        info: dict[str, object] | None = None
        try:
            info = monitors.request(self.socket_of(container_id), {"op": "wait"}, timeout=None)
        except (NotFound, BerthError, OSError, ValueError):
            pass   # the monitor is gone: its exit.json, or the lack of one, says what happened
        self._record_exit(container_id, info)

    def _record_exit(self, container_id: str, info: dict[str, object] | None = None) -> None:
        """Record an exit from the monitor's answer, else from its exit.json, else as a lost container."""
        with self._lock:
            try:
                c = self.store.load(container_id)
            except NotFound:
                return
            if c.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
                return
            exit_file = c.dir / "exit.json"
            if info is None and exit_file.exists():
                info = read_json(exit_file)
            if info is not None:
                state = replace(c.state, status=Status.EXITED, exit_code=int(str(info.get("exit_code", 0))),
                                oom_killed=bool(info.get("oom_killed")), pid=0,
                                finished_at=str(info.get("finished_at") or now_rfc3339()))
            else:
                state = replace(c.state, status=Status.EXITED, exit_code=255, pid=0, finished_at=now_rfc3339(),
                                error="the container's monitor died without recording an exit status")
            c = self.store.save_state(c, replace(state, health=health_at_stop(state.health)), durable=False)
            if c.state.oom_killed:
                self.events.container(c, "oom", time_nano=self.events.happened_at(rfc3339_to_ns(c.state.finished_at)))
            self.events.container(c, "die", {"exitCode": str(c.state.exit_code)},
                                  self.events.happened_at(rfc3339_to_ns(c.state.finished_at)))
            self._release_rootfs(c)
            delay = restart_delay(c, ran_for=_seconds_between(c.state.started_at, c.state.finished_at))
            if delay is not None and not self._closing:
                c = self.store.save_state(c, replace(c.state, status=Status.RESTARTING,
                                                     restart_count=c.state.restart_count + 1))
                timer = threading.Timer(delay, self._restart_after_backoff, args=(c.id,))
                timer.daemon = True
                timer.start()
            self._changed.notify_all()
            if c.config.auto_remove and c.state.status is Status.EXITED:
                self._remove(c)

    def _restart_after_backoff(self, container_id: str) -> None:
        with self._lock:
            try:
                c = self.store.load(container_id)
            except NotFound:
                return
            if c.state.status is not Status.RESTARTING or c.state.stopped_by_user or self._closing:
                return
            try:
                self._launch(c)
            except BerthError as exc:
                log.warning("restarting container %s failed: %s", c.short_id, exc)
                self.store.save_state(c, replace(c.state, status=Status.EXITED, error=str(exc)))
                self._changed.notify_all()

    def _release_rootfs(self, c: Container) -> None:
        """What a stopped container no longer needs: its network namespace and its rootfs mount."""
        if self.network is not None:
            self.network.teardown(c.id)
        netns_mod.remove(self.netns_of(c.id))
        rootfs = self.bundle_of(c) / "rootfs"
        # "unmount" events once per run: the rootfs is still mounted only the first time a run is released
        volumeuse.release(c, self.volumes, self.events if os.path.ismount(rootfs) else None)
        if os.path.ismount(rootfs):
            with contextlib.suppress(OSError, BerthError):
                self._snapshots.unmount(rootfs)

    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None) -> ContainerState:
        """Docker's wait conditions: not-running (default), next-exit, removed. Returns the state that ended the
        wait (for `removed`, the last one seen before the record went away)."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        c = self.get(ref)
        last = c.state
        deadline = None if timeout is None else time.monotonic() + timeout
        finished_before = c.state.finished_at if condition == "next-exit" else None
        with self._changed:
            while True:
                try:
                    last = self.store.load(c.id).state
                except NotFound:
                    return self._final.get(c.id, last)
                stopped = last.status in (Status.CREATED, Status.EXITED, Status.DEAD)
                if condition == "not-running" and stopped:
                    return last
                if condition == "next-exit" and last.status in (Status.EXITED, Status.DEAD) and \
                        last.finished_at != finished_before:
                    return last
                self._wait_changed(deadline)

    def _wait_changed(self, deadline: float | None) -> None:
        if self._closing:
            raise Unavailable("berthd is shutting down; the container keeps running")
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise RuntimeFailure("timed out waiting for the container")
        self._changed.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)

    # -- signals ----------------------------------------------------------------------------------------

    def kill(self, ref: str, sig: int = signal.SIGKILL) -> None:
        c = self.get(ref)
        if c.state.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        with self._lock:
            c = self.store.load(c.id)   # its exit may be recorded by now: never write a stale state back
            if c.state.status not in (Status.RUNNING, Status.PAUSED):
                raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
            c = self.store.save_state(c, replace(c.state, stopped_by_user=True))
        self.events.container(c, "kill", {"signal": str(sig)})
        runtime.kill(c.id, str(self._state_root), sig)

    def stop(self, ref: str, timeout: int | None = None, sig: int | None = None) -> None:
        c = self.get(ref)
        with self._lock:   # an exit is recorded (exited, then restarting) under the lock: read it whole
            c = self.store.load(c.id)
            if c.state.status is Status.RESTARTING:   # between two runs: stopping it just ends the restarts
                self.store.save_state(c, replace(c.state, status=Status.EXITED, stopped_by_user=True))
                self._changed.notify_all()
                return
        if c.state.status not in (Status.RUNNING, Status.PAUSED):
            raise NotModified(f"container {c.id} is not running")
        grace = timeout if timeout is not None else (c.config.stop_timeout if c.config.stop_timeout is not None
                                                     else 10)
        first = sig or parse_signal(c.config.stop_signal or "SIGTERM")
        with self._lock:
            c = self.store.load(c.id)   # its exit may be recorded by now: never write a stale state back
            if c.state.status is Status.RESTARTING:   # it exited meanwhile and waits for a restart: none now
                self.store.save_state(c, replace(c.state, status=Status.EXITED, stopped_by_user=True))
                self._changed.notify_all()
                return
            if c.state.status not in (Status.RUNNING, Status.PAUSED):
                return
            # The signal, then the record, both under the lock: the exit the signal causes is recorded only after
            # this (and sees stopped_by_user), and the record's fsync overlaps the container's way out.
            self.events.container(c, "kill", {"signal": str(first)})
            if c.state.status is Status.PAUSED:
                with contextlib.suppress(BerthError, OSError):
                    runtime.resume(c.id, str(self._state_root))
            with contextlib.suppress(BerthError, OSError):
                runtime.kill(c.id, str(self._state_root), first)
            c = self.store.save_state(c, replace(c.state, stopped_by_user=True))
        if grace < 0:
            return
        if not self._wait_stopped(c.id, grace):
            self.events.container(c, "kill", {"signal": str(int(signal.SIGKILL))})
            with contextlib.suppress(BerthError, OSError):
                runtime.kill(c.id, str(self._state_root), signal.SIGKILL)
            self._wait_stopped(c.id, 30)
        self.events.container(c, "stop")

    def _wait_stopped(self, container_id: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        with self._changed:
            while True:
                try:
                    c = self.store.load(container_id)
                except NotFound:
                    return True
                if c.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
                    return True
                if time.monotonic() >= deadline:
                    return False
                self._changed.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        c = self.get(ref)
        if c.state.status in (Status.RUNNING, Status.PAUSED):
            with contextlib.suppress(NotModified):   # it stopped by itself meanwhile
                self.stop(c.id, timeout)
        c = self.start(c.id)
        self.events.container(c, "restart")
        return c

    def pause(self, ref: str) -> None:
        c = self.get(ref)
        if c.state.status is not Status.RUNNING:
            raise Conflict(f"Container {c.id} is not running")
        runtime.pause(c.id, str(self._state_root))
        with self._lock:
            c = self.store.load(c.id)
            if c.state.status is Status.RUNNING:
                self.store.save_state(c, replace(c.state, status=Status.PAUSED))
        self.events.container(c, "pause")

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if c.state.status is not Status.PAUSED:
            raise Conflict(f"Container {c.id} is not paused")
        runtime.resume(c.id, str(self._state_root))
        with self._lock:
            c = self.store.load(c.id)
            if c.state.status is Status.PAUSED:
                self.store.save_state(c, replace(c.state, status=Status.RUNNING))
        self.events.container(c, "unpause")

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if c.state.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"Container {c.id} is not running")
        monitors.request(self.socket_of(c.id), {"op": "resize", "height": height, "width": width})
        self.events.container(c, "resize", {"height": str(height), "width": str(width)})

    def replace_config(self, ref: str, change: Callable[[Container], ContainerConfig]) -> Container:
        """docker update: change(c) returns the new configuration (and may apply it live); saved under the lock,
        so no start or restart runs in between."""
        with self._lock:
            c = self.get(ref)
            return self.store.save_config(c, change(c))

    def rename(self, ref: str, new_name: str) -> None:
        name = check_name(new_name)
        with self._lock:
            c = self.get(ref)
            for other in self.store.all():
                if other.name == name and other.id != c.id:
                    raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                                   f'"{other.id}". You have to remove (or rename) that container to be able to '
                                   f"reuse that name.")
            renamed = self.store.save_state(c, replace(c.state, name=name))
            self.events.container(renamed, "rename", {"oldName": "/" + c.name})
            if self.network is not None:
                self.network.rename(c.id, name)    # the embedded DNS answers the new name

    def update_health(self, container_id: str, change: Callable[[Container], Mapping[str, Any]]) -> Container | None:
        """Replace a running container's health record (berth.engine.health); None if it no longer runs."""
        with self._lock:
            try:
                c = self.store.load(container_id)
            except NotFound:
                return None
            if c.state.status not in (Status.RUNNING, Status.PAUSED):   # paused while its probe ran: still kept
                return None
            return self.store.save_state(c, replace(c.state, health=change(c)), durable=False)

    # -- remove -----------------------------------------------------------------------------------------

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """volumes: also the container's anonymous volumes (`rm -v`; `--rm` always does it, as in Docker)."""
        c = self.get(ref)
        if c.state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            if not force:
                raise Conflict(f"You cannot remove a running container {c.id}. Stop the container before "
                               f"attempting removal or force remove")
            with contextlib.suppress(NotModified):   # it stopped by itself meanwhile
                self.stop(c.id, timeout=-1, sig=signal.SIGKILL)
            self._wait_stopped(c.id, 10)   # the exit recorded (and its die event) before the record goes
        with self._lock:
            if c.id in self._starting:   # being started by another request: let that end first
                self._wait_not_starting(c.id)
                if self.store.load(c.id).state.status in (Status.RUNNING, Status.PAUSED):
                    if not force:
                        raise Conflict(f"You cannot remove a running container {c.id}. Stop the container "
                                       f"before attempting removal or force remove")
                    return self.remove(c.id, force, volumes)
            self._remove(self.store.load(c.id), volumes)

    def _remove(self, c: Container, volumes: bool = False) -> None:
        """Caller holds the lock; the container is not running."""
        self._release_rootfs(c)
        with contextlib.suppress(BerthError, OSError):
            runtime.delete(c.id, str(self._state_root), force=True)
        with contextlib.suppress(NotFound):
            self._snapshots.remove(c.id)
        if self.network is not None:
            self.network.forget(c.id)
        self.store.remove(c.id)
        if volumes or c.config.auto_remove:
            volumeuse.remove_anonymous(c, self.volumes)
        self.socket_of(c.id).unlink(missing_ok=True)
        self.events.container(c, "destroy")
        self._final[c.id] = c.state
        while len(self._final) > 1000:
            self._final.pop(next(iter(self._final)))
        self._changed.notify_all()

    # -- daemon restart ---------------------------------------------------------------------------------

    def reconcile(self) -> list[str]:
        """After berthd (re)starts: re-watch live monitors, record exits that happened while it was down."""
        notes = recovery.sweep_incomplete(self.store, self._snapshots, self._state_root, self.netns_of,
                                          self.socket_of)
        for c in list(self.store.all()):
            if c.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
                continue
            if monitors.alive(self.socket_of(c.id)):
                threading.Thread(target=self._watch, args=(c.id,), daemon=True).start()
                notes.append(f"container {c.short_id} still running")
            else:
                self._record_exit(c.id)
                notes.append(f"container {c.short_id} exited while berthd was down")
        return notes + self.volumes.unmount_unused()

    def logs_path(self, c: Container) -> Path:
        return c.dir / f"{c.id}-json.log"


def restart_delay(c: Container, ran_for: float) -> float | None:
    """Docker's restart policies: None = stay exited; else the back-off before the next start (100 ms doubling
    per restart up to a minute, reset when the container had run for 10 s)."""
    policy, state = c.config.restart_policy, c.state
    if state.stopped_by_user or policy.name in ("", "no"):
        return None
    if policy.name == "on-failure":
        if state.exit_code == 0:
            return None
        if policy.maximum_retry_count and state.restart_count >= policy.maximum_retry_count:
            return None
    elif policy.name not in ("always", "unless-stopped"):
        return None
    if ran_for >= 10:
        return 0.1
    return float(min(60.0, 0.1 * (2 ** min(state.restart_count, 10))))


def _seconds_between(start: str, end: str) -> float:
    from berth.oci.config import rfc3339_to_unix
    return float(rfc3339_to_unix(end) - rfc3339_to_unix(start))


def parse_signal(text: str) -> int:
    value = text.strip().upper()
    if value.isdigit():
        return int(value)
    name = value if value.startswith("SIG") else f"SIG{value}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {text}") from None


def _resolv_conf() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    kept = [line for line in lines if not (line.startswith("nameserver") and
                                            (line.split()[1:2] or [""])[0].startswith(("127.", "::1")))]
    return "\n".join(kept) + "\n"


def iter_log(path: Path) -> Iterator[bytes]:
    """The json-file log's lines, rotated files first."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]) if
                     p.suffix[1:].isdigit() else 0)
    for p in [*rotated, path]:
        with contextlib.suppress(FileNotFoundError), open(p, "rb") as f:
            yield from f
