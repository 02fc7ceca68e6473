"""``python3 -m classcord admin`` against the real server process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from classcord import admin_client


def test_admin_command_line(
    server_process_port: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _port = server_process_port
    assert admin_client.run(admin_args(data_dir, "stats")) == 0
    assert "connections: 0" in capsys.readouterr().out
    assert admin_client.run(admin_args(data_dir, "kick", "ghost")) == 1
    assert "Personne ne s'appelle ghost" in capsys.readouterr().err
    assert admin_client.run(admin_args(data_dir / "elsewhere", "who")) == 1
    assert "cannot reach the server" in capsys.readouterr().err


def admin_args(data_dir: Path, command: str, *args: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    admin_client.add_arguments(parser)
    return parser.parse_args([command, *args, "--data-dir", str(data_dir)])


@pytest.fixture
def server_process_port(tmp_path: Path) -> Any:
    from tests.support.process import ServerProcess

    running = ServerProcess(tmp_path / "data").start()
    yield running.data_path, running.port
    assert running.terminate() == 0
    assert not (running.data_path / "admin.sock").exists()
