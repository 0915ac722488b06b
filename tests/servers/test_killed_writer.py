"""A literal `kill -9` of the CLI while it writes its shared cache entry (issue #16):
- mid-write: gdb stops the process at the entry of its first large write(2) (the entry's
  temporary file; the token is printed only after it), lets half the bytes through, and the
  process is sent SIGKILL (gdb's `kill`) right after that write returns;
- at the rename: strace injects SIGKILL on entry to rename(2), after the whole temporary file
  was written.
Either way no entry exists, the leftover temporary file is never read as one, and the next
process makes exactly one identity request; the process after it reads the new entry. A process
killed half-way through writing the refresh of a due entry leaves the old entry whole."""

from __future__ import annotations

import json
import platform
import subprocess
import time

import pytest

from conftest import cache_folder, cli, cli_token, entries, entry, faults, msi_requests, reset, shared_env

# The third argument of a system call, the byte count of write(2), at gdb's syscall-entry stop
# (written for and run on x86_64 only).
COUNT = {"x86_64": "$rdx"}.get(platform.machine())

GDB_SCRIPT = f"""
set pagination off
set confirm off
catch syscall write
condition 1 {COUNT} > 200
run
set {COUNT} = {COUNT} / 2
delete
set scheduler-locking on
stepi
kill
"""


def the_next_process_makes_one_request(folder, env) -> None:
    reset()
    first = cli_token(env)
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert token.count(".") == 2, "a JWT"
    assert msi_requests() == 1, "the leftover temporary file is not an entry: one request"
    assert entry(folder)["token"] == token
    again = cli_token(env)
    assert again.returncode == 0 and again.stdout.strip() == token
    assert msi_requests() == 1, "the new entry is read"


def leftovers(folder) -> list:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".tmp"))


def kill_mid_write(env: dict, tmp_path) -> None:
    """Run `pgentra token` under gdb: half of its first large write(2), then SIGKILL."""
    script = tmp_path / "kill-mid-write.gdb"
    script.write_text(GDB_SCRIPT)
    r = subprocess.run(["gdb", "-nx", "-batch", "-x", str(script), "--args", cli(), "token"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert "[Inferior 1 (process" in r.stdout and "killed]" in r.stdout, r.stdout + r.stderr
    assert ".ey" not in r.stdout, "killed before it printed the token"


def half_written(folder) -> bytes:
    tmp = leftovers(folder)
    assert len(tmp) == 1, f"the half-written temporary file: {list(folder.iterdir())}"
    half = tmp[0].read_bytes()
    assert half.startswith(b"{") and len(half) > 100
    with pytest.raises(ValueError):
        json.loads(half)
    return half


needs_gdb_registers = pytest.mark.skipif(COUNT is None, reason=f"no register map for {platform.machine()}")


@needs_gdb_registers
def test_a_writer_killed_mid_write_leaves_no_entry(tmp_path):
    folder = cache_folder("killed-mid-write")
    env = shared_env(folder)
    reset()
    kill_mid_write(env, tmp_path)
    assert msi_requests() == 1, "the killed writer had fetched its token"
    assert entries(folder) == [], "a writer killed mid-write leaves no entry"
    half = half_written(folder)
    the_next_process_makes_one_request(folder, env)
    whole = entries(folder)[0].read_bytes()
    assert abs(len(whole) // 2 - len(half)) < 50, f"half of the entry was written: {len(half)} of about {len(whole)}"
    assert leftovers(folder), "the leftover was left alone (and ignored)"


@needs_gdb_registers
def test_a_refresh_killed_mid_write_leaves_the_old_entry_whole(tmp_path):
    folder = cache_folder("killed-refresh")
    env = shared_env(folder)
    reset()
    faults([{"refresh_in": 1}])
    assert cli_token(env).returncode == 0
    old = entries(folder)[0].read_bytes()
    time.sleep(1.3)  # the entry is past its refresh point: the next process refreshes it in line
    kill_mid_write(env, tmp_path)
    assert msi_requests() == 2, "the killed process was refreshing the entry"
    assert entries(folder)[0].read_bytes() == old, "the old entry is whole and unchanged"
    half_written(folder)
    the_next_process_makes_one_request(folder, env)
    assert entry(folder)["fetched_at"] > json.loads(old)["fetched_at"], "refreshed by the next process"


def test_a_writer_killed_at_its_rename_leaves_no_entry():
    folder = cache_folder("killed-at-rename")
    env = shared_env(folder)
    reset()
    calls = "rename,renameat,renameat2"
    r = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}",
                        "-e", f"inject={calls}:signal=KILL", cli(), "token"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode in (-9, 128 + 9), f"killed by SIGKILL: {r.returncode} {r.stderr}"
    assert r.stdout == "", "killed before it printed the token"
    assert msi_requests() == 1
    assert entries(folder) == [], "the rename never happened: no entry"
    tmp = leftovers(folder)
    assert len(tmp) == 1, list(folder.iterdir())
    assert json.loads(tmp[0].read_bytes())["token"], "the temporary file was whole"
    the_next_process_makes_one_request(folder, env)
