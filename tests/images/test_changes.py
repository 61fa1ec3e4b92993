from __future__ import annotations

import pytest

from berth.errors import InvalidArgument
from berth.images.changes import apply_change
from berth.oci.config import ContainerConfig


def test_changes_set_the_config_like_docker_import() -> None:
    c = ContainerConfig()
    for line in ['CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /init", "ENV A=1 B=\"two words\"", "ENV C 3",
                 "EXPOSE 80 53/udp", "WORKDIR /srv", "WORKDIR app", "USER nobody", "LABEL k=v",
                 "VOLUME /data", "STOPSIGNAL SIGINT", "HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost"]:
        c = apply_change(c, line)
    assert c.cmd == ("sh", "-c", "echo hi")
    assert c.entrypoint == ("/bin/sh", "-c", "/init")
    assert c.env == ("A=1", "B=two words", "C=3")
    assert c.exposed_ports == ("53/udp", "80/tcp")
    assert c.working_dir == "/srv/app"
    assert (c.user, dict(c.labels), c.volumes, c.stop_signal) == ("nobody", {"k": "v"}, ("/data",), "SIGINT")
    assert c.healthcheck is not None and c.healthcheck.test == ("CMD-SHELL", "wget -q localhost")
    assert c.healthcheck.interval == 5 * 10**9 and c.healthcheck.retries == 2


@pytest.mark.parametrize("line,fragment", [
    ("RUN echo", "not a valid change command"),
    ("EXPOSE 70000", "invalid port"),
    ("EXPOSE a:b", "invalid port"),
    ("ENV", "at least one argument"),
    ("HEALTHCHECK --interval=5x CMD true", "invalid duration"),
])
def test_bad_changes_are_refused(line: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        apply_change(ContainerConfig(), line)
