"""Start and stop a local Orthanc with the plugin (deploy/start-orthanc.sh): tests, benchmark."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from orthanc_plugin.orthanc_http import OrthancClient

REPO = Path(__file__).resolve().parents[1]
ORTHANC_BIN = Path("/usr/sbin/Orthanc")


def free_port() -> int:
    """Return a TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OrthancServer:
    """One Orthanc with the lungseg plugin, started by ``deploy/start-orthanc.sh``."""

    data_dir: Path
    stable_age: int = 2
    user: str = "tester"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """HTTP base URL on the loopback interface."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for the deploy scripts (this process' environment plus the settings)."""
        return {**os.environ, "LUNGSEG_HTTP_PORT": str(self.http_port),
                "LUNGSEG_DICOM_PORT": str(self.dicom_port), "LUNGSEG_DATA_DIR": str(self.data_dir),
                "LUNGSEG_USER": self.user, "LUNGSEG_PASSWORD": self.password,
                "LUNGSEG_STABLE_AGE": str(self.stable_age), **self.extra_env}

    def client(self) -> OrthancClient:
        """REST client logged in as the configured user."""
        return OrthancClient(self.url, self.user, self.password)

    def start(self) -> str:
        """Run start-orthanc.sh; return its output; raise RuntimeError when it fails."""
        proc = subprocess.run([str(REPO / "deploy" / "start-orthanc.sh")], env=self.env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"start-orthanc.sh failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def stop(self) -> None:
        """Run stop-orthanc.sh.

        Raises
        ------
        subprocess.CalledProcessError
            If the script fails.
        """
        subprocess.run([str(REPO / "deploy" / "stop-orthanc.sh")], env=self.env,
                       capture_output=True, text=True, timeout=60, check=True)

    def log(self) -> str:
        """Return Orthanc's log (empty before the first start)."""
        path = self.data_dir / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""
