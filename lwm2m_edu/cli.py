"""The ``lwm2m-edu`` command (also ``python -m lwm2m_edu``).

Subcommands:

``lwm2m-edu model [OBJECT_ID]``
    print the object model: every object, or the resources of one object.
``lwm2m-edu decode --format FORMAT --path PATH HEX``
    decode a payload (as hex, e.g. copied from Wireshark) sent to or from PATH.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .codecs import CodecError, ContentFormat, decode
from .model import DEFAULT_MODEL, ModelError
from .paths import PathError

FORMAT_NAMES = {
    "text": ContentFormat.TEXT,
    "opaque": ContentFormat.OPAQUE,
    "cbor": ContentFormat.CBOR,
    "senml-json": ContentFormat.SENML_JSON,
    "senml-cbor": ContentFormat.SENML_CBOR,
    "tlv": ContentFormat.TLV,
    "lwm2m-cbor": ContentFormat.LWM2M_CBOR,
}


def _format(text: str) -> ContentFormat:
    if text in FORMAT_NAMES:
        return FORMAT_NAMES[text]
    try:
        return ContentFormat(int(text))
    except ValueError:
        names = ", ".join(FORMAT_NAMES)
        raise argparse.ArgumentTypeError(
            f"unknown format {text!r}: use one of {names} or a number"
        ) from None


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(":", " "))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex, e.g. 'c3 37 01 02 03'") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lwm2m-edu", description="Learn and test firmware updates over the air with LwM2M."
    )
    parser.add_argument("--version", action="version", version=f"lwm2m-edu {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    model = commands.add_parser("model", help="print the object model")
    model.add_argument("object_id", nargs="?", type=int, help="one object, e.g. 5")

    dec = commands.add_parser("decode", help="decode a payload given as hex")
    dec.add_argument(
        "--format",
        "-f",
        type=_format,
        required=True,
        help=f"content format: {', '.join(FORMAT_NAMES)} or its number",
    )
    dec.add_argument("--path", "-p", default="/", help="the request path, e.g. /3/0 (default /)")
    dec.add_argument("payload", type=_hex, nargs="+", help="the payload bytes in hex")
    return parser


def _print_model(object_id: int | None) -> None:
    if object_id is None:
        for obj in DEFAULT_MODEL:
            kind = "multiple" if obj.multiple else "single"
            need = "mandatory" if obj.mandatory else "optional"
            print(
                f"/{obj.id:<5} {obj.name:<20} v{obj.version}  {kind}, {need}, "
                f"{len(obj.resources)} resources"
            )
        return
    obj = DEFAULT_MODEL[object_id]
    print(f"/{obj.id} {obj.name} v{obj.version}")
    for r in obj.resources.values():
        flags = ("M" if r.mandatory else "O") + ("*" if r.multiple else " ")
        print(f"  {r.id:>3}  {r.operations.value or '-':<2} {flags} {r.type.value:<16} {r.name}")
    print("  (M mandatory, O optional, * multiple instances)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "model":
            _print_model(args.object_id)
        elif args.command == "decode":
            payload = b"".join(args.payload)
            for path, value in decode(payload, args.format, args.path).items():
                print(f"{path}\t{value!r}")
    except (CodecError, ModelError, PathError) as exc:
        print(f"lwm2m-edu: {exc}", file=sys.stderr)
        return 2
    return 0
