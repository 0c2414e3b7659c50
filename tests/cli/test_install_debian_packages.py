"""`scripts/install_debian_packages.sh`, the Debian install step of `make test`, run with fake `apt-get`, `sudo` and `id`.

The fakes log each call (with the DEBIAN_FRONTEND they saw) instead of installing, and the fake
apt-get "installs" chromium and pdflatex by creating the files the script checks. So the tests read
exactly which commands the script would run as root, as a user with sudo, as a user without sudo,
and when the packages are already there. The old Makefile recipe failed the root case (`$SUDO
DEBIAN_FRONTEND=... apt-get` with an empty SUDO runs a command named "DEBIAN_FRONTEND=...").
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install_debian_packages.sh"
PACKAGES = "chromium texlive-latex-base texlive-latex-recommended"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _run(tmp_path: Path, uid: int, with_sudo: bool, installed: bool,
         only_chromium: bool = False) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    chromium = tmp_path / "usr-bin" / "chromium"
    pdflatex = tmp_path / "usr-bin" / "pdflatex"
    chromium.parent.mkdir()
    if installed or only_chromium:
        for exe in (chromium,) if only_chromium else (chromium, pdflatex):
            exe.write_text("#!/bin/sh\n")
            exe.chmod(0o755)
    _fake(bin_dir, "id", f'[ "$1" = "-u" ] && echo {uid}\n')
    _fake(bin_dir, "apt-get", f'echo "apt-get DEBIAN_FRONTEND=${{DEBIAN_FRONTEND:-unset}} $*" >> {log}\n'
          f'case "$*" in *install*) for f in {chromium} {pdflatex}; do printf "#!/bin/sh\\n" > $f; chmod +x $f; done;; esac\n')
    if with_sudo:
        _fake(bin_dir, "sudo", f'echo "sudo $*" >> {log}\nexec "$@"\n')
    # Only the fakes and the basic tools of /bin: no real sudo or apt-get can be reached.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("sh", "env", "echo", "printf", "chmod", "cat"):
        for where in ("/usr/bin", "/bin"):
            if Path(where, tool).exists() and not (tools / tool).exists():
                (tools / tool).symlink_to(Path(where, tool))
    env = {"PATH": f"{bin_dir}:{tools}", "CHROMIUM": str(chromium), "PDFLATEX": str(pdflatex)}
    proc = subprocess.run(["/bin/sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_root_without_chromium_runs_apt_get_directly(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=0, with_sudo=False, installed=False)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["apt-get DEBIAN_FRONTEND=noninteractive update -qq",
                     "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq " + PACKAGES]


def test_root_does_not_use_sudo_even_when_present(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=0, with_sudo=True, installed=False)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if c.startswith("sudo")]


def test_user_with_sudo_goes_through_sudo(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=1000, with_sudo=True, installed=False)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        "apt-get DEBIAN_FRONTEND=noninteractive update -qq",
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + PACKAGES,
        "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq " + PACKAGES,
    ]


@pytest.mark.parametrize("uid", [0, 1000])
def test_already_installed_runs_nothing(tmp_path: Path, uid: int) -> None:
    proc, calls = _run(tmp_path, uid=uid, with_sudo=True, installed=True)
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert "found" in proc.stdout


def test_user_without_sudo_gets_one_line_and_exit_2(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=1000, with_sudo=False, installed=False)
    assert proc.returncode == 2
    assert calls == []
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_make_test_and_check_call_the_script() -> None:
    for target in ("test", "check"):
        dry = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "MAKEFLAGS": ""})
        assert "sh scripts/install_debian_packages.sh" in dry.stdout, dry.stdout


def test_only_the_missing_package_is_installed(tmp_path: Path) -> None:
    # chromium present, pdflatex missing: apt-get is asked for TeX only.
    proc, calls = _run(tmp_path, uid=0, with_sudo=False, installed=False, only_chromium=True)
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq texlive-latex-base texlive-latex-recommended"
