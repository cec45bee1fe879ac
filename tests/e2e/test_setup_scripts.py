"""The quick-start scripts stop with one clear line on a wrong Python, no Java, a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _base_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PYTHON": sys.executable}


def test_wrong_python(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\necho 3.9\n")
    fake.chmod(0o755)
    env = {**_base_env(tmp_path), "PYTHON": str(fake)}
    for script in ("scripts/dev", "scripts/test"):
        line = _error_line(_run([script], env))
        assert "Python 3.11 is required but" in line and "install Python 3.11" in line


def test_missing_java(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(directory).iterdir():
            target = bin_dir / tool.name
            if tool.name != "java" and not target.exists():
                target.symlink_to(tool)
    env = {**_base_env(tmp_path), "PATH": str(bin_dir)}
    env.pop("JAVA_HOME", None)
    line = _error_line(_run(["scripts/test"], env))
    assert "Java 17 is required by Spark and 'java' was not found" in line
    assert "JAVA_HOME" in line


def test_old_java(tmp_path: Path) -> None:
    java_home = tmp_path / "jdk8"
    (java_home / "bin").mkdir(parents=True)
    java = java_home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    java.chmod(0o755)
    line = _error_line(_run(["scripts/dev"], {**_base_env(tmp_path), "JAVA_HOME": str(java_home)}))
    assert "Java 17 or newer is required" in line and "version 8" in line


def test_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _error_line(_run(["scripts/dev", "--port", str(port)], _base_env(tmp_path)))
    assert f"port {port} is busy" in line and "--port" in line
