"""``lwm2m-edu package keygen | build | inspect``: the package format from the command line."""

import stat

import pytest

from lwm2m_edu.cli import main
from lwm2m_edu.package import Package, load_private_key, load_public_key


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "app.bin"
    path.write_bytes(b"firmware image " * 10)
    return path


@pytest.fixture
def keys(tmp_path, capsys):
    assert main(["package", "keygen", "--out", str(tmp_path / "key.pem"), "--public",
                 str(tmp_path / "pub.pem")]) == 0  # fmt: skip
    capsys.readouterr()
    return tmp_path / "key.pem", tmp_path / "pub.pem"


def build(image, out, *extra: str) -> int:
    args = ["package", "build", str(image), "--name", "app", "--version", "1.2.0"]
    return main([*args, "--device-type", "dk", "--out", str(out), *extra])


def test_keygen_writes_a_secret_private_key_and_its_public_key(keys, capsys):
    key, pub = keys
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_public_key(pub) == load_private_key(key).public_key()


def test_keygen_never_overwrites_a_key(keys, capsys):
    key, _ = keys
    before = key.read_bytes()
    assert main(["package", "keygen", "--out", str(key)]) == 1
    assert "never overwrites" in capsys.readouterr().err
    assert key.read_bytes() == before


def test_build_writes_a_package_that_parses(image, tmp_path, capsys):
    out = tmp_path / "app.pkg"
    assert build(image, out) == 0
    pkg = Package.parse(out.read_bytes(), device_type="dk")
    assert (pkg.name, pkg.version, pkg.image, pkg.signed) == (
        "app",
        "1.2.0",
        image.read_bytes(),
        False,
    )
    assert "app.pkg" in capsys.readouterr().out


def test_build_with_a_key_signs_the_package(image, keys, tmp_path):
    key, pub = keys
    assert build(image, tmp_path / "app.pkg", "--key", str(key)) == 0
    assert Package.parse(
        (tmp_path / "app.pkg").read_bytes(), verify_key=load_public_key(pub)
    ).signed


def test_build_refuses_a_name_the_format_cannot_hold(image, tmp_path, capsys):
    args = ["package", "build", str(image), "--name", "n" * 65, "--version", "1"]
    assert main([*args, "--device-type", "dk", "--out", str(tmp_path / "x.pkg")]) == 2
    assert "1 to 64 bytes" in capsys.readouterr().err
    assert not (tmp_path / "x.pkg").exists()


def test_inspect_prints_the_header_and_accepts_a_good_signed_package(image, keys, tmp_path, capsys):
    key, pub = keys
    build(image, tmp_path / "app.pkg", "--key", str(key))
    capsys.readouterr()
    code = main(["package", "inspect", str(tmp_path / "app.pkg"), "--verify-key", str(pub),
                 "--device-type", "dk"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    for expected in ("app", "1.2.0", "dk", "150 bytes", "verified with", "verdict      OK"):
        assert expected in out


def test_inspect_says_an_unchecked_signature_was_not_checked(image, keys, tmp_path, capsys):
    build(image, tmp_path / "app.pkg", "--key", str(keys[0]))
    capsys.readouterr()
    assert main(["package", "inspect", str(tmp_path / "app.pkg")]) == 0
    assert "not checked" in capsys.readouterr().out


def test_inspect_rejects_a_wrong_device_type_with_result_6(image, tmp_path, capsys):
    build(image, tmp_path / "app.pkg")
    capsys.readouterr()
    code = main(["package", "inspect", str(tmp_path / "app.pkg"), "--device-type", "other"])
    out = capsys.readouterr().out
    assert code == 2
    assert "Update Result 6 UNSUPPORTED_PACKAGE_TYPE" in out
    assert "name         app" in out  # the header is still shown: it was read and well formed


def test_inspect_rejects_a_damaged_package_with_result_5(image, tmp_path, capsys):
    build(image, tmp_path / "app.pkg")
    data = bytearray((tmp_path / "app.pkg").read_bytes())
    data[-1] ^= 1
    (tmp_path / "app.pkg").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["package", "inspect", str(tmp_path / "app.pkg")]) == 2
    assert "Update Result 5 INTEGRITY_FAILURE" in capsys.readouterr().out


def test_inspect_rejects_an_unsigned_package_when_a_verify_key_is_given(
    image, keys, tmp_path, capsys
):
    build(image, tmp_path / "app.pkg")
    capsys.readouterr()
    code = main(["package", "inspect", str(tmp_path / "app.pkg"), "--verify-key", str(keys[1])])
    out = capsys.readouterr().out
    assert code == 2
    assert "Update Result 5" in out
    assert "requires a signed package" in out


def test_inspect_rejects_an_image_too_big_for_the_slot_with_result_2(image, tmp_path, capsys):
    build(image, tmp_path / "app.pkg")
    capsys.readouterr()
    code = main(["package", "inspect", str(tmp_path / "app.pkg"), "--max-image-size", "100"])
    assert code == 2
    assert "Update Result 2 NOT_ENOUGH_FLASH" in capsys.readouterr().out


def test_inspect_rejects_a_file_that_is_not_a_package(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["package", "inspect", str(tmp_path / "notes.txt")]) == 2
    out = capsys.readouterr().out
    assert "Update Result 6" in out
    assert "header       not shown" in out


def test_inspect_refuses_a_private_key_as_verify_key(image, keys, tmp_path, capsys):
    build(image, tmp_path / "app.pkg")
    capsys.readouterr()
    code = main(["package", "inspect", str(tmp_path / "app.pkg"), "--verify-key", str(keys[0])])
    assert code == 2
    assert "only the public key" in capsys.readouterr().err


def test_a_missing_file_is_reported_with_exit_code_1(tmp_path, capsys):
    assert main(["package", "inspect", str(tmp_path / "missing.pkg")]) == 1
    assert "missing.pkg" in capsys.readouterr().err
