"""The report's file list and signature: written with the report, checked by `report verify`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.cli.main import main
from pytest_thunder_container.report.certification import REPORT_HTML, REPORT_JSON, write_report
from pytest_thunder_container.report.integrity import check_files, check_signature
from pytest_thunder_container.report.signing import (
    KeyFileError,
    generate_keys,
    load_public_key,
    load_signer,
)

REPORT: dict[str, Any] = {
    "verdict": "certified",
    "certified": True,
    "harness": {"name": "pytest-thunder-container", "version": "0.1.0"},
    "catalogue": {"origin": "packaged", "sha256": "ab" * 32, "requirements": 0},
    "run": {"started_at": "s", "finished_at": "f", "exit_status": 0, "complete": True},
    "verdict_reasons": [],
    "findings": [],
    "counts": {"MUST": {"passed": 0}, "SHOULD": {"passed": 0}},
    "images": [{"image": "/img", "sha256": "cd" * 32, "targets": ["rpi3"]}],
    "targets": [],
    "requirements": [],
    "other_tests": [],
    "latency": None,
    "latency_note": None,
}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    (folder / "evidence" / "test_a").mkdir(parents=True)
    (folder / "evidence" / "test_a" / "findings.txt").write_text("TC-CFG-001: no finding\n")
    (folder / "console-rpi3.log").write_text("login: root\n")
    (folder / "deployed").mkdir()
    (folder / "deployed" / "OCDM-01-container.json").write_text("{}\n")
    return folder


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "key.pem", tmp_path / "pub.pem"
    generate_keys(private, public)
    return private, public


def written(results: Path, key: Path | None = None) -> dict[str, Any]:
    signer = load_signer(key, what="--thunder-sign-key") if key else None
    write_report(results, REPORT, signer)
    return json.loads((results / REPORT_JSON).read_text())


def verify(results: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["report", "verify", str(results), *extra])
    return code, capsys.readouterr().out


def test_the_report_lists_every_file_of_the_folder_with_size_and_sha256(results: Path) -> None:
    report = written(results)
    listed = {entry["path"]: entry for entry in report["integrity"]["files"]}
    assert sorted(listed) == [
        "console-rpi3.log",
        "deployed/OCDM-01-container.json",
        "evidence/test_a/findings.txt",
        REPORT_HTML,
    ]
    assert listed["console-rpi3.log"]["size"] == len("login: root\n")
    assert listed["console-rpi3.log"]["sha256"] == hashlib.sha256(b"login: root\n").hexdigest()
    html = (results / REPORT_HTML).read_bytes()
    assert listed[REPORT_HTML]["sha256"] == hashlib.sha256(html).hexdigest()
    assert report["integrity"]["signature"] is None


def test_an_untouched_folder_verifies(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written(results)
    code, out = verify(results, capsys)
    assert code == 0, out
    assert "4 files listed; 0 changed, 0 missing, 0 added" in out
    assert "not signed" in out


def test_an_edited_a_deleted_and_an_added_file_are_each_named(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written(results)
    (results / "deployed" / "OCDM-01-container.json").write_text('{"root": {}}\n')
    (results / "console-rpi3.log").unlink()
    (results / "evidence" / "test_a" / "extra.txt").write_text("planted\n")
    code, out = verify(results, capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "missing: console-rpi3.log (listed in the report, not in the folder)"
    assert lines[1].startswith("changed: deployed/OCDM-01-container.json (size 3 -> 13, sha256 ")
    assert lines[2] == "added: evidence/test_a/extra.txt (in the folder, not in the report)"
    assert "1 changed, 1 missing, 1 added" in lines[3]


def test_a_same_size_edit_is_found_by_its_sha256(results: Path) -> None:
    report = written(results)
    (results / "console-rpi3.log").write_text("login: ROOT\n")
    found = check_files(report, results, REPORT_JSON)
    assert [(d.kind, d.path) for d in found] == [("changed", "console-rpi3.log")]
    assert "size 12 -> 12" in found[0].detail


def test_a_signed_report_verifies_with_its_key_and_not_with_another(
    results: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    other_private, other_public = tmp_path / "other.pem", tmp_path / "other.pub"
    generate_keys(other_private, other_public)
    report = written(results, private)
    fingerprint = load_public_key(public, what="PUB").fingerprint
    assert report["integrity"]["signature"]["key_fingerprint"] == fingerprint
    assert f"signed (Ed25519) by the key {fingerprint}" in (results / REPORT_HTML).read_text()

    code, out = verify(results, capsys, f"--public-key={public}")
    assert code == 0, out
    assert f"signature: valid Ed25519 signature by {fingerprint}" in out

    code, out = verify(results, capsys, f"--public-key={other_public}")
    assert code == 1
    assert f"signature: {REPORT_JSON} (signed by {fingerprint}, not by the given key" in out


def test_an_edit_of_the_signed_report_itself_breaks_its_signature(
    results: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    report = written(results, private)
    report["verdict"] = "certified"
    report["images"][0]["sha256"] = "ee" * 32  # another image claimed
    (results / REPORT_JSON).write_text(json.dumps(report, indent=2))
    code, out = verify(results, capsys, f"--public-key={public}")
    assert code == 1
    assert "does not match: the report was changed after it was signed" in out


def test_a_public_key_given_for_an_unsigned_report_fails(
    results: Path, keys: tuple[Path, Path]
) -> None:
    report = written(results)
    found, note = check_signature(report, load_public_key(keys[1], what="PUB"), REPORT_JSON)
    assert [d.detail for d in found] == ["the report is not signed"]
    assert note == "not signed"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM private"),
        (None, "No such file or directory"),
    ],
)
def test_a_bad_private_key_file_is_named_with_the_fix(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError) as error:
        load_signer(path, what="--thunder-sign-key")
    assert f"--thunder-sign-key={path}: " in str(error.value)
    assert expected in str(error.value)


def test_a_public_key_where_a_private_one_is_expected_is_refused(
    keys: tuple[Path, Path],
) -> None:
    with pytest.raises(KeyFileError, match=r"not a PEM private key.*keygen"):
        load_signer(keys[1], what="--thunder-sign-key")


def test_verify_says_plainly_what_is_unusable(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "verify", str(tmp_path)]) == 2
    assert f"{tmp_path / REPORT_JSON}: no report" in capsys.readouterr().err
    assert main(["report", "verify", str(tmp_path), f"--public-key={keys[0]}"]) == 2
    assert f"--public-key={keys[0]}: not a PEM public key" in capsys.readouterr().err


def test_keygen_never_overwrites_and_keeps_the_private_key_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    assert main(["report", "keygen", str(private), str(public)]) == 0
    assert private.stat().st_mode & 0o777 == 0o600
    assert "fingerprint sha256:" in capsys.readouterr().out
    assert main(["report", "keygen", str(private), str(tmp_path / "new.pub")]) == 2
    assert f"{private} exists: not overwritten" in capsys.readouterr().err
