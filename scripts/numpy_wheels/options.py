"""The settings: one table, resolved once.

The table is ``data/settings.mk``, package data the Makefile includes: each
``NAME ?= default`` line with the ``# meaning`` comment above it.  `make help` and
`numpy-wheels --help` both list it from there, installed or in a checkout.  A
setting's value, first found wins:

    1. the command line: ``make wheels PLAT=aarch64`` or ``numpy-wheels PLAT=aarch64 build``
    2. the environment: ``PLAT=aarch64 make wheels``
    3. the default in settings.mk (``$(shell CMD)``: CMD's output)

`numpy-wheels` puts the resolved values into its environment once, before any step,
so everything it runs (the steps, the shell library, stage.sh) sees the same values;
the steps read a setting with `value`, which falls back to the same default.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import subprocess
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .errors import ConfigurationError
from .files import mask_credentials

# the lines `make help` reads (its awk: a `# ` comment, then `NAME ?=`)
_SETTING = re.compile(r"^([A-Z_]+) \?=[ \t]*(.*)$")
_SHELL = re.compile(r"^\$\(shell (.*)\)$")
# the make patterns of the settings help hides (the Makefile's help_value filters them)
_SECRETS = re.compile(r"^override SECRET_SETTINGS := (.*)$")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
SETTINGS_MK = resources.files("numpy_wheels") / "data" / "settings.mk"
ORDER = "the command line (NAME=value), then the environment, then the Makefile's default"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # as settings.mk writes it
    meaning: str
    secret: bool = False  # shown only as (set); never taken from a command line


def table(path: Path | Traversable | None = None) -> list[Setting]:
    """Every setting of settings.mk (or ``path``, in its syntax) in order, with the
    comment line above it; the secrets are those matching SECRET_SETTINGS."""
    lines = (path or SETTINGS_MK).read_text(encoding="utf-8").splitlines()
    patterns = next((m[1].split() for m in map(_SECRETS.match, lines) if m), [])
    secret = re.compile("|".join(re.escape(p).replace("%", ".*") for p in patterns) or "(?!)")
    settings, meaning = [], ""
    for line in lines:
        if line.startswith("# "):
            meaning = line[2:]
        match = _SETTING.match(line)
        if match:
            hidden = bool(secret.fullmatch(match[1]))
            settings.append(Setting(match[1], match[2].strip(), meaning, hidden))
            meaning = ""
    return settings


@functools.cache
def known() -> dict[str, Setting]:
    """The package's table by name, read once."""
    return {s.name: s for s in table()}


@functools.cache
def default(setting: Setting | str) -> str:
    """The default's value: ``$(shell CMD)`` runs CMD, as make does."""
    if isinstance(setting, str):
        setting = known()[setting]
    shell = _SHELL.match(setting.default)
    if not shell:
        return setting.default
    try:
        proc = subprocess.run(["sh", "-c", shell[1]], capture_output=True, text=True)
    except OSError:  # no sh: make could not have run it either
        return ""
    return proc.stdout.strip()


def value(name: str, env: Mapping[str, str] | None = None) -> str:
    """A setting's value in ``env`` (default os.environ); blank: its default."""
    given = (os.environ if env is None else env).get(name, "")
    return given if given.strip() else default(name)


def split_assignments(args: list[str], known: list[Setting]) -> tuple[dict[str, str], list[str]]:
    """The leading NAME=value arguments of ``args`` and the arguments after them.

    An unknown NAME is refused with the nearest setting; a secret is refused too,
    since a command line is visible to every user of the machine (ps).
    """
    names = {s.name: s for s in known}
    given: dict[str, str] = {}
    rest = list(args)
    while rest and ASSIGNMENT.match(rest[0]):
        name, value = ASSIGNMENT.match(rest.pop(0)).groups()
        if name not in names:
            near = difflib.get_close_matches(name, names, 1, 0.6)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigurationError(
                f"unknown setting {name}{hint} (numpy-wheels --help lists them)"
            )
        if names[name].secret:
            instead = f" or {name}_FILE" if f"{name}_FILE" in names else ""
            raise ConfigurationError(
                f"{name} on the command line shows in the process list; "
                f"set it in the environment{instead}"
            )
        given[name] = value
    return given, rest


def resolve(
    known: list[Setting], given: dict[str, str], env: MutableMapping[str, str]
) -> MutableMapping[str, str]:
    """Put every setting's value into ``env`` in the documented order (see ORDER)."""
    for setting in known:
        if setting.name in given:
            env[setting.name] = given[setting.name]
        elif setting.name not in env:
            value = default(setting)
            if value:
                env[setting.name] = value
    return env


def shown(setting: Setting, env: Mapping[str, str]) -> str:
    """The effective value as help shows it: a secret only as (set), a URL's
    credentials masked."""
    value = env.get(setting.name, "")
    if setting.secret:
        value = "(set)" if value else ""
    return mask_credentials(value) or "(empty)"


def help_lines(known: list[Setting], env: Mapping[str, str] | None = None) -> list[str]:
    """One line per setting: name, effective value, meaning, in columns as wide as
    the longest name (a value longer than its column pushes only its own meaning)."""
    env = os.environ if env is None else env
    width = max((len(s.name) for s in known), default=0)
    return [f"  {s.name:<{width}}  {shown(s, env):<18}  {s.meaning}".rstrip() for s in known]


if __name__ == "__main__":  # make help: the settings with the values make passes in
    print("\n".join(help_lines(table())))
