"""Where an instance keeps its pid file, log file and sockets: ``[server]`` paths, relative to its config."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Config

__all__ = ["RunPaths"]


@dataclass(frozen=True, slots=True)
class RunPaths:
    pid_file: str
    log_file: str
    control_socket: str

    @classmethod
    def from_config(cls, config: Config) -> RunPaths:
        cfg = config.server
        return cls(
            os.path.abspath(config.resolve_path(cfg.pid_file)),
            os.path.abspath(config.resolve_path(cfg.log_file)),
            os.path.abspath(config.resolve_path(cfg.control_socket)),
        )

    @property
    def handoff_prefix(self) -> str:
        """Worker ``n`` accepts handed-over connections on ``handoff_prefix + str(n)``."""
        return self.control_socket + ".w"

    def make_dirs(self) -> None:
        for path in (self.pid_file, self.log_file, self.control_socket):
            os.makedirs(os.path.dirname(path), exist_ok=True)
