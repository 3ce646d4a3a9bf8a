"""Editor-declared options: parsing the extra ``--name value`` arguments of the CLI and
validating/converting an options dict against the declarations (for the library too)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from . import settings as _settings
from .errors import InputError
from .protocols import OPTION_TYPES, EditorOption

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
#: An option's name: its flag without ``--`` (its key replaces ``-`` by ``_``).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


#: Flags of ``anyv2v edit`` / ``invert`` / ``edit-frame`` themselves, which an editor or backbone
#: option may not reuse (the CLI would consume the value before the plugin sees it).
RESERVED_FLAGS = _settings.RESERVED_FLAGS


def check_declarations(editor: str, declared: Sequence[EditorOption]) -> None:
    """Refuse option declarations (of an editor or a backbone) that are malformed or clash
    with the core's flags or with each other. Run when a plugin registers them."""
    seen: set[str] = set()
    for option in declared:
        if not isinstance(option, EditorOption):
            raise InputError(f"{editor!r} declares {option!r}, not an EditorOption")
        if not isinstance(option.name, str) or not _NAME.fullmatch(option.name):
            raise InputError(f"{editor!r} declares an option named {option.name!r}; use letters, digits and "
                             "dashes, e.g. 'style-image' (the flag is --style-image)")
        if option.type not in OPTION_TYPES:
            raise InputError(f"{editor!r} declares {option.flag} of unknown type {option.type!r}; "
                             f"use one of {', '.join(OPTION_TYPES)}")
        if option.type == "choice":
            choices = option.choices
            if isinstance(choices, str) or not choices or not all(isinstance(c, str) and c for c in choices):
                raise InputError(f"{editor!r} declares {option.flag} of type 'choice' without choices=(...) "
                                 "of non-empty strings")
            if len(set(choices)) != len(choices):
                raise InputError(f"{editor!r} declares {option.flag} with a repeated choice")
            if option.default is not None and option.default not in choices:
                raise InputError(f"{editor!r} declares {option.flag} with default {option.default!r}, "
                                 f"not one of its choices ({', '.join(choices)})")
        elif option.choices:
            raise InputError(f"{editor!r} declares choices for {option.flag} of type {option.type!r}; "
                             "give it type 'choice'")
        if option.flag in RESERVED_FLAGS:
            raise InputError(f"{editor!r} declares {option.flag}, which `anyv2v edit` uses itself")
        if option.key in seen:
            raise InputError(f"{editor!r} declares {option.flag} twice")
        seen.add(option.key)


def _describe(editor: str, declared: Sequence[EditorOption], label: str | None = None) -> str:
    label = label or f"editor {editor!r}"
    if not declared:
        return f"{label} takes no options"
    return f"options of {label}: " + ", ".join(o.flag for o in declared)


def parse_cli_args(
    editor: str, declared: Sequence[EditorOption], args: Sequence[str], label: str | None = None
) -> dict[str, Any]:
    """``["--style-image", "a.jpg", "--flag", "--x=1"]`` -> raw values by option key."""
    by_flag = {o.flag: o for o in declared}
    raw: dict[str, Any] = {}
    i = 0
    args = list(args)
    while i < len(args):
        token = args[i]
        flag, eq, value = token.partition("=")
        option = by_flag.get(flag)
        if option is None:
            what = "unknown option" if token.startswith("-") else "unexpected argument"
            hint = f"; see `anyv2v editors {editor}`" if label is None else ""
            raise InputError(f"{what} {token!r} ({_describe(editor, declared, label)}{hint})")
        if option.type == "bool" and not eq:
            raw[option.key] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args):
                raise InputError(f"{flag} needs a value")
            value = args[i + 1]
            i += 1
        if option.key in raw:  # repeated: several edits in one run
            previous = raw[option.key]
            raw[option.key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            raw[option.key] = value
        i += 1
    return raw


def option_key(name: str) -> str:
    """The key of an option spelled as its flag (``--frame-stride``, ``frame-stride``) or key."""
    return str(name).lstrip("-").replace("-", "_")


def validate_options(
    editor: str, declared: Sequence[EditorOption], values: dict[str, Any], kind: str = "editor"
) -> dict[str, Any]:
    """Check required options, convert types, fill defaults; unknown keys are an error.
    A key may be written as the option's key (``style_image``), name (``style-image``) or flag."""
    values = normalize_keys(editor, values, kind)
    check_known(editor, declared, values, kind)
    out: dict[str, Any] = {}
    for option in declared:
        value = values.get(option.key)
        if value is None:
            if option.required:
                raise InputError(f"{kind} {editor!r} needs {option.flag}" + (f" ({option.help})" if option.help else ""))
            out[option.key] = option.default
            continue
        out[option.key] = _convert(option, value)
    return out


def check_known(editor: str, declared: Sequence[EditorOption], values: dict[str, Any], kind: str = "editor") -> None:
    """Refuse keys (normalised) that ``declared`` does not have, naming the ones it has."""
    unknown = sorted(set(values) - {o.key for o in declared})
    if unknown:
        names = ", ".join(o.key for o in declared)
        what = f"{kind} {editor!r} has no option(s) {', '.join(unknown)}"
        raise InputError(f"{what} ({f'its options: {names}' if names else 'it takes no options'})")


def normalize_keys(editor: str, values: dict[str, Any], kind: str = "editor") -> dict[str, Any]:
    """``{"style-image": v}`` -> ``{"style_image": v}``; both spellings of one key is an error."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        norm = option_key(key)
        if norm in out:
            raise InputError(f"{kind} {editor!r}: option {norm} is given twice ({norm!r} and its dashed form)")
        out[norm] = value
    return out


def _convert(option: EditorOption, value: Any) -> Any:
    try:
        if option.type == "int":
            return int(value)
        if option.type == "float":
            return float(value)
        if option.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(value)
        if option.type == "choice":
            text = str(value)
            if text not in option.choices:
                raise InputError(f"{option.flag} must be one of {', '.join(option.choices)}, got {value!r}")
            return text
        if option.type == "path":
            path = Path(value).expanduser()
            if not path.is_file():
                raise InputError(f"{option.flag}: file not found: {path}")
            return path
        return str(value)
    except (TypeError, ValueError):
        raise InputError(f"{option.flag} expects {option.type}, got {value!r}") from None


def split_extras(args: Sequence[str], parties: dict[str, Sequence[EditorOption]]) -> dict[str, dict[str, Any]]:
    """Parse extra CLI arguments against the options several components declare (the
    editor's and the backbone's) and return the raw values per component."""
    owner: dict[str, str] = {}
    combined: list[EditorOption] = []
    for party, declared in parties.items():
        for option in declared:
            if option.key in owner:
                raise InputError(f"{option.flag} is declared by both {owner[option.key]!r} and {party!r}")
            owner[option.key] = party
            combined.append(option)
    names = list(parties)
    label = None if len(names) == 1 or not any(parties[n] for n in names[1:]) else " and ".join(names)
    first = names[0].split(" ", 1)[-1].strip("'")
    raw = parse_cli_args(first, combined, args, label)
    out: dict[str, dict[str, Any]] = {party: {} for party in parties}
    for key, value in raw.items():
        out[owner[key]][key] = value
    return out
