"""Where devstack finds the project's deploy/ folder (broker POM, Redis config)."""

from __future__ import annotations

from pathlib import Path

from omnirouter.errors import ConfigurationError
from omnirouter.settings import DevstackSettings

# src/omnirouter/devstack/paths.py -> the checkout's top level (the package is installed
# editable by the Makefile, so this is the working tree that holds deploy/).
_CHECKOUT_ROOT = Path(__file__).resolve().parents[3]


def deploy_dir(settings: DevstackSettings) -> Path:
    """The deploy/ folder: the setting when given, else the checkout's own.

    Raises:
        ConfigurationError: neither holds deploy/kafka/pom.xml.
    """
    candidate = settings.deploy_dir or (_CHECKOUT_ROOT / "deploy")
    if not (candidate / "kafka" / "pom.xml").is_file():
        raise ConfigurationError(
            f"no kafka/pom.xml under {candidate}: set OMNIROUTER_DEVSTACK__DEPLOY_DIR to the "
            "omnirouter checkout's deploy/ folder"
        )
    return candidate
