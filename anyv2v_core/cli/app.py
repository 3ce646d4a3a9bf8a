"""The ``anyv2v`` Typer app, its one error path, and the settings decorator.

Every command (the core's and those plugins add) runs inside :class:`AnyV2VGroup`, which
maps errors to exit codes in one place: a user error (:class:`~anyv2v_core.errors.AnyV2VError`)
prints one line and exits 2, anything else is a bug (exit 1, ``--debug`` shows the
traceback), Ctrl-C exits 130.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..console import err, out
from ..errors import AnyV2VError, one_line

_state = {"debug": False}


class AnyV2VGroup(TyperGroup):
    """The command group: runs a subcommand and turns what it raises into an exit code."""

    def invoke(self, ctx: Any) -> Any:
        import click

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.exceptions.Abort,
                SystemExit):
            raise
        except KeyboardInterrupt:
            err.print("[red]Interrupted.[/]")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
            if _state["debug"]:
                raise
            code = exc.exit_code if isinstance(exc, AnyV2VError) else 1
            hint = "" if isinstance(exc, AnyV2VError) else " (run `anyv2v --debug ...` for the traceback)"
            err.print(f"[bold red]Error:[/] {escape(one_line(exc))}{hint}", highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None


app = typer.Typer(
    name="anyv2v",
    cls=AnyV2VGroup,
    help="Edit a video by editing its first frame: an image editor changes frame 0, an image-to-video "
    "model propagates the change through the clip (AnyV2V).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"anyv2v {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug
    if not debug:
        import logging
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        logging.getLogger("diffusers").setLevel(logging.ERROR)
        logging.getLogger("transformers").setLevel(logging.ERROR)


def with_settings(place: str) -> Callable[[Callable], Callable]:
    """Give a command the options of every run setting ``place`` takes
    (:mod:`anyv2v_core.settings`). The command declares its own parameters plus
    ``**settings``, and receives the settings' values by name there."""
    from .. import settings as schema

    def decorate(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        hints = typing.get_type_hints(func)
        names = {p.name for p in own}
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own]
        params += schema.typer_parameters(place)

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            mine = {k: v for k, v in kwargs.items() if k in names}
            values = schema.cli_values(place, {k: v for k, v in kwargs.items() if k not in names})
            return func(*args, **mine, **values)

        del command.__wrapped__  # Typer must read the new signature, not the function's
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def handle_errors(func: Callable) -> Callable:
    """Kept for plugins written against anyv2v 0.1: errors are handled by the command group
    now, so this returns ``func`` unchanged."""
    return func
