"""openblas_libs.json: the pins, platform suffixes and legacy sha256 table."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from numpy_wheels.errors import ConfigurationError

TABLES = resources.files("numpy_wheels") / "data" / "openblas_libs.json"


def load_tables(path: Any = TABLES) -> dict[str, Any]:
    """Read openblas_libs.json and check the keys this package relies on."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the OpenBLAS table {path}: {exc}") from None
    need = {
        "platforms": ("linux", "macos", "windows"),
        "wheel": ("version", "projects", "library_versions"),
        "legacy": ("version", "base_url", "manylinux_default", "musllinux_tag", "suffixes"),
    }
    for section, keys in need.items():
        for key in keys:
            if key not in data.get(section, {}):
                raise ConfigurationError(f"{path.name}: missing {section}.{key}")
    data["legacy"].setdefault("sha256", {})
    data["legacy"].setdefault("library_versions", {})
    return data


def legacy_sha256_table(tables: dict[str, Any], extra: str | None) -> dict[str, str]:
    """The legacy sha256 table, plus entries from the JSON file ``extra`` (if any)."""
    table = dict(tables["legacy"]["sha256"])
    if extra:
        try:
            more = json.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"NW_OPENBLAS_SHA256_TABLE {extra}: {exc}") from None
        if not isinstance(more, dict):
            raise ConfigurationError(f"NW_OPENBLAS_SHA256_TABLE {extra}: expected a JSON object")
        table.update(more)
    return table
