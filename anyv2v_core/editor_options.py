"""Editor-declared options: parsing the extra ``--name value`` arguments of the CLI and
validating/converting an options dict against the declarations (for the library too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import settings as _settings
from .errors import InputError
from .protocols import EditorOption

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


#: Flags of ``anyv2v edit`` / ``invert`` / ``edit-frame`` themselves, which an editor or backbone
#: option may not reuse (the CLI would consume the value before the plugin sees it).
RESERVED_FLAGS = _settings.RESERVED_FLAGS


def check_declarations(editor: str, declared: Sequence[EditorOption]) -> None:
    """Refuse options (of an editor or a backbone) that clash with the core's flags or with
    each other."""
    seen: set[str] = set()
    for option in declared:
        if not isinstance(option, EditorOption):
            raise InputError(f"{editor!r} declares {option!r}, not an EditorOption")
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


def validate_options(
    editor: str, declared: Sequence[EditorOption], values: dict[str, Any], kind: str = "editor"
) -> dict[str, Any]:
    """Check required options, convert types, fill defaults; unknown keys are an error."""
    known = {o.key: o for o in declared}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} ({_describe(editor, declared, f'{kind} {editor!r}')})")
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
