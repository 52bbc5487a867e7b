"""The JSON parameter schema the C++ plugin reads at describe time (so describing never
starts Python).

Layout (``SCHEMA_VERSION`` 1)::

    {"schema_version": 1, "grouping": "Faceplate",
     "plugins": [{"identifier": "org.faceplate.Mask", "label": ..., "description": ...,
                  "version": [major, minor], "grouping": "Faceplate", "status": "",
                  "clips": [{"name": "Source", ...}, {"name": "Mask", "optional": true,
                             "is_mask": true}, {"name": "Output"}],
                  "params": [{"name", "type", "default", "min", "max", "label", "hint",
                              "page", "choices", "owner"}],
                  "alpha": {"<output choice>": "source" | "unpremultiplied" |
                            "premultiplied"}}]}

``alpha`` says how the Output's premultiplication follows from the ``output`` parameter (see
:attr:`faceplate.ofx.effects.Effect.alpha`); the shell declares it in GetClipPreferences and
converts a premultiplied Source to straight colour for the render where it says "source". An
output whose alpha is not "source" carries a matte: the shell then declares the Output RGBA
whatever the Source's components (an RGB Source would otherwise drop the matte).

``type`` is one of double, int, bool, choice, string, path, pushbutton (shell-owned buttons).
``choices`` lists the option values of a choice (``default`` is one of them). ``owner`` is
``"python"`` for parameters the worker reads, ``"shell"`` for ``mix`` / ``maskInvert``
(applied by the C++ shell), the analysis buttons (run by the shell in InstanceChanged) and the
hidden ``revision`` counter. ``secret`` parameters are hidden from the user and never animate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faceplate.core.config import Param
from faceplate.io.paths import ensure_output_dir
from faceplate.ofx.effects import EFFECTS, GROUPING, Effect, Section

SCHEMA_VERSION = 1

_TYPES = {"float": "double", "int": "int", "bool": "bool", "choice": "choice", "str": "string",
          "floats": "string", "strs": "string"}

CLIPS = (
    {"name": "Source", "optional": False, "is_mask": False,
     "components": ["RGBA", "RGB"]},
    {"name": "Mask", "optional": True, "is_mask": True, "components": ["Alpha"]},
    {"name": "Output", "optional": False, "is_mask": False, "components": ["RGBA", "RGB"]},
)


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def _json_default(v: Any) -> Any:
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return "" if v is None else v


def _param(section: Section, p: Param) -> dict[str, Any]:
    kind = "path" if p.name in section.path_fields else _TYPES[p.kind]
    if kind == "string" and p.choices:
        kind = "choice"
    return {
        "name": section.prefix + p.name,
        "type": kind,
        "default": _json_default(p.default),
        "min": p.minimum,
        "max": p.maximum,
        "label": _label(section.prefix + p.name),
        "hint": p.help,
        "page": section.page,
        "choices": [str(c) for c in p.choices] if p.choices else None,
        "owner": "python",
        "config": f"{section.config.__module__}.{section.config.__qualname__}",
        "field": p.name,
    }


def plugin_schema(e: Effect) -> dict[str, Any]:
    """One effect's schema entry (see the module docstring)."""
    ps = [_param(s, p) for s, p in e.params()]
    for h in e.host_params:
        ps.append({"name": h.name, "type": h.type, "default": h.default, "min": h.minimum,
                   "max": h.maximum, "label": h.label, "hint": h.hint, "page": h.page,
                   "choices": None, "owner": "shell", "config": None, "field": None,
                   "secret": h.secret})
    names = [p["name"] for p in ps]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{e.identifier}: parameter names collide: {', '.join(dup)}")
    outputs = next((q["choices"] for q in ps if q["name"] == "output"), None)
    alpha = dict(e.alpha)
    if sorted(alpha) != sorted(outputs or []):
        raise ValueError(f"{e.identifier}: the alpha map {sorted(alpha)} must cover every "
                         f"output choice {outputs}")
    bad = sorted(set(alpha.values()) - {"source", "unpremultiplied", "premultiplied"})
    if bad:
        raise ValueError(f"{e.identifier}: unknown premultiplication {bad}")
    return {"identifier": e.identifier, "label": e.label, "description": e.description,
            "version": list(e.version), "grouping": GROUPING, "status": e.status,
            "clips": [dict(c) for c in CLIPS], "params": ps, "alpha": alpha}


def schema() -> dict[str, Any]:
    """The whole schema (every effect in :data:`faceplate.ofx.effects.EFFECTS`)."""
    return {"schema_version": SCHEMA_VERSION, "grouping": GROUPING,
            "plugins": [plugin_schema(e) for e in EFFECTS.values()]}


def write_schema(path: str | Path) -> Path:
    """Write :func:`schema` as UTF-8 JSON to ``path`` (atomically: temp file, then rename).

    Returns:
        The path written.
    """
    out = Path(path)
    ensure_output_dir(out.parent)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(schema(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out

