"""A JSON setting (`HUB_ROUTES`, `HUB_SDI_CLASSES`, `HUB_SDI_UNITS`, …) given either inline or as a file's path.

Why: a container platform passes settings as variables, where a file is one more volume to mount, while an
operator on a host keeps a long routing table in a file. Text that starts with `{` or `[` is the JSON itself;
anything else names a file holding it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def is_inline(value: str | Path) -> bool:
    return isinstance(value, str) and value.lstrip()[:1] in ("{", "[")


def read(value: str | Path) -> Any:
    """The JSON value; `ValueError` (with the file or the JSON's own complaint) when it cannot be read."""
    if is_inline(value):
        try:
            return json.loads(str(value))
        except ValueError as exc:
            raise ValueError(f"inline JSON that does not parse: {exc}") from None
    try:
        return json.loads(Path(value).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"neither inline JSON nor a readable file: {exc.strerror}: {value}") from None
    except ValueError as exc:
        raise ValueError(f"{value} is not JSON: {exc}") from None
