"""TLS: given a certificate and key, the registry serves HTTPS only; clients that trust the certificate work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.registry.conftest import needs
from tests.registry.servers import make_image, skopeo, start_berth, write_oci_layout


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    needs("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with start_berth(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), tls=True) as server:
        assert server.url.startswith("https://")
        r = requests.get(server.url + "/v2/", verify=str(cert))
        assert r.status_code == 200
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url.replace("https", "http") + "/v2/", timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/v2/")  # not trusted without the certificate


@pytest.mark.interop
def test_skopeo_pushes_over_tls_trusting_the_certificate(tmp_path: Path) -> None:
    needs("skopeo")
    cert, key = self_signed(tmp_path)
    certs = tmp_path / "certs.d"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(cert.read_bytes())
    src = write_oci_layout(tmp_path / "src", make_image([{"f": b"tls"}]), "v1")
    with start_berth(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), tls=True) as server:
        p = skopeo("copy", "--dest-cert-dir", str(certs), f"oci:{src}:v1", f"docker://{server.host}/tls/app:v1")
        assert p.returncode == 0, p.stderr
        p = skopeo("inspect", "--cert-dir", str(certs), f"docker://{server.host}/tls/app:v1")
        assert p.returncode == 0, p.stderr
