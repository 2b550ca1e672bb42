"""write_atomic: two writers of one file never collide, and the rename is made durable (folder fsync)."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from uolrps.core.errors import UserError
from uolrps.core.paths import write_atomic


def test_two_concurrent_writers_each_write_whole_files(tmp_path):
    target = tmp_path / "result.json"
    started = threading.Barrier(2)
    errors = []

    def writer(tag: str):
        def write(tmp):
            started.wait()  # both are inside write() at once, each in its own temporary file
            with open(tmp, "w") as f:
                for i in range(200):
                    f.write(f"{tag}{i:04d}\n")
                    if i % 50 == 0:
                        time.sleep(0.005)
        try:
            write_atomic(target, write, "--json")
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = target.read_text().splitlines()
    assert len(lines) == 200 and len({line[0] for line in lines}) == 1  # one writer's file, whole
    assert os.listdir(tmp_path) == ["result.json"]  # no temporary file left behind


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), (tmp_path / "m.txt").exists()))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_atomic(tmp_path / "m.txt", lambda tmp: tmp.write_text("x"))
    assert synced == [(False, False), (True, True)]  # the file before the rename, the folder after it


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "m.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match="--json .*No space left"):
        write_atomic(target, broken, "--json")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["m.txt"]
