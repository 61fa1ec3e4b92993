"""System endpoints: /_ping, /version, /info."""

from __future__ import annotations

import os
import platform
import socket
import sys

from aiohttp import web

from berth import __version__
from berth.api.app import API_VERSION, MIN_API_VERSION, Router, engine_of, json_response


def _ping_headers(resp: web.StreamResponse) -> None:
    resp.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    resp.headers["Pragma"] = "no-cache"


async def ping(request: web.Request) -> web.StreamResponse:
    resp = web.Response(text="OK", content_type="text/plain", charset="utf-8")  # aiohttp drops a HEAD's body
    _ping_headers(resp)
    return resp


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def version(request: web.Request) -> web.Response:
    kernel = platform.release()
    python = f"python{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    details = {"ApiVersion": API_VERSION, "Arch": _arch(), "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": python, "KernelVersion": kernel, "MinAPIVersion": MIN_API_VERSION,
               "Os": "linux"}
    return json_response({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": python, "Os": "linux", "Arch": _arch(), "KernelVersion": kernel, "BuildTime": "",
    })


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def info(request: web.Request) -> web.Response:
    engine = engine_of(request)
    images = len(engine.records.all())
    return json_response({
        "ID": engine.id, "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": images, "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False, "NGoroutines": 1,
        "SystemTime": "", "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(), "NEventsListener": 0, "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": str(engine.config.root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {"berth": {"path": "berth-runtime"}, "runc": {"path": "runc"}}, "DefaultRuntime": "berth",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "", "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"], "Warnings": None,
        "DefaultAddressPools": None, "CDISpecDirs": [],
    })


async def build_prune(request: web.Request) -> web.Response:
    """`docker builder prune` (and the last step of `docker system prune`) prunes BuildKit's cache. berth builds
    as the classic builder does, whose cache is the build's intermediate images: dockerd's build prune leaves
    those alone (image prune and rmi handle them), and so does berth's. There is no other cache to reclaim."""
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


def register(router: Router) -> None:
    router.add("POST", "/build/prune", build_prune)
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
