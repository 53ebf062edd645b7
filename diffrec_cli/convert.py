"""Settings given as text (``--set key=value``, a form field) read as the type of the setting's default.

The one converter of the project: training settings (``config.py``), component settings
(``models/build.py``) and recipe settings (``data/recipes.py``) all go through :func:`coerce`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from diffrec_cli.errors import DiffrecError

_TRUE, _FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


def coerce(value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``: text is parsed, other values are only aligned.

    Text: a bool default reads true/false, on/off, yes/no, 1/0; an int default reads whole numbers
    (``"1.5"`` is an error); a float default reads any number; a tuple or list default reads a JSON list
    (``[0.7, 0.2, 0.1]``) or items separated by commas or colons (``0.7,0.2,0.1``, ``7:2:1``), each item
    read as the type of the default's first item; another default (a dict) reads JSON. Text stays text
    for a text default and for no default (None). Values that are not text: 0/1 become a bool for a bool
    default, ints become floats for a float default, lists become tuples for a tuple default (items aligned
    the same way). Raises :class:`DiffrecError` ("cannot read 'x' as int") when text does not fit.
    """
    if isinstance(value, str) and default is not None and not isinstance(default, str):
        value = _parse(value, default)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise DiffrecError(f"expected true/false, got {value!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        items = [coerce(v, default[0]) for v in value] if default else list(value)
        return tuple(items) if isinstance(default, tuple) else items
    return value


def _parse(text: str, default: Any) -> Any:
    stripped = text.strip()
    try:
        if isinstance(default, bool):
            low = stripped.lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise ValueError(text)
        if isinstance(default, int):
            return int(stripped)
        if isinstance(default, float):
            return float(stripped)
        if isinstance(default, (tuple, list)):
            if stripped.startswith("["):
                parsed = json.loads(stripped)
                if not isinstance(parsed, list):
                    raise ValueError(text)
                return parsed
            return [part.strip() for part in stripped.replace(":", ",").split(",") if part.strip()]
        return json.loads(stripped)
    except (ValueError, json.JSONDecodeError):
        raise DiffrecError(f"cannot read {text!r} as {_kind(default)}") from None


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true/false"
    if isinstance(default, (tuple, list)):
        example = ",".join(str(v) for v in default) if default else "a,b"
        return f"a list like {example}"
    return type(default).__name__


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``1h30m``; None stays None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        raw = text.strip().lower()
        try:
            seconds = float(raw)
        except ValueError:
            parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", raw)
            if not raw or parts is None:
                raise DiffrecError(f"cannot read {text!r} as a duration (e.g. 600, 90s, 15m, 2h)") from None
            h, m, s = (float(p) if p else 0.0 for p in parts.groups())
            seconds = 3600 * h + 60 * m + s
    if not math.isfinite(seconds) or seconds <= 0:
        raise DiffrecError(f"a timeout must be a positive number of seconds, got {text!r}")
    return seconds
