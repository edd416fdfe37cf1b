"""Where an instance keeps its pid file, log file and sockets: ``[server]`` paths, relative to its config.

Left empty (the default), each is derived from the instance's name so that two instances never share one:
``run/NAME.pid``, ``run/NAME.log`` and ``run/NAME.sock`` next to the config file, where NAME is the config
file's name without ``.toml`` (``node2.toml`` -> ``run/node2.pid``), or ``tether-PORT`` for an instance
started without a config file (in the current folder). ``stop``, ``reload`` and ``infos`` given the same
``--config`` derive the same paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Config
from .runfiles import make_folder

__all__ = ["RunPaths", "instance_name"]


def instance_name(config_path: str | None, port: int) -> str:
    """``node2`` for ``.../node2.toml``; ``tether-9501`` (``tether`` for port 0) without a config file."""
    if config_path:
        base = os.path.basename(config_path)
        stem = base[: -len(".toml")] if base.endswith(".toml") else base
        return stem or "tether"
    return f"tether-{port}" if port else "tether"


@dataclass(frozen=True, slots=True)
class RunPaths:
    pid_file: str
    log_file: str
    control_socket: str

    @classmethod
    def from_config(cls, config: Config) -> RunPaths:
        cfg = config.server
        source = None if config.source == "<defaults>" else config.source
        return cls.derive(
            instance_name(source, cfg.port),
            config.base_dir if source else os.getcwd(),
            cfg.pid_file,
            cfg.log_file,
            cfg.control_socket,
        )

    @classmethod
    def derive(cls, name: str, base: str, pid_file: str, log_file: str, control_socket: str) -> RunPaths:
        """Configured paths made absolute against ``base``; empty ones derived from ``name``."""

        def resolve(value: str, suffix: str) -> str:
            value = value or os.path.join("run", name + suffix)
            return os.path.abspath(os.path.join(base, value))

        return cls(resolve(pid_file, ".pid"), resolve(log_file, ".log"), resolve(control_socket, ".sock"))

    @property
    def handoff_prefix(self) -> str:
        """Worker ``n`` accepts handed-over connections on ``handoff_prefix + str(n)``."""
        return self.control_socket + ".w"

    @property
    def folders(self) -> list[str]:
        """The folders holding the run files (usually one)."""
        return sorted({os.path.dirname(p) for p in (self.pid_file, self.log_file, self.control_socket)})

    def make_dirs(self) -> None:
        """Create the run folders (0700) and refuse one another account can write to.

        Raises:
            UnsafeRunFile: a folder is another user's or writable by others (see :mod:`.runfiles`).
            OSError: a folder cannot be created.
        """
        for folder in self.folders:
            make_folder(folder)
