"""What every `cerebelum` command module shares: the engine address, `-o`, the client and errors."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.text import Text

from cerebelum import Client

from ..server import DEFAULT_ADDRESS
from .render import Output, err_console, printable

__all__ = ["DEFAULT_ADDRESS", "AddressOption", "OutputOption", "client", "fail"]

AddressOption = Annotated[str, typer.Option("--address", envvar="CEREBELUM_ADDRESS", help="Engine gRPC address.")]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")]


def client(address: str) -> Client:
    return Client(address=address)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print the error on stderr (stdout is for what scripts parse) and exit non-zero."""
    err_console.print(Text.assemble(("error:", "red"), f" {printable(message)}"))
    raise typer.Exit(code)
