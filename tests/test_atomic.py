"""common.atomic: the one atomic-write helper every writer uses."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from common.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from skeletons.datasets import Split


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_success_replaces_target_and_leaves_no_temp(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".results.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("new")
        assert target.read_text() == "old"   # the final name still holds the old file
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_removes_temp_and_keeps_target(tmp_path, error):
    target = tmp_path / "0_1.png"
    target.write_bytes(b"complete image")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half an im")
            raise error
    assert target.read_bytes() == b"complete image"
    assert [p.name for p in tmp_path.iterdir()] == ["0_1.png"]


def test_failure_with_bad_data_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_bytes_atomic(tmp_path / "cm.png", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_permissions_follow_the_umask_like_a_normal_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        normal = tmp_path / "normal.txt"
        normal.write_text("x")
        atomic = tmp_path / "atomic.txt"
        write_text_atomic(atomic, "x")
    finally:
        os.umask(old)
    assert mode(atomic) == mode(normal) == 0o666 & ~umask


def test_np_save_with_npy_suffix_writes_exactly_the_target(tmp_path, umask_022):
    target = tmp_path / "S001C001P001R001A001.skeleton.npy"
    with atomic_path(target, suffix=".npy") as tmp:
        assert tmp.name.endswith(".tmp.npy")
        np.save(tmp, {"nbodys": [1]}, allow_pickle=True)   # no ".npy" appended: the name already ends with it
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert np.load(target, allow_pickle=True).item() == {"nbodys": [1]}
    assert mode(target) == 0o644


def test_missing_folder_is_an_error_unless_asked_to_make_it(tmp_path):
    target = tmp_path / "results" / "ucla" / "table.md"
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(target, b"| a |")
    assert not (tmp_path / "results").exists()
    write_bytes_atomic(target, b"| a |", make_parents=True)
    assert target.read_bytes() == b"| a |" and len(list(target.parent.iterdir())) == 1


def test_text_newlines(tmp_path):
    write_text_atomic(tmp_path / "crlf.skeleton", "1\r\n2\r\n", newline="")
    assert (tmp_path / "crlf.skeleton").read_bytes() == b"1\r\n2\r\n"
    write_text_atomic(tmp_path / "lf.txt", "é\n")
    assert (tmp_path / "lf.txt").read_bytes() == "é\n".encode()


def test_readers_ignore_temp_names(tmp_path):
    """Sequence listings skip a half-written .skeleton.npy; extract's resume deletes a stale image temp."""
    from descriptors.extract import clear_leftovers
    from skeletons.datasets import split_from_folder

    done = tmp_path / "S001C001P001R001A001.skeleton.npy"
    done.touch()
    with atomic_path(tmp_path / "S001C001P002R001A001.skeleton.npy", suffix=".npy") as tmp:
        np.save(tmp, {})
        assert split_from_folder(tmp_path, Split.of("ntu60", "csub", "train")) == [done]

    folder = tmp_path / "ntu60_GD_train_csub"
    folder.mkdir()
    (folder / "0_1.png").write_bytes(b"png")
    killed = atomic_path(folder / "1_1.png")     # a writer killed mid-image: its temp file stays
    killed.__enter__().write_bytes(b"half an image")
    assert len(list(folder.iterdir())) == 2
    (folder / "manifest.csv").write_text("index,sample,label,frames,bodies\n")   # where older versions kept it
    clear_leftovers({"GD": folder})
    assert sorted(p.name for p in folder.iterdir()) == ["0_1.png"]
