"""The ``lwm2m-edu`` command (also ``python -m lwm2m_edu``).

Subcommands:

``lwm2m-edu model [OBJECT_ID]``
    print the object model: every object, or the resources of one object.
``lwm2m-edu decode --format FORMAT --path PATH HEX``
    decode a payload (as hex, e.g. copied from Wireshark) sent to or from PATH.
``lwm2m-edu package keygen --out KEY.pem [--public PUB.pem]``
    make an Ed25519 signing key (and write its public half, the file devices get).
``lwm2m-edu package build IMAGE --name N --version V --device-type T [--key KEY.pem] --out PKG``
    wrap a firmware image in a package header, signed if a key is given.
``lwm2m-edu package inspect PKG [--verify-key PUB.pem] [--device-type T] [--max-image-size N]``
    print a package's header and check it as a device would.
``lwm2m-edu client --server coap://HOST:PORT --endpoint NAME [--lifetime S] [--flash PROFILE]
[--bootstrap]``
    run an emulated device until interrupted (Ctrl-C de-registers it). With ``--bootstrap``
    the ``--server`` URI is its Bootstrap-Server.
``lwm2m-edu server [--host H] [--port P] [--firmware FILE --mode push|pull [--via coap|http]]``
    serve registrations; given a firmware file, update every device that registers (the file
    is sent as it is: real devices expect their vendor's own package format).
``lwm2m-edu demo``
    a whole push update and a whole pull update between an in-process server and device.
``lwm2m-edu check``
    check this machine for the workshop (libraries, ``dot``, CoAP over loopback) and print
    the fix for each problem; exit status 1 if something needs fixing.

Exit status: 0 done (for ``inspect``: a device would accept the package); 2 the input was
rejected (for ``inspect``: the package, printed with the Update Result a device would report;
also a payload that doesn't decode, a bad key file or a name too long); 1 a file could not be
read or written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path as FilePath

from . import __version__
from .check import check_all, report
from .codecs import CodecError, ContentFormat, decode
from .flash import FLASH_PROFILES
from .model import DEFAULT_MODEL, ModelError
from .package import (
    KeyFileError,
    Package,
    PackageError,
    PackageVerifier,
    generate_signing_key,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
)
from .paths import PathError
from .terminal import run_client, run_demo, run_server

#: ``inspect`` reads a package in pieces of this size, as a device receives it.
INSPECT_CHUNK = 4096

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


def _byte_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes, e.g. 262144")
    return int(text)


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

    package = commands.add_parser("package", help="make, sign and inspect firmware packages")
    steps = package.add_subparsers(dest="package_command", required=True)
    keygen = steps.add_parser("keygen", help="make an Ed25519 signing key")
    keygen.add_argument(
        "--out", type=FilePath, required=True, help="the private key file to write (PEM, secret)"
    )
    keygen.add_argument(
        "--public", type=FilePath, help="also write the public key here (PEM, for devices)"
    )
    build = steps.add_parser("build", help="wrap a firmware image in a package")
    build.add_argument("image", type=FilePath, help="the firmware image file")
    build.add_argument("--name", required=True, help="package name (/5/0/6 PkgName)")
    build.add_argument(
        "--version", dest="pkg_version", required=True, help="version (/5/0/7 PkgVersion)"
    )
    build.add_argument("--device-type", required=True, help="the device type it is built for")
    build.add_argument("--key", type=FilePath, help="sign with this private key (PEM)")
    build.add_argument("--out", type=FilePath, required=True, help="the package file to write")
    inspect = steps.add_parser("inspect", help="print a package and check it as a device would")
    inspect.add_argument("package", type=FilePath, help="the package file")
    inspect.add_argument(
        "--verify-key", type=FilePath, help="require a signature by this public key (PEM)"
    )
    inspect.add_argument("--device-type", help="require this device type")
    inspect.add_argument(
        "--max-image-size", type=_byte_count, metavar="BYTES", help="the device's staging slot size"
    )
    client = commands.add_parser("client", help="run an emulated LwM2M device")
    client.add_argument("--server", required=True, help="the LwM2M server, coap://HOST:PORT")
    client.add_argument("--endpoint", required=True, help="the endpoint client name")
    client.add_argument("--lifetime", type=int, default=300, help="registration lifetime, s")
    client.add_argument(
        "--flash", default="nrf52840-internal", choices=sorted(FLASH_PROFILES),
        help="the emulated flash part",
    )  # fmt: skip
    client.add_argument(
        "--bootstrap", action="store_true", help="--server is a Bootstrap-Server: bootstrap first"
    )
    client.add_argument("--host", default="127.0.0.1", help="the address to bind")

    server = commands.add_parser("server", help="run an LwM2M server (and update devices)")
    server.add_argument("--host", default="127.0.0.1", help="the address to bind")
    server.add_argument("--port", type=int, default=5683, help="the UDP port (default 5683)")
    server.add_argument("--firmware", type=FilePath, help="update every device with this file")
    server.add_argument("--mode", choices=("push", "pull"), default="push")
    server.add_argument("--via", choices=("coap", "http"), default="coap", help="for pull")

    commands.add_parser("check", help="check this machine for the workshop, with fixes")

    demo = commands.add_parser("demo", help="a whole push and pull update, in the terminal")
    demo.add_argument(
        "--flash", default="nrf52840-internal", choices=sorted(FLASH_PROFILES),
        help="the emulated flash part",
    )  # fmt: skip
    demo.add_argument("--size", type=_byte_count, default=64 * 1024, help="the image size")
    return parser


def _run(coroutine) -> int:
    """Run a long-running command; Ctrl-C ends it cleanly."""
    try:
        result = asyncio.run(coroutine)
    except KeyboardInterrupt:
        return 130
    return 0 if result is not False else 1


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


def _keygen(out: FilePath, public: FilePath | None) -> None:
    key = generate_signing_key()
    try:
        save_private_key(key, out)
    except FileExistsError:
        raise FileExistsError(
            f"{out} exists; keygen never overwrites a key: choose another --out"
        ) from None
    print(f"private key  {out}  (signs packages: keep it secret)")
    if public is not None:
        save_public_key(key.public_key(), public)
        print(f"public key   {public}  (verifies packages: give it to devices)")


def _build(args: argparse.Namespace) -> int:
    key = load_private_key(args.key) if args.key is not None else None
    try:
        pkg = Package.build(
            args.image.read_bytes(),
            name=args.name,
            version=args.pkg_version,
            device_type=args.device_type,
            signing_key=key,
        )
    except ValueError as exc:  # a name, version or device type the format can't hold
        print(f"lwm2m-edu: {exc}", file=sys.stderr)
        return 2
    args.out.write_bytes(bytes(pkg))
    print(f"wrote {args.out}: {len(bytes(pkg))} bytes, {pkg!r}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """Feed the file to a PackageVerifier piece by piece; print the header and the verdict."""
    key = load_public_key(args.verify_key) if args.verify_key is not None else None
    verifier = PackageVerifier(
        verify_key=key, device_type=args.device_type, max_image_size=args.max_image_size
    )
    error: PackageError | None = None
    try:
        with args.package.open("rb") as file:
            while chunk := file.read(INSPECT_CHUNK):
                verifier.feed(chunk)
        verifier.finish()
    except PackageError as exc:
        error = exc
    print(f"{'package':<12} {args.package} ({verifier.bytes_received} bytes read)")
    info = verifier.header
    if info is None:
        print(f"{'header':<12} not shown: rejected before the whole header was read and checked")
    else:
        if info.signature is None:
            signature = "none (unsigned)"
        elif key is None:
            signature = "Ed25519, not checked (give --verify-key PUB.pem to check it)"
        else:
            signature = f"Ed25519, verified with {args.verify_key}"
        rows = [
            ("format", f"LWFW version {info.format_version}, header {info.header_length} bytes"),
            ("name", info.name),
            ("version", info.version),
            ("device type", info.device_type),
            ("image", f"{info.image_size} bytes at offset {info.image_offset}"),
            ("sha256", info.sha256.hex()),
            ("signature", signature),
        ]
        for label, value in rows:
            print(f"{label:<12} {value}")
    if error is not None:
        print(f"{'verdict':<12} REJECTED, Update Result {int(error.result)} {error.result.name}")
        where = f"byte {error.offset}: " if error.offset is not None else ""
        print(f"{'':<12} {where}{error.reason}")
        return 2
    print(f"{'verdict':<12} OK: a device with these settings would accept this package")
    return 0


def _package(args: argparse.Namespace) -> int:
    if args.package_command == "keygen":
        _keygen(args.out, args.public)
    elif args.package_command == "build":
        return _build(args)
    elif args.package_command == "inspect":
        return _inspect(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "model":
            _print_model(args.object_id)
        elif args.command == "decode":
            payload = b"".join(args.payload)
            for path, value in decode(payload, args.format, args.path).items():
                print(f"{path}\t{value!r}")
        elif args.command == "package":
            return _package(args)
        elif args.command == "client":
            return _run(
                run_client(
                    args.server, args.endpoint, lifetime=args.lifetime, flash=args.flash,
                    bootstrap=args.bootstrap, host=args.host,
                )
            )  # fmt: skip
        elif args.command == "server":
            firmware = args.firmware.read_bytes() if args.firmware else None
            return _run(
                run_server(host=args.host, port=args.port, firmware=firmware, mode=args.mode,
                           via=args.via)
            )  # fmt: skip
        elif args.command == "demo":
            return _run(run_demo(size=args.size, flash=args.flash))
        elif args.command == "check":
            checks = asyncio.run(check_all())
            print(report(checks))
            return 0 if all(c.ok for c in checks) else 1
    except (CodecError, ModelError, PathError, PackageError, KeyFileError) as exc:
        print(f"lwm2m-edu: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lwm2m-edu: {exc}", file=sys.stderr)
        return 1
    return 0
