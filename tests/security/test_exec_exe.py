"""`docker exec` never hands the container a way to the host's program (CVE-2019-5736, CVE-2016-9962): while the
test runs many execs, a static C scanner inside the container reads every /proc/<pid>/exe it can, as fast as
it can, for a few seconds. Every readable one must be a program of the container's own (busybox's applets, the
scanner):
berth's exec helper is a host Python process while it joins the namespaces, and it must be non-dumpable until
it execs, so its /proc entry cannot be opened from the container.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root, pytest.mark.slow]

SCANNER = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static char seen[64][512];
static int nseen;
static void note(const char *what) {
    for (int i = 0; i < nseen; i++) if (!strcmp(seen[i], what)) return;
    if (nseen < 64) { snprintf(seen[nseen++], 512, "%s", what); printf("%s\n", what); fflush(stdout); }
}
int main(int argc, char **argv) {
    time_t end = time(NULL) + atoi(argv[1]);
    char path[64], target[512], line[600];
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            snprintf(path, sizeof path, "/proc/%s/exe", e->d_name);
            ssize_t n = readlink(path, target, sizeof target - 1);
            if (n < 0) continue;
            target[n] = 0;
            int fd = open(path, O_RDONLY);
            snprintf(line, sizeof line, "%s%s", fd >= 0 ? "open:" : "link:", target);
            if (fd >= 0) close(fd);
            note(line);
        }
        closedir(d);
    }
    printf("done\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def test_no_exec_exposes_a_host_program_to_the_container(b: PrivateBerthd, tmp_path: Path) -> None:
    src = tmp_path / "scan.c"
    src.write_text(SCANNER)
    cc = subprocess.run(["gcc", "-static", "-O2", "-o", str(tmp_path / "scan"), str(src)], capture_output=True,
                        text=True)
    assert cc.returncode == 0, cc.stderr
    cid = b.docker("run", "-d", "-v", f"{tmp_path / 'scan'}:/scan:ro", "busybox", "sleep", "120").stdout.decode()
    cid = cid.strip()
    try:
        execs = 0
        stop = threading.Event()

        def keep_execing() -> None:
            nonlocal execs
            while not stop.is_set():
                b.docker("exec", cid, "true", check=False)
                execs += 1

        worker = threading.Thread(target=keep_execing)
        worker.start()
        time.sleep(0.3)
        try:
            scan = b.docker("exec", cid, "/scan", "5", check=False)
        finally:
            stop.set()
            worker.join()
        lines = scan.stdout.decode().splitlines()
        assert lines and lines[-1] == "done", scan
        assert execs >= 5
        targets = {line.split(":", 1)[1] for line in lines[:-1]}
        leaked = {t for t in targets if "python" in t or not t.startswith(("/bin/", "/sbin/", "/usr/", "/scan"))}
        assert leaked == set(), f"a container process could read these exe links: {leaked}"
        # every one is a program of the image (busybox's applets are hardlinks of one binary), not a host path
        listed = b.docker("exec", cid, "ls", *sorted(targets), check=False)
        assert listed.returncode == 0, (targets, listed.stderr)
        assert "/scan" in targets      # the scanner does see what it may see
    finally:
        b.docker("rm", "-f", cid, check=False)
