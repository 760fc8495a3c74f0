"""apt access: the private state options, list reuse, resolution and the download cache.

apt-get and apt-cache are replaced by small shell scripts on PATH that log their arguments and
answer like the real tools, so no test touches the network or the host's apt state.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.apt import (
    LISTS_MAX_AGE,
    AptSource,
    Package,
    dependency_named,
    parse_records,
    require_tools,
)

DEB_CONTENT = b"not really a deb\n"
SHOW = """Package: linux-image-arm64
Version: 6.1.99-1
Depends: linux-image-6.1.0-99-arm64 (= 6.1.99-1)
Size: 1400
SHA256: aaaa

Package: busybox-static
Version: 1:1.35.0-4
Size: {size}
SHA256: {sha}
Description: a description
 that goes on for two lines
"""


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """apt-get/apt-cache stand-ins; every call is appended to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    show = SHOW.format(size=len(DEB_CONTENT), sha=hashlib.sha256(DEB_CONTENT).hexdigest())
    (tmp_path / "show.txt").write_text(show)
    scripts = {
        "apt-get": f"""#!/bin/sh
echo "apt-get $*" >> {log}
for last; do :; done
case "$*" in
*" download "*) printf 'not really a deb\\n' > "busybox-static_1%3a1.35.0-4_arm64.deb" ;;
esac
""",
        "apt-cache": f"""#!/bin/sh
echo "apt-cache $*" >> {log}
cat {tmp_path / "show.txt"}
""",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_every_apt_call_uses_private_state_and_arm64(fake_apt: Path, tmp_path: Path) -> None:
    source = AptSource(tmp_path / "apt", lambda _: None)
    source.resolve(["busybox-static"])
    calls = _calls(fake_apt)
    assert [c.split()[0] for c in calls] == ["apt-get", "apt-cache"]
    for call in calls:
        assert "APT::Architecture=arm64" in call and "APT::Architectures=arm64" in call
        assert f"Dir::State::Lists={tmp_path / 'apt' / 'lists'}" in call
        assert f"Dir::State::Status={tmp_path / 'apt' / 'status'}" in call
        assert f"Dir::Cache::Archives={tmp_path / 'apt' / 'archives'}" in call
        assert "/var/lib" not in call
    assert (tmp_path / "apt" / "status").read_text() == ""


def test_fresh_lists_and_known_versions_need_no_apt_call(fake_apt: Path, tmp_path: Path) -> None:
    source = AptSource(tmp_path / "apt", lambda _: None)
    first = source.resolve(["busybox-static", "linux-image-arm64"])
    count = len(_calls(fake_apt))
    again = AptSource(tmp_path / "apt", lambda _: None).resolve(["busybox-static"])
    assert len(_calls(fake_apt)) == count
    assert again["busybox-static"] == first["busybox-static"]
    assert first["busybox-static"].version == "1:1.35.0-4"


def test_refresh_or_day_old_lists_update_again(fake_apt: Path, tmp_path: Path) -> None:
    source = AptSource(tmp_path / "apt", lambda _: None)
    source.resolve(["busybox-static"])
    source.resolve(["busybox-static"], refresh=True)
    assert sum("update" in c for c in _calls(fake_apt)) == 2
    old = time.time() - LISTS_MAX_AGE - 60
    os.utime(source.stamp, (old, old))
    assert source.update() is True
    assert sum("update" in c for c in _calls(fake_apt)) == 3


def test_resolve_reads_depends_and_a_missing_package_is_an_error(
    fake_apt: Path, tmp_path: Path
) -> None:
    source = AptSource(tmp_path / "apt", lambda _: None)
    meta = source.resolve(["linux-image-arm64"])["linux-image-arm64"]
    assert dependency_named(meta.depends, "linux-image-") == "linux-image-6.1.0-99-arm64"
    with pytest.raises(ImageError, match="no arm64 candidate for no-such-package"):
        source.resolve(["no-such-package"])


def test_fetch_downloads_once_then_reuses_the_checked_deb(fake_apt: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    source = AptSource(tmp_path / "apt", messages.append)
    package = source.resolve(["busybox-static"])["busybox-static"]
    debs = source.fetch([package])
    assert debs["busybox-static"].read_bytes() == DEB_CONTENT
    assert any("busybox-static=1:1.35.0-4" in c and " download " in c for c in _calls(fake_apt))
    assert any(m.startswith("[apt] downloading 1 packages") for m in messages)
    downloads = sum(" download " in c for c in _calls(fake_apt))
    source.fetch([package])
    assert sum(" download " in c for c in _calls(fake_apt)) == downloads


def test_fetch_rejects_a_download_with_the_wrong_sha256(fake_apt: Path, tmp_path: Path) -> None:
    source = AptSource(tmp_path / "apt", lambda _: None)
    wrong = Package("busybox-static", "1:1.35.0-4", "0" * 64, len(DEB_CONTENT))
    with pytest.raises(ImageError, match="SHA256"):
        source.fetch([wrong])


def test_a_failing_apt_call_reports_its_output(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: temporary failure' >&2\nexit 100\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ImageError, match="temporary failure"):
        AptSource(tmp_path / "apt", lambda _: None).update()


def test_missing_tools_name_the_install_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageError) as error:
        require_tools("fdtput", "depmod")
    message = str(error.value)
    assert "fdtput, depmod" in message
    assert "apt-get install --no-install-recommends" in message
    assert "device-tree-compiler" in message and "kmod" in message


def test_parse_records_joins_continuation_lines() -> None:
    records = parse_records("A: 1\nB: x\n y\n\nA: 2\n")
    assert records == [{"A": "1", "B": "x\ny"}, {"A": "2"}]


def test_dependency_named_without_a_match_is_an_error() -> None:
    with pytest.raises(ImageError, match="linux-image-"):
        dependency_named("kmod, linux-base (>= 4.3~)", "linux-image-")
