"""The programs the local stack needs, with one clear line when one is missing."""

from __future__ import annotations

import shutil

from omnirouter.errors import MissingToolError

_INSTALL_HINTS = {
    "java": "install a Java 17+ runtime (Debian: apt-get install default-jre-headless)",
    "mvn": "install Apache Maven (Debian: apt-get install maven)",
    "redis-server": "install Redis (Debian: apt-get install redis-server)",
}


def require_tool(name: str) -> str:
    """The absolute path of ``name`` on PATH.

    Raises:
        MissingToolError: the program is not installed, with how to install it.
    """
    path = shutil.which(name)
    if path is None:
        hint = _INSTALL_HINTS.get(name, f"install {name}")
        raise MissingToolError(f"{name} not found on PATH: {hint}, or run `make run`/`make test`")
    return path
