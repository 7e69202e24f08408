"""Packs that check themselves: a truncated, emptied or (with --verify-cache) altered --cache pack
is named in one line, moved aside and made again, never used; an unsealed one is made again."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from descriptors.dataset import CACHE_DIR, DescriptorImages
from descriptors.seals import DAMAGED_SUFFIX, seal_path, seal_problem
from descriptors.skeleton_source import SkeletonSequences, pack_index_path

def images(data) -> torch.Tensor:
    return torch.stack([data[i][0] for i in range(len(data))])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF   # one pixel of the last image
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, verify", [(truncate, False), (empty, False), (flip, True)])
def test_a_damaged_image_pack_is_moved_aside_and_made_again(own_root, capsys, damage, verify):
    plain = images(DescriptorImages(own_root, "ucla", None, "train", "GD", uint8=True))
    made = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    (pack,) = made.cache_paths
    del made
    damage(pack)
    capsys.readouterr()
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True, verify_cache=verify)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"notice: {pack}: damaged --cache pack (")
    assert f"moved aside to {pack.name}{DAMAGED_SUFFIX}, making it again" in err
    assert pack.with_name(pack.name + DAMAGED_SUFFIX).is_file() and seal_problem([pack]) is None
    assert torch.equal(images(again), plain)   # the pack made again holds the folder's images


def test_flipped_bytes_need_verify_cache_and_are_never_missed_by_it(own_root, capsys):
    made = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    (pack,) = made.cache_paths
    del made
    flip(pack)
    assert seal_problem([pack]) is None                      # the size holds: the cheap check passes
    assert "differ from its seal" in seal_problem([pack], verify=True)


def test_train_verify_cache_catches_an_altered_pack_and_trains_on_the_folder(own_root, tmp_path, capsys):
    argv = ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(own_root), "--width", "0.0625", "--workers", "0",
            "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--epochs", "1", "--cache"]
    assert train.main(train.get_args_parser().parse_args([*argv, "-ckpt", str(tmp_path / "a")])) == 0
    loss = (tmp_path / "a" / "ucla_GD_log.csv").read_text().splitlines()[1].split(",")[2]
    for pack in (own_root / CACHE_DIR).glob("*.npy"):
        flip(pack)
    capsys.readouterr()
    assert train.main(train.get_args_parser().parse_args([*argv, "-ckpt", str(tmp_path / "b"), "--verify-cache"])) == 0
    assert capsys.readouterr().err.count("damaged --cache pack") == 2   # the train and test packs
    assert (tmp_path / "b" / "ucla_GD_log.csv").read_text().splitlines()[1].split(",")[2] == loss


def test_an_unsealed_pack_is_made_again_in_its_place(own_root, capsys):
    made = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    (pack,) = made.cache_paths
    del made
    seal_path(pack).unlink()   # as an older version left it
    flip(pack)
    capsys.readouterr()
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    assert capsys.readouterr().err == "" and seal_problem([pack], verify=True) is None
    assert torch.equal(images(again), images(DescriptorImages(own_root, "ucla", None, "train", "GD", uint8=True)))


@pytest.mark.parametrize("which, damage", [("pack", truncate), ("index", empty), ("index", truncate)])
def test_a_damaged_skeleton_pack_is_moved_aside_and_made_again(demo_raw, tmp_path, capsys, which, damage):
    seq = tmp_path / "ucla"
    shutil.copytree(Path(demo_raw) / "ucla", seq)
    plain = SkeletonSequences(seq, "ucla", None, "test")
    made = SkeletonSequences(seq, "ucla", None, "test", pack=True)
    pack = made.pack_path
    del made
    damage(pack if which == "pack" else pack_index_path(pack))
    capsys.readouterr()
    again = SkeletonSequences(seq, "ucla", None, "test", pack=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"notice: {pack}: damaged skeleton pack (" in err
    assert pack.with_name(pack.name + DAMAGED_SUFFIX).is_file()
    for i in range(len(plain)):
        assert np.array_equal(again[i].sequence, plain[i].sequence)


def test_verify_reads_a_seal_with_its_own_block_size(own_root):
    """A seal written with other blocks (another version's BLOCK) is still checked, not skipped."""
    import json

    from descriptors.seals import block_crcs

    made = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    (pack,) = made.cache_paths
    del made
    seal = json.loads(seal_path(pack).read_text())
    block = 4096
    seal["block"], seal["files"][pack.name]["crc32"] = block, block_crcs(pack, block)
    seal_path(pack).write_text(json.dumps(seal))
    assert seal_problem([pack], verify=True) is None
    flip(pack)
    assert "differ from its seal" in seal_problem([pack], verify=True)
