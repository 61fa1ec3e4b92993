"""The per-container monitor (the containerd-shim / conmon role): one small process per container.

Started detached by the engine (`spawn`), it creates the container through the runtime (the built-in one in-process,
or runc/crun/a runc-compatible binary with `--runtime`), owns its stdio (pipes, or a pty), writes the json-file log,
serves attach clients, reaps the init, and records how it ended. It outlives berthd (own session, no fd of berthd).

Command line (`python -m berth.monitor`, normally through `spawn(MonitorOptions(...))`):
    --id ID --bundle DIR --state-root DIR --dir CONTAINER_DIR --socket PATH [--tty] [--stdin] [--stdin-once]
    [--log-max-size BYTES] [--log-max-file N] [--runtime berth|runc|crun|PATH] [--ready-fd FD]
The bundle (config.json, mounted rootfs) is the engine's. `spawn(options) -> int` returns the monitor's pid once
its socket listens and the container is *created, not started*; a create failure is raised in the spawner as the
runtime's error (NotFound 'exec: "nope": executable file not found in $PATH', ...) and leaves no process, cgroup,
runtime state or socket.

`spawn(options, zygote=PATH)` asks a fork server (berth.monitor.zygote; started on first use, detached, one per
PATH) to fork the monitor from a pre-imported interpreter instead of exec'ing one: about 35 ms less per start;
if no server can run there, spawn execs as without it. `stop_zygote(PATH)` ends one. Monitors are named
`berth-monitor` (/proc/<pid>/comm) either way.

Socket protocol (PATH, mode 0600): a client sends ONE JSON line, then
    {"op":"attach","stdin":b,"stdout":b,"stderr":b}  the connection becomes a stream: output in Docker's framing
        ([1 stdout|2 stderr,0,0,0, uint32 BE length] + payload), raw with a tty; what the client sends is stdin;
        its EOF closes the container's stdin with --stdin-once, else only ends its input. Output from before the
        attach is not replayed. At the container's exit the rest is flushed and the connection closed.
    {"op":"start"}                 -> {"ok":true} | {"error":"..."}   (attach first, then start: nothing is lost)
    {"op":"resize","height":H,"width":W} -> {"ok":true} | {"error":...} (TIOCSWINSZ on the pty)
    {"op":"wait"}                  -> {"exit_code":N,"oom_killed":b,"finished_at":"...","started_at":"..."}
                                      once the container has exited (at once if it has)
    {"op":"status"}                -> {"pid":N,"status":"created|running|exited","monitor_pid":N,"started_at":...}
A malformed request gets {"error":"..."} and the connection is closed. berth.monitor.client has helpers.

Files in CONTAINER_DIR:
    <ID>-json.log[.1 ...]  Docker's json-file log, rotated at --log-max-size keeping --log-max-file files
    started.json           {"pid":N,"started_at":"..."} written atomically when start succeeds
    exit.json              {"exit_code":N,"oom_killed":b,"finished_at":"...","started_at":"..."} written atomically
                           after the runtime deleted the container (exit code 128+signal when killed)
    monitor.log            the monitor's own stderr (bugs, warnings)
A stale exit.json/started.json is removed when a monitor starts. The monitor never removes CONTAINER_DIR nor
unmounts the rootfs: `--rm` is the engine's, on seeing exit.json. After exit.json, the socket is gone and the
monitor exits. SIGINT/SIGHUP do not stop it; the engine kills containers through the runtime, not the monitor.
exit.json and started.json are not fsynced: after a power loss no container is running anyway.
May import: berth.runtime, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

from berth.monitor.options import MonitorOptions
from berth.monitor.spawn import spawn, start_zygote, stop_zygote

__all__ = ["MonitorOptions", "spawn", "start_zygote", "stop_zygote"]
