"""Firmware packages: a header that says what the image is, and proof that it arrived intact.

LwM2M moves a firmware *package* to a device (pushed into ``/5/0/0`` or pulled from
``/5/0/1``) but leaves its format to the vendor. Before the device writes anything to flash it
must answer four questions, and each "no" has its own Update Result (``/5/0/5``):

* Is this a package in a format I read, made for a device like me?  no → 6 Unsupported package type
* Does the image fit in my staging slot?                            no → 2 Not enough flash memory
* Did every byte arrive unchanged, and no more and no fewer?        no → 5 Integrity check failure
* Was it made by someone I trust (when I hold a verify key)?        no → 5 Integrity check failure

This module defines a small package format that answers them, in the spirit of the demo that
ships with Anjay (magic, header version, CRC), but with a SHA-256 hash instead of a CRC and an
optional Ed25519 signature. A package is a **header**, an optional **signature** and the
**image**. All integers are big-endian (network byte order).

======  ======  ===========================================================================
offset  size    field
======  ======  ===========================================================================
0       4       magic ``LWFW`` (``4c 57 46 57``): "this is an lwm2m_edu firmware package"
4       1       format version, ``01``
5       1       flags: bit 0 = signed (a signature follows the header); bits 1-7 must be 0
6       2       header length *H*: bytes from offset 0 to the end of the device type below
8       8       image length *L* in bytes (unsigned 64-bit)
16      32      SHA-256 of the image
48      1 + n   package name: length *n* (1-64), then *n* bytes of UTF-8  → ``/5/0/6`` PkgName
..      1 + v   version: length *v* (1-64), then *v* bytes of UTF-8       → ``/5/0/7`` PkgVersion
..      1 + d   device type: length *d* (1-64), then *d* bytes of UTF-8, e.g. ``nrf52840-dk``
*H*     64      Ed25519 signature of bytes 0 .. *H*-1 — only when flags bit 0 is set
*H*+64  *L*     the image (at *H* when unsigned)
======  ======  ===========================================================================

The fixed fields come first so they sit at the same offset in every package; the three text
fields follow. A worked example — ``Package.build(b"hello", name="app", version="1.0",
device_type="demo")``, 66 bytes, unsigned (``tests/test_package.py`` checks it byte for byte)::

    4c 57 46 57                                       magic "LWFW"
    01                                                format version 1
    00                                                flags: unsigned
    00 3d                                             header length 61
    00 00 00 00 00 00 00 05                           image length 5
    2c f2 4d ba 5f b0 a3 0e 26 e8 3b 2a c5 b9 e2 9e   SHA-256 of b"hello" (first 16 bytes)
    1b 16 1e 5c 1f a7 42 5e 73 04 33 62 93 8b 98 24   (last 16 bytes)
    03 61 70 70                                       name "app"
    03 31 2e 30                                       version "1.0"
    04 64 65 6d 6f                                    device type "demo"
    68 65 6c 6c 6f                                    the image: "hello"

**What covers what.** The hash covers the image; it detects any change to the image. The
signature covers the whole header — including the hash, so through it the image too. Nothing
else covers the name or the version: in an *unsigned* package a changed name is undetectable in
principle (unless it stops being UTF-8, the result is just another valid package), and anyone
who alters an image can recompute its hash. Only a signature, checked with a key the device
already holds, tells damage and forgery apart from a genuine package. It does not stop
*rollback* (an old but genuinely signed package still verifies; compare versions for that) and
it does not hide the image.

**The order of checks**, each as early as the bytes allow — a device streams the package to
flash and never holds the whole image (see ``PackageVerifier``):

1. magic, format version, flags, header length (first 8 bytes) → 6
2. the layout: every text length is 1-64 and they end exactly at *H* → 6 (checked as the
   length bytes arrive, so a wrong *H* is caught before *H* bytes are here)
3. the signature, when a verify key is given: missing or wrong → 5. *Before* believing any
   field the header states: a corrupted device type is damage (5), not a foreign package (6).
4. the text fields are UTF-8 → 6; the device type is ours → 6; the image fits → 2
5. after the last byte: the image has exactly *L* bytes (extra bytes fail as they arrive) and
   its SHA-256 matches → 5

A package that **ends early** fails with 5 at every length, even inside the header: the bytes
that did arrive are consistent with a good package, they are just not all there (a download cut
short). 6 is kept for bytes that say "not a package for me". Without a verify key the signature
is carried but not checked — a signature proves nothing to a device that holds no key.
"""

from __future__ import annotations

import hashlib
import html
import os
import struct
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .fota import UpdateResult

__all__ = [
    "FLAG_SIGNED",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_OVERHEAD",
    "MAX_TEXT_BYTES",
    "SIGNATURE_SIZE",
    "KeyFileError",
    "Package",
    "PackageError",
    "PackageInfo",
    "PackageVerifier",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "save_private_key",
    "save_public_key",
]

MAGIC = b"LWFW"
FORMAT_VERSION = 1
FLAG_SIGNED = 0x01  #: flags bit 0: an Ed25519 signature follows the header
SIGNATURE_SIZE = 64  #: an Ed25519 signature is always 64 bytes
MAX_TEXT_BYTES = 64  #: name, version and device type: 1 to 64 bytes of UTF-8 each

_FIXED = struct.Struct(">4sBBHQ32s")  # magic, format version, flags, H, image length, SHA-256
_START = 8  # magic, format version, flags and header length: enough to know the header's size
_TEXT_FIELDS = ("name", "version", "device type")
_MIN_HEADER = _FIXED.size + len(_TEXT_FIELDS) * (1 + 1)
_MAX_HEADER = _FIXED.size + len(_TEXT_FIELDS) * (1 + MAX_TEXT_BYTES)

#: The most bytes a package has before its image (the longest header plus a signature): a slot
#: of S bytes holds any image of up to S - MAX_OVERHEAD bytes.
MAX_OVERHEAD = _MAX_HEADER + SIGNATURE_SIZE

_UNSUPPORTED = UpdateResult.UNSUPPORTED_PACKAGE_TYPE
_INTEGRITY = UpdateResult.INTEGRITY_FAILURE


class PackageError(Exception):
    """A device would reject this package; ``result`` is the Update Result it reports in /5/0/5.

    ``offset`` is the byte of the package where the problem was found, when there is one;
    ``reason`` is the message without it.
    """

    def __init__(self, message: str, *, result: UpdateResult, offset: int | None = None) -> None:
        self.reason = message
        self.result = result
        self.offset = offset
        where = f"byte {offset}: " if offset is not None else ""
        super().__init__(f"Update Result {int(result)} {result.name}: {where}{message}")


class KeyFileError(ValueError):
    """A key file does not hold the Ed25519 key it should."""


def _fail(result: UpdateResult, message: str, offset: int | None = None) -> NoReturn:
    raise PackageError(message, result=result, offset=offset)


def _short(digest: bytes) -> str:
    return digest.hex()[:12] + "…"


@dataclass(frozen=True, repr=False)
class PackageInfo:
    """The fields of a package header, as a device reads them before the image."""

    name: str  #: the package name (what the device reports in /5/0/6 PkgName)
    version: str  #: the package version (/5/0/7 PkgVersion)
    device_type: str  #: the kind of device the image is built for
    image_size: int  #: the image length in bytes
    sha256: bytes  #: the SHA-256 of the image, 32 bytes
    signature: bytes | None  #: the Ed25519 signature of the header, or None if unsigned
    header_length: int  #: H: the bytes the signature covers (offset 0 to the device type's end)
    format_version: int = FORMAT_VERSION

    @property
    def signed(self) -> bool:
        return self.signature is not None

    @property
    def image_offset(self) -> int:
        """Where the image starts: after the header and the signature, if any."""
        return self.header_length + (SIGNATURE_SIZE if self.signed else 0)

    @property
    def package_size(self) -> int:
        """The whole package in bytes, as the header announces it."""
        return self.image_offset + self.image_size

    def _fields(self) -> str:
        return (
            f"name={self.name!r}, version={self.version!r}, device_type={self.device_type!r}, "
            f"size={self.image_size}, sha256={_short(self.sha256)!r}, signed={self.signed}"
        )

    def __repr__(self) -> str:
        return f"PackageInfo({self._fields()})"


@dataclass(frozen=True, repr=False)
class Package:
    """A firmware package: header, optional signature, image. ``bytes(package)`` is the wire form.

    Make one with ``Package.build`` (the vendor's side) or ``Package.parse`` (the device's side,
    which checks everything); both give the same object for the same bytes.
    """

    info: PackageInfo  #: the header fields
    header_bytes: bytes  #: every byte before the image: the header, then the signature if any
    image: bytes  #: the firmware image itself

    @classmethod
    def build(
        cls,
        image: bytes,
        *,
        name: str,
        version: str,
        device_type: str,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> Package:
        """Wrap ``image`` in a header; sign the header with ``signing_key`` if one is given."""
        if signing_key is not None and not isinstance(signing_key, Ed25519PrivateKey):
            raise TypeError(
                f"signing_key must be an Ed25519PrivateKey, not {type(signing_key).__name__}: "
                "make one with generate_signing_key() or load_private_key(path)"
            )
        image = bytes(image)
        texts = [
            _encode_text("name", name),
            _encode_text("version", version),
            _encode_text("device_type", device_type),
        ]
        header_length = _FIXED.size + sum(1 + len(t) for t in texts)
        digest = hashlib.sha256(image).digest()
        flags = FLAG_SIGNED if signing_key is not None else 0
        header = _FIXED.pack(MAGIC, FORMAT_VERSION, flags, header_length, len(image), digest)
        header += b"".join(bytes([len(t)]) + t for t in texts)
        signature = signing_key.sign(header) if signing_key is not None else None
        info = PackageInfo(
            name=name,
            version=version,
            device_type=device_type,
            image_size=len(image),
            sha256=digest,
            signature=signature,
            header_length=header_length,
        )
        return cls(info, header + (signature or b""), image)

    @classmethod
    def parse(
        cls,
        data: bytes,
        *,
        verify_key: Ed25519PublicKey | None = None,
        device_type: str | None = None,
        max_image_size: int | None = None,
    ) -> Package:
        """Check ``data`` as a device would, all at once; raise ``PackageError`` if it would refuse.

        The arguments mean what they mean for ``PackageVerifier``, which does the checking.
        """
        verifier = PackageVerifier(
            verify_key=verify_key, device_type=device_type, max_image_size=max_image_size
        )
        verifier.feed(data)
        info = verifier.finish()
        data = bytes(data)
        return cls(info, data[: info.image_offset], data[info.image_offset :])

    def __bytes__(self) -> bytes:
        return self.header_bytes + self.image

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def device_type(self) -> str:
        return self.info.device_type

    @property
    def size(self) -> int:
        """The image size in bytes (``len(bytes(package))`` is the whole package)."""
        return self.info.image_size

    @property
    def sha256(self) -> bytes:
        return self.info.sha256

    @property
    def signed(self) -> bool:
        return self.info.signed

    @property
    def signature(self) -> bytes | None:
        return self.info.signature

    @property
    def signed_bytes(self) -> bytes:
        """The header bytes the signature covers (offset 0 to H)."""
        return self.header_bytes[: self.info.header_length]

    def __repr__(self) -> str:
        return f"Package({self.info._fields()})"

    def _repr_html_(self) -> str:
        rows = [
            ("name", self.name),
            ("version", self.version),
            ("device type", self.device_type),
            ("image", f"{self.size} bytes"),
            ("SHA-256", self.sha256.hex()),
            ("signature", "Ed25519" if self.signed else "none (unsigned)"),
            ("package", f"{len(self.header_bytes) + self.size} bytes"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in rows
        )
        return f"<table><caption>Package</caption>{body}</table>"


def _encode_text(label: str, text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{label} must be a str, not {type(text).__name__}")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{label} {text!r} can't be written as UTF-8 (lone surrogate)") from None
    if not 1 <= len(encoded) <= MAX_TEXT_BYTES:
        raise ValueError(
            f"{label} must be 1 to {MAX_TEXT_BYTES} bytes of UTF-8; {text[:20]!r}… is "
            f"{len(encoded)} bytes: shorten it"
            if encoded
            else f"{label} must not be empty: give 1 to {MAX_TEXT_BYTES} bytes of UTF-8"
        )
    return encoded


# --- The one place that reads a header. ---------------------------------------------------


def _check_start(start: bytes) -> int | None:
    """Check the first (up to 8) bytes; return the header length H once all 8 are here."""
    if not MAGIC.startswith(start[:4]):
        _fail(
            _UNSUPPORTED,
            f"expected the magic {MAGIC!r} ({MAGIC.hex(' ')}), found {start[:4]!r}: this is not "
            "an lwm2m_edu package; make one with Package.build or `lwm2m-edu package build`",
            0,
        )
    if len(start) > 4 and start[4] != FORMAT_VERSION:
        _fail(
            _UNSUPPORTED,
            f"format version {start[4]} is unknown; this device reads format version "
            f"{FORMAT_VERSION} only: build the package for it, or update the device's parser",
            4,
        )
    if len(start) > 5 and start[5] & ~FLAG_SIGNED:
        _fail(
            _UNSUPPORTED,
            f"flags 0x{start[5]:02x} set reserved bits 0x{start[5] & ~FLAG_SIGNED & 0xFF:02x}; "
            f"format version {FORMAT_VERSION} defines only bit 0 (signed), the rest must be 0",
            5,
        )
    if len(start) < _START:
        return None
    (header_length,) = struct.unpack_from(">H", start, 6)
    if not _MIN_HEADER <= header_length <= _MAX_HEADER:
        _fail(
            _UNSUPPORTED,
            f"header length {header_length} is impossible: a header is {_MIN_HEADER} to "
            f"{_MAX_HEADER} bytes ({_FIXED.size} fixed, then three texts of 1 to "
            f"{MAX_TEXT_BYTES} bytes, each with a length byte)",
            6,
        )
    return header_length


def _text_spans(header: bytes, header_length: int) -> list[tuple[int, int]] | None:
    """(offset, length) of the three texts; check each is 1-64 bytes and they end exactly at H.

    ``header`` may be the first part of the header only: what it holds is checked, and the
    spans come back once all three length bytes are here (None until then). So a wrong header
    length is caught as soon as the text lengths contradict it, not only when H bytes arrive.
    """
    spans = []
    offset = _FIXED.size
    for label in _TEXT_FIELDS:
        if offset >= header_length:
            _fail(
                _UNSUPPORTED,
                f"the {label} would start at byte {offset}, past the header length "
                f"{header_length}: the header length and the text lengths disagree",
                offset,
            )
        if offset >= len(header):
            return None
        length = header[offset]
        if not 1 <= length <= MAX_TEXT_BYTES:
            _fail(
                _UNSUPPORTED, f"the {label} length is {length}, not 1 to {MAX_TEXT_BYTES}", offset
            )
        spans.append((offset + 1, length))
        offset += 1 + length
    if offset != header_length:
        _fail(
            _UNSUPPORTED,
            f"the header length says {header_length} bytes, but its texts end at byte {offset}: "
            "the header length and the text lengths disagree",
            6,
        )
    return spans


def _read_header(
    header: bytes, signature: bytes | None, verify_key: Ed25519PublicKey | None
) -> PackageInfo:
    """Parse a complete header (H bytes) and its signature; authenticate before decoding."""
    spans = _text_spans(header, len(header))
    assert spans is not None  # a complete header has all three length bytes
    if verify_key is not None:
        if signature is None:
            _fail(
                _INTEGRITY,
                "this device requires a signed package, and this one is unsigned (flags bit 0 "
                "is 0): sign it with the vendor key (Package.build(..., signing_key=key))",
                5,
            )
        try:
            verify_key.verify(signature, header)
        except InvalidSignature:
            _fail(
                _INTEGRITY,
                "the Ed25519 signature does not match the header and this device's key: the "
                "header or signature was altered, or it was signed with another key",
                len(header),
            )
    texts = []
    for label, (offset, length) in zip(_TEXT_FIELDS, spans, strict=True):
        try:
            texts.append(header[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            _fail(_UNSUPPORTED, f"the {label} is not valid UTF-8", offset + exc.start)
    _, _, _, _, image_size, digest = _FIXED.unpack_from(header)
    name, version, device_type = texts
    return PackageInfo(name, version, device_type, image_size, digest, signature, len(header))


def _check_fits(info: PackageInfo, device_type: str | None, max_image_size: int | None) -> None:
    if device_type is not None and info.device_type != device_type:
        _fail(
            _UNSUPPORTED,
            f"this package is for device type {info.device_type!r}, and this device is "
            f"{device_type!r}: build the package with device_type={device_type!r}",
        )
    if max_image_size is not None and info.image_size > max_image_size:
        _fail(
            UpdateResult.NOT_ENOUGH_FLASH,
            f"the image is {info.image_size} bytes and the staging slot holds "
            f"{max_image_size}: make the image smaller, or use a device with more flash",
            8,
        )


class PackageVerifier:
    """Check a package as it streams in, the way a device does: chunk by chunk, never whole.

    ``feed(chunk)`` each piece as it arrives (a CoAP block, an HTTP read); it raises
    ``PackageError`` as soon as the bytes so far prove the package bad: a wrong magic on the first
    byte, a wrong signature, device type or size once the header is complete, extra bytes after
    the image. ``finish()`` after the last piece checks what only the end can tell (the package is
    complete, the image hash matches) and returns the header fields.

    * ``verify_key``: require a package signed by the matching private key.
    * ``device_type``: require a package built for this device type.
    * ``max_image_size``: the device's staging slot, in bytes; a bigger image is refused.

    It holds at most the header and signature (at most 307 bytes) plus the chunk being fed:
    image bytes are hashed and passed on, not kept.
    """

    def __init__(
        self,
        *,
        verify_key: Ed25519PublicKey | None = None,
        device_type: str | None = None,
        max_image_size: int | None = None,
    ) -> None:
        if isinstance(verify_key, Ed25519PrivateKey):
            raise TypeError(
                "verify_key is a private key; a device holds only the public half: "
                "pass key.public_key()"
            )
        if verify_key is not None and not isinstance(verify_key, Ed25519PublicKey):
            raise TypeError(
                f"verify_key must be an Ed25519PublicKey, not {type(verify_key).__name__}: "
                "load one with load_public_key(path)"
            )
        if max_image_size is not None and max_image_size < 0:
            raise ValueError(f"max_image_size must be 0 or more bytes, not {max_image_size}")
        self._verify_key = verify_key
        self._device_type = device_type
        self._max_image_size = max_image_size
        self._buffer = bytearray()  # the header and signature, until both are complete
        self._wanted = _START  # how many bytes the buffer must hold before the next check
        self._header_length: int | None = None
        self._header: PackageInfo | None = None
        self._hash = hashlib.sha256()
        self._received = 0
        self._image_received = 0
        self._error: PackageError | None = None
        self._finished = False

    @property
    def bytes_received(self) -> int:
        """Every byte fed so far."""
        return self._received

    @property
    def header(self) -> PackageInfo | None:
        """The header fields, once complete, well formed and (with a verify key) authentic."""
        return self._header

    @property
    def expected_size(self) -> int | None:
        """The whole package size the header announces, once it is known (for progress bars)."""
        return self._header.package_size if self._header is not None else None

    @property
    def needed(self) -> int:
        """How many more bytes complete what is being read now: the next part of the header,
        or the rest of the package once the header is known. A reader that must not read past
        the package (a bootloader reading a slot) asks for at most this many."""
        if self._header is None:
            return self._wanted - len(self._buffer)
        return self._header.package_size - self._received

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the package; raise ``PackageError`` if it proves it bad."""
        if self._error is not None:
            raise self._error
        if self._finished:
            raise RuntimeError("finish() was called; use a new PackageVerifier for a new package")
        try:
            self._feed(memoryview(chunk).cast("B"))
        except PackageError as exc:
            self._error = exc
            raise

    def finish(self) -> PackageInfo:
        """The package is complete: check its length and hash; return the header fields."""
        if self._error is not None:
            raise self._error
        try:
            info = self._finish()
        except PackageError as exc:
            self._error = exc
            raise
        self._finished = True
        return info

    def _feed(self, view: memoryview) -> None:
        self._received += len(view)
        while self._header is None and view:
            take = self._wanted - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            self._check_buffer()
        if not view:
            return
        assert self._header is not None
        room = self._header.image_size - self._image_received
        if len(view) > room:
            end = self._header.package_size
            _fail(
                _INTEGRITY,
                f"the header says the package ends after {end} bytes, and more arrived: "
                "trailing bytes after the image (a corrupted length, or two files joined)",
                end,
            )
        self._hash.update(view)
        self._image_received += len(view)

    def _check_buffer(self) -> None:
        if self._header_length is None:
            self._header_length = _check_start(bytes(self._buffer))
            if self._header_length is None:
                return
            signed = self._buffer[5] & FLAG_SIGNED
            self._wanted = self._header_length + (SIGNATURE_SIZE if signed else 0)
        if len(self._buffer) < self._wanted:
            _text_spans(bytes(self._buffer[: self._header_length]), self._header_length)
            return
        header = bytes(self._buffer[: self._header_length])
        signature = bytes(self._buffer[self._header_length :]) or None
        self._header = _read_header(header, signature, self._verify_key)
        self._buffer = bytearray()
        _check_fits(self._header, self._device_type, self._max_image_size)

    def _finish(self) -> PackageInfo:
        if self._finished:
            assert self._header is not None
            return self._header
        if self._header is None:
            expected = (
                f"its header and signature take {self._wanted} bytes"
                if self._header_length is not None
                else f"a header takes at least {_MIN_HEADER} bytes"
            )
            _fail(
                _INTEGRITY,
                f"the package ended after {self._received} bytes, inside its header "
                f"({expected}): it was cut short; fetch it again",
                self._received,
            )
        info = self._header
        if self._image_received < info.image_size:
            _fail(
                _INTEGRITY,
                f"the package ended after {self._received} of the {info.package_size} bytes "
                f"its header announces ({self._image_received} of {info.image_size} image bytes): "
                "it was cut short; fetch it again",
                self._received,
            )
        digest = self._hash.digest()
        if digest != info.sha256:
            _fail(
                _INTEGRITY,
                f"the image's SHA-256 is {_short(digest)} and the header says "
                f"{_short(info.sha256)}: the image was damaged on the way; fetch it again",
            )
        return info


# --- Keys ----------------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 private key: the vendor signs with it; devices get ``key.public_key()``."""
    return Ed25519PrivateKey.generate()


def save_private_key(
    key: Ed25519PrivateKey, path: str | os.PathLike[str], *, password: bytes | None = None
) -> None:
    """Write ``key`` as PEM (PKCS#8), readable by the owner only; never overwrite a file.

    Without ``password`` the file is unencrypted: fine for a workshop, not for a product.
    """
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"key must be an Ed25519PrivateKey, not {type(key).__name__}")
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)


def load_private_key(
    path: str | os.PathLike[str], *, password: bytes | None = None
) -> Ed25519PrivateKey:
    """Read a key from ``save_private_key`` (or ``openssl genpkey -algorithm ed25519``)."""
    data = FilePath(path).read_bytes()
    if b"PRIVATE KEY" not in data:
        raise KeyFileError(f"{path} holds no PEM private key; make one with generate_signing_key()")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # password missing, or given for an unencrypted key
        raise KeyFileError(f"{path}: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} can't be read as a private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{path} holds a {type(key).__name__.removeprefix('_')}, and packages are signed "
            "with Ed25519: make a key with generate_signing_key() or `lwm2m-edu package keygen`"
        )
    return key


def save_public_key(key: Ed25519PublicKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` as PEM (SubjectPublicKeyInfo): the file a device is given."""
    if isinstance(key, Ed25519PrivateKey):
        raise TypeError("this is the private key; save its public half: key.public_key()")
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"key must be an Ed25519PublicKey, not {type(key).__name__}")
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    FilePath(path).write_bytes(pem)


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read a public key written by ``save_public_key``; a device verifies packages with it."""
    data = FilePath(path).read_bytes()
    if b"PRIVATE KEY" in data:
        raise KeyFileError(
            f"{path} holds a private key; a device gets only the public key "
            "(save_public_key, or `lwm2m-edu package keygen --public PUB.pem`)"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} can't be read as a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(
            f"{path} holds a {type(key).__name__.removeprefix('_')}; packages are signed "
            "with Ed25519 keys"
        )
    return key
