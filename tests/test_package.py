"""The firmware package format: build, parse, stream-verify, and the Update Result of each fault.

The bit-flip and truncation tests describe the layout independently of the parser (``FIELDS``
below, from the table in ``lwm2m_edu/package.py``) and say, per field, which Update Result a
device must report when one bit of that field changes.
"""

import hashlib
import itertools
import re
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from lwm2m_edu import package as package_module
from lwm2m_edu.fota import UpdateResult
from lwm2m_edu.package import (
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

UNSUPPORTED = UpdateResult.UNSUPPORTED_PACKAGE_TYPE  # 6
INTEGRITY = UpdateResult.INTEGRITY_FAILURE  # 5
NO_FLASH = UpdateResult.NOT_ENOUGH_FLASH  # 2

KEY = generate_signing_key()
PUBLIC = KEY.public_key()
OTHER_KEY = generate_signing_key()

IMAGE = bytes(range(0xA0, 0xB0))  # 16 bytes
SMALL = {"name": "app", "version": "1.0", "device_type": "dev"}

# The layout of a package with 3-byte name, version and device type: (field, offset, size).
FIELDS = [
    ("magic", 0, 4),
    ("format version", 4, 1),
    ("flags", 5, 1),
    ("header length", 6, 2),
    ("image length", 8, 8),
    ("sha256", 16, 32),
    ("name length", 48, 1),
    ("name", 49, 3),
    ("version length", 52, 1),
    ("version", 53, 3),
    ("device type length", 56, 1),
    ("device type", 57, 3),
]
HEADER_END = 60


def field_at(offset: int, signed: bool) -> str:
    for name, start, size in FIELDS:
        if start <= offset < start + size:
            return name
    if signed and offset < HEADER_END + 64:
        return "signature"
    return "image"


def flip(data: bytes, offset: int, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 1 << bit
    return bytes(damaged)


def rejection(data: bytes, **checks) -> UpdateResult | None:
    """The Update Result Package.parse rejects ``data`` with, or None if it accepts it."""
    try:
        Package.parse(data, **checks)
    except PackageError as exc:
        return exc.result
    return None


def signed_package() -> Package:
    return Package.build(IMAGE, **SMALL, signing_key=KEY)


def unsigned_package() -> Package:
    return Package.build(IMAGE, **SMALL)


# --- Round trip -----------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64).filter(
    lambda t: len(t.encode()) <= 64
)


@settings(max_examples=60, deadline=None)
@given(image=st.binary(max_size=300), name=texts, version=texts, device=texts, signed=st.booleans())
def test_build_then_parse_gives_the_same_package(image, name, version, device, signed):
    built = Package.build(
        image, name=name, version=version, device_type=device, signing_key=KEY if signed else None
    )
    parsed = Package.parse(bytes(built), verify_key=PUBLIC if signed else None, device_type=device)
    assert parsed == built
    assert (parsed.name, parsed.version, parsed.device_type) == (name, version, device)
    assert parsed.image == image
    assert parsed.sha256 == hashlib.sha256(image).digest()
    assert parsed.signed is signed
    assert bytes(parsed) == bytes(built)


def test_the_worked_example_in_the_module_docstring_is_the_real_bytes():
    doc = package_module.__doc__
    example = doc[doc.index('device_type="demo")``') :].split("::", 1)[1].split("\n\n")[1]
    hex_column = "".join(
        re.match(r"\s*((?:[0-9a-f]{2} )+)", line)[1] for line in example.splitlines()
    )
    expected = Package.build(b"hello", name="app", version="1.0", device_type="demo")
    assert bytes.fromhex(hex_column) == bytes(expected)
    assert f"{len(bytes(expected))} bytes" in doc


def test_a_signed_package_is_64_bytes_longer_than_the_same_unsigned_one():
    assert len(bytes(signed_package())) == len(bytes(unsigned_package())) + 64
    assert signed_package().signed_bytes[:5] == unsigned_package().signed_bytes[:5]


# --- Every single-bit flip ------------------------------------------------------------------

SIGNED_FLIP_RESULT = {
    "magic": UNSUPPORTED,
    "format version": UNSUPPORTED,
    "header length": UNSUPPORTED,
    "image length": INTEGRITY,  # caught by the signature (else: truncated or trailing bytes)
    "sha256": INTEGRITY,
    "name length": UNSUPPORTED,  # the texts no longer end at the header length
    "name": INTEGRITY,  # only the signature covers the name
    "version length": UNSUPPORTED,
    "version": INTEGRITY,
    "device type length": UNSUPPORTED,
    "device type": INTEGRITY,  # damage, caught by the signature before the device type check
    "signature": INTEGRITY,
    "image": INTEGRITY,
}


def expected_for_flags(bit: int) -> UpdateResult:
    # bit 0 (signed) cleared: the package claims to be unsigned -> missing signature (5);
    # bits 1-7 are reserved in format version 1 -> a format this device does not know (6)
    return INTEGRITY if bit == 0 else UNSUPPORTED


def test_every_bit_flip_in_a_signed_package_is_caught_with_the_right_result():
    data = bytes(signed_package())
    assert len(data) == HEADER_END + 64 + len(IMAGE)
    for offset in range(len(data)):
        field = field_at(offset, signed=True)
        for bit in range(8):
            expected = expected_for_flags(bit) if field == "flags" else SIGNED_FLIP_RESULT[field]
            got = rejection(
                flip(data, offset, bit), verify_key=PUBLIC, device_type="dev", max_image_size=1024
            )
            assert got == expected, f"{field} byte {offset} bit {bit}: {got!r}"


UNSIGNED_FLIP_RESULT = {
    "magic": UNSUPPORTED,
    "format version": UNSUPPORTED,
    "header length": UNSUPPORTED,
    "image length": INTEGRITY,  # the package is now truncated, or has trailing bytes
    "sha256": INTEGRITY,
    "name length": UNSUPPORTED,
    "version length": UNSUPPORTED,
    "device type length": UNSUPPORTED,
    "device type": UNSUPPORTED,  # not our device type (or not UTF-8)
    "image": INTEGRITY,
}


def test_every_bit_flip_in_an_unsigned_package_is_caught_except_in_name_and_version():
    # Unsigned, nothing covers the name or version: a flip that keeps them valid UTF-8 just
    # gives another well-formed package. Only a flip to a non-ASCII byte (bit 7) is noticed.
    data = bytes(unsigned_package())
    for offset in range(len(data)):
        field = field_at(offset, signed=False)
        for bit in range(8):
            if field == "flags":
                # bit 0 set: a signature is expected, so the image is 64 bytes short
                expected = expected_for_flags(bit)
            elif field in ("name", "version"):
                expected = UNSUPPORTED if bit == 7 else None
            else:
                expected = UNSIGNED_FLIP_RESULT[field]
            got = rejection(flip(data, offset, bit), device_type="dev")
            assert got == expected, f"{field} byte {offset} bit {bit}: {got!r}"


def test_a_flip_in_the_name_of_an_unsigned_package_gives_another_valid_package():
    data = flip(bytes(unsigned_package()), 49, 5)  # 'a' -> 'A'
    assert Package.parse(data).name == "App"


def test_a_flip_in_the_name_of_a_signed_package_is_an_integrity_failure():
    data = flip(bytes(signed_package()), 49, 5)
    assert rejection(data, verify_key=PUBLIC) == INTEGRITY


def test_every_bit_flip_in_the_image_is_an_integrity_failure():
    for pkg in (signed_package(), unsigned_package()):
        data = bytes(pkg)
        start = pkg.info.image_offset
        for offset in range(start, len(data)):
            for bit in range(8):
                assert rejection(flip(data, offset, bit), verify_key=None) == INTEGRITY


# --- Truncation and extra bytes ------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_truncation_at_every_length_is_an_integrity_failure(signed):
    # Even inside the header: the bytes that arrived are a good package's start, cut short.
    pkg = signed_package() if signed else unsigned_package()
    data = bytes(pkg)
    for length in range(len(data)):
        with pytest.raises(PackageError) as caught:
            Package.parse(data[:length], verify_key=PUBLIC if signed else None)
        assert caught.value.result == INTEGRITY, length
        assert caught.value.offset == length
        assert "cut short" in str(caught.value)


def test_trailing_bytes_after_the_image_are_an_integrity_failure():
    data = bytes(unsigned_package()) + b"\0"
    with pytest.raises(PackageError, match="trailing bytes") as caught:
        Package.parse(data)
    assert caught.value.result == INTEGRITY
    assert caught.value.offset == len(data) - 1


# --- Keys and signatures -------------------------------------------------------------------


def test_a_package_signed_with_another_key_is_an_integrity_failure():
    data = bytes(Package.build(IMAGE, **SMALL, signing_key=OTHER_KEY))
    with pytest.raises(PackageError, match="signed with another key") as caught:
        Package.parse(data, verify_key=PUBLIC)
    assert caught.value.result == INTEGRITY


def test_an_unsigned_package_is_an_integrity_failure_when_a_verify_key_is_required():
    with pytest.raises(PackageError, match="requires a signed package") as caught:
        Package.parse(bytes(unsigned_package()), verify_key=PUBLIC)
    assert caught.value.result == INTEGRITY


def test_a_signed_package_is_accepted_unchecked_without_a_verify_key():
    pkg = Package.parse(bytes(Package.build(IMAGE, **SMALL, signing_key=OTHER_KEY)))
    assert pkg.signed


def test_a_swapped_image_with_a_recomputed_hash_fails_the_signature():
    # The forger's move against an unsigned package; the signature covers the hash.
    genuine = signed_package()
    forged = Package.build(b"evil" * 4, **SMALL)
    data = forged.signed_bytes[:5] + bytes([1]) + forged.signed_bytes[6:]  # claim "signed"
    data += genuine.signature + forged.image
    assert rejection(data, verify_key=PUBLIC) == INTEGRITY


# --- Is it for this device, and does it fit? -----------------------------------------------


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_a_package_for_another_device_type_is_unsupported(signed):
    pkg = signed_package() if signed else unsigned_package()
    with pytest.raises(PackageError, match=r"device type 'dev'.*'nrf52'") as caught:
        Package.parse(bytes(pkg), verify_key=PUBLIC if signed else None, device_type="nrf52")
    assert caught.value.result == UNSUPPORTED


def test_an_image_larger_than_the_staging_slot_is_not_enough_flash():
    with pytest.raises(PackageError, match=r"16 bytes.*holds 15") as caught:
        Package.parse(bytes(unsigned_package()), max_image_size=15)
    assert caught.value.result == NO_FLASH


def test_an_image_exactly_the_size_of_the_staging_slot_fits():
    assert Package.parse(bytes(unsigned_package()), max_image_size=16).size == 16


def test_a_wrong_magic_is_unsupported_and_names_the_expected_magic():
    with pytest.raises(PackageError, match="LWFW") as caught:
        Package.parse(b"\x7fELF" + bytes(unsigned_package())[4:])
    assert caught.value.result == UNSUPPORTED
    assert caught.value.offset == 0


def test_an_unknown_format_version_is_unsupported():
    data = bytearray(bytes(unsigned_package()))
    data[4] = 2
    with pytest.raises(PackageError, match="format version 2 is unknown") as caught:
        Package.parse(bytes(data))
    assert caught.value.result == UNSUPPORTED


# --- Streaming ------------------------------------------------------------------------------


def outcome(result):
    """Run ``result()``; give what it returned or the Update Result of its PackageError."""
    try:
        return result()
    except PackageError as exc:
        return exc.result


def stream(data: bytes, cuts: list[int], **checks):
    verifier = PackageVerifier(**checks)
    edges = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in itertools.pairwise(edges):
        verifier.feed(data[start:end])
    return verifier.finish()


@settings(max_examples=150, deadline=None)
@given(
    image=st.binary(max_size=200),
    signed=st.booleans(),
    damage=st.one_of(
        st.none(),
        st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
        st.tuples(st.just("cut"), st.integers(0, 10_000)),
        st.tuples(st.just("extend"), st.binary(min_size=1, max_size=5)),
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    key_required=st.booleans(),
)
def test_the_streaming_verifier_agrees_with_parse_for_any_chunking(
    image, signed, damage, cuts, key_required
):
    data = bytes(Package.build(image, **SMALL, signing_key=KEY if signed else None))
    if damage and damage[0] == "flip":
        data = flip(data, damage[1] % len(data), damage[2])
    elif damage and damage[0] == "cut":
        data = data[: damage[1] % len(data)]
    elif damage:
        data += damage[1]
    checks = {"verify_key": PUBLIC if key_required else None, "device_type": "dev"}
    checks["max_image_size"] = 150
    whole = outcome(lambda: Package.parse(data, **checks).info)
    assert outcome(lambda: stream(data, cuts, **checks)) == whole


def test_the_verifier_rejects_a_wrong_magic_on_the_first_byte():
    verifier = PackageVerifier()
    with pytest.raises(PackageError) as caught:
        verifier.feed(b"X")
    assert caught.value.result == UNSUPPORTED
    assert verifier.bytes_received == 1


def header_of(pkg: Package) -> bytes:
    return bytes(pkg)[: pkg.info.image_offset]


@pytest.mark.parametrize(
    ("pkg", "checks", "result"),
    [
        (signed_package(), {"device_type": "other"}, UNSUPPORTED),
        (signed_package(), {"max_image_size": 8}, NO_FLASH),
        (Package.build(IMAGE, **SMALL, signing_key=OTHER_KEY), {"verify_key": PUBLIC}, INTEGRITY),
        (unsigned_package(), {"verify_key": PUBLIC}, INTEGRITY),
    ],
    ids=["device type", "size", "wrong key", "unsigned"],
)
def test_the_verifier_rejects_as_soon_as_the_header_is_complete(pkg, checks, result):
    header = header_of(pkg)
    verifier = PackageVerifier(**checks)
    verifier.feed(header[:-1])  # not knowable yet
    assert verifier.header is None
    with pytest.raises(PackageError) as caught:
        verifier.feed(header[-1:])  # the header's last byte: no image byte has arrived
    assert caught.value.result == result
    assert verifier.bytes_received == len(header)


def test_the_verifier_catches_a_wrong_header_length_from_the_text_lengths():
    data = flip(bytes(signed_package()), 7, 6)  # header length 60 -> 124
    verifier = PackageVerifier()
    verifier.feed(data[:56])
    with pytest.raises(PackageError, match="disagree") as caught:
        verifier.feed(data[56:57])  # the device type's length byte: the texts end at 60
    assert caught.value.result == UNSUPPORTED


def test_the_verifier_shows_the_header_before_the_image_arrives():
    pkg = signed_package()
    verifier = PackageVerifier(verify_key=PUBLIC)
    verifier.feed(header_of(pkg))
    assert verifier.header == pkg.info
    assert verifier.expected_size == len(bytes(pkg))


def test_the_verifier_can_say_truncated_only_at_finish():
    data = bytes(signed_package())
    verifier = PackageVerifier(verify_key=PUBLIC)
    verifier.feed(data[:-1])
    with pytest.raises(PackageError, match="cut short") as caught:
        verifier.finish()
    assert caught.value.result == INTEGRITY


def test_the_verifier_rejects_trailing_bytes_as_they_arrive():
    verifier = PackageVerifier()
    verifier.feed(bytes(unsigned_package()))
    with pytest.raises(PackageError, match="trailing") as caught:
        verifier.feed(b"\0")
    assert caught.value.result == INTEGRITY


def test_the_verifier_keeps_refusing_after_a_rejection():
    verifier = PackageVerifier()
    with pytest.raises(PackageError):
        verifier.feed(b"X")
    with pytest.raises(PackageError, match="LWFW"):
        verifier.feed(bytes(unsigned_package()))
    with pytest.raises(PackageError, match="LWFW"):
        verifier.finish()


def test_feeding_a_finished_verifier_is_misuse():
    verifier = PackageVerifier()
    verifier.feed(bytes(unsigned_package()))
    verifier.finish()
    with pytest.raises(RuntimeError, match="new PackageVerifier"):
        verifier.feed(b"")


def test_the_verifier_holds_no_image_bytes():
    pkg = Package.build(bytes(100_000), **SMALL, signing_key=KEY)
    verifier = PackageVerifier(verify_key=PUBLIC)
    data = bytes(pkg)
    for start in range(0, len(data), 1000):
        verifier.feed(data[start : start + 1000])
        assert len(verifier._buffer) <= 48 + 3 * 65 + 64
    assert verifier.finish() == pkg.info


# --- Errors that teach, and misuse ---------------------------------------------------------


def test_a_package_error_names_the_update_result():
    error = PackageError("bad", result=INTEGRITY, offset=3)
    assert str(error) == "Update Result 5 INTEGRITY_FAILURE: byte 3: bad"
    assert (error.result, error.offset, error.reason) == (INTEGRITY, 3, "bad")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "must not be empty"),
        ("version", "x" * 65, "1 to 64 bytes"),
        ("device_type", "é" * 33, "66 bytes"),
        ("name", "\ud800", "UTF-8"),
    ],
)
def test_build_rejects_texts_the_format_cannot_hold(field, value, message):
    with pytest.raises(ValueError, match=message):
        Package.build(IMAGE, **{**SMALL, field: value})


def test_build_rejects_a_key_that_is_not_ed25519():
    with pytest.raises(TypeError, match="generate_signing_key"):
        Package.build(IMAGE, **SMALL, signing_key=PUBLIC)


def test_a_private_key_as_verify_key_is_misuse_naming_public_key():
    with pytest.raises(TypeError, match=r"public_key\(\)"):
        PackageVerifier(verify_key=KEY)


def test_repr_shows_the_fields_but_not_the_image():
    pkg = Package.build(b"\xaa" * 1000, **SMALL, signing_key=KEY)
    text = repr(pkg)
    assert text.startswith("Package(name='app', version='1.0', device_type='dev', size=1000")
    assert "signed=True" in text
    assert "aaaa" not in text
    assert len(text) < 150


def test_html_repr_is_a_small_table():
    html = signed_package()._repr_html_()
    assert html.startswith("<table>")
    assert "dev" in html
    assert "Ed25519" in html


# --- Key files -----------------------------------------------------------------------------


def test_keys_saved_as_pem_load_back_and_still_verify(tmp_path):
    save_private_key(KEY, tmp_path / "key.pem")
    save_public_key(PUBLIC, tmp_path / "pub.pem")
    key = load_private_key(tmp_path / "key.pem")
    public = load_public_key(tmp_path / "pub.pem")
    pkg = Package.build(IMAGE, **SMALL, signing_key=key)
    assert Package.parse(bytes(pkg), verify_key=public).signed
    assert Package.parse(bytes(signed_package()), verify_key=public).signed


def test_a_private_key_file_is_readable_by_its_owner_only(tmp_path):
    save_private_key(KEY, tmp_path / "key.pem")
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


def test_a_private_key_file_is_never_overwritten(tmp_path):
    (tmp_path / "key.pem").write_text("precious")
    with pytest.raises(FileExistsError):
        save_private_key(KEY, tmp_path / "key.pem")
    assert (tmp_path / "key.pem").read_text() == "precious"


def test_a_password_protected_key_needs_its_password(tmp_path):
    save_private_key(KEY, tmp_path / "key.pem", password=b"s3cret")
    with pytest.raises(KeyFileError, match="encrypted"):
        load_private_key(tmp_path / "key.pem")
    assert isinstance(load_private_key(tmp_path / "key.pem", password=b"s3cret"), type(KEY))


def test_a_private_key_is_refused_where_a_public_key_belongs(tmp_path):
    save_private_key(KEY, tmp_path / "key.pem")
    with pytest.raises(KeyFileError, match="only the public key"):
        load_public_key(tmp_path / "key.pem")


def test_a_public_key_file_is_not_a_private_key(tmp_path):
    save_public_key(PUBLIC, tmp_path / "pub.pem")
    with pytest.raises(KeyFileError, match="no PEM private key"):
        load_private_key(tmp_path / "pub.pem")


def test_a_non_ed25519_key_file_is_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization

    ec_key = generate_private_key(SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "ec.pem").write_bytes(pem)
    with pytest.raises(KeyFileError, match="Ed25519"):
        load_private_key(tmp_path / "ec.pem")
