"""Packs that check themselves: a truncated, emptied or altered --cache pack (flipped bytes, same
size) is named in one line, moved aside and made again, never used; every byte is checked by
default (--verify-cache is kept, for older command lines); a seal of another pack is refused in
the provenance contract's wording; an unsealed one is made again."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from descriptors.dataset import CACHE_DIR, DescriptorImages
from descriptors.seals import BLOCK, DAMAGED_SUFFIX, block_crcs, seal_path, seal_problem
from descriptors.skeleton_source import SkeletonSequences, pack_index_path


def images(data) -> torch.Tensor:
    return torch.stack([data[i][0] for i in range(len(data))])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def flip(path: Path) -> None:
    """Rewrite ``path`` in place, the same size, one byte flipped (a pixel of the last image; a
    start or length of the skeleton index)."""
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def image_pack(root: Path, desc: str = "GD") -> Path:
    made = DescriptorImages(root, "ucla", None, "train", desc, cache=True, uint8=True)
    (pack,) = made.cache_paths
    return pack


def assert_named_once_and_moved_aside(err: str, pack: Path, words: str) -> None:
    assert err.count("\n") == 1 and err.startswith(f"notice: {pack}: {words}"), err
    assert err.rstrip().endswith(f"moved aside to {pack.name}{DAMAGED_SUFFIX}, making it again"), err
    assert pack.with_name(pack.name + DAMAGED_SUFFIX).is_file()


@pytest.mark.parametrize("damage", [truncate, empty, flip])
def test_a_damaged_image_pack_is_moved_aside_and_made_again(own_root, capsys, damage):
    plain = images(DescriptorImages(own_root, "ucla", None, "train", "GD", uint8=True))
    pack = image_pack(own_root)
    size = pack.stat().st_size
    damage(pack)
    assert damage is not flip or pack.stat().st_size == size   # flipped: the size holds
    capsys.readouterr()
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    assert_named_once_and_moved_aside(capsys.readouterr().err, pack, "damaged --cache pack (")
    assert seal_problem([pack], again.pack_record(again.folders[0])) is None
    assert torch.equal(images(again), plain)   # the pack made again holds the folder's images


def test_flipped_bytes_of_the_same_size_are_found_by_default(own_root):
    pack = image_pack(own_root)
    flip(pack)
    last = (pack.stat().st_size - 100) // BLOCK
    bytes_ = f"{last * BLOCK:,}-{min((last + 1) * BLOCK, pack.stat().st_size) - 1:,}"
    assert seal_problem([pack]) == f"{pack.name}: bytes {bytes_} differ from its seal"


def test_train_finds_an_altered_pack_without_verify_cache_and_trains_on_the_folder(own_root, tmp_path, capsys):
    argv = ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(own_root), "--width", "0.0625",
            "--workers", "0", "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--epochs", "1", "--cache"]
    assert train.main(train.get_args_parser().parse_args([*argv, "-ckpt", str(tmp_path / "a")])) == 0
    loss = (tmp_path / "a" / "ucla_GD_log.csv").read_text().splitlines()[1].split(",")[2]
    for pack in (own_root / CACHE_DIR).glob("*.npy"):
        flip(pack)
    capsys.readouterr()
    assert train.main(train.get_args_parser().parse_args([*argv, "-ckpt", str(tmp_path / "b")])) == 0
    assert capsys.readouterr().err.count("damaged --cache pack") == 2   # the train and test packs
    assert (tmp_path / "b" / "ucla_GD_log.csv").read_text().splitlines()[1].split(",")[2] == loss
    assert train.get_args_parser().parse_args([*argv, "--verify-cache"]).verify_cache   # still accepted


def test_a_seal_of_another_pack_is_refused_in_the_contracts_words(own_root, capsys):
    """Another folder's pack and seal put in this pack's place (the seal's entry renamed to match,
    as a seal keyed by size alone would take it): what the seal says made it is compared first."""
    plain = images(DescriptorImages(own_root, "ucla", None, "train", "GD", uint8=True))
    pack, other = image_pack(own_root, "GD"), image_pack(own_root, "JDD")
    seal = json.loads(seal_path(other).read_text())
    seal["files"] = {pack.name: seal["files"][other.name]}
    shutil.copyfile(other, pack)
    seal_path(pack).write_text(json.dumps(seal))
    capsys.readouterr()
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    err = capsys.readouterr().err
    assert_named_once_and_moved_aside(err, pack, "made from other inputs than this step uses (folder: ")
    assert "(folder: ucla_JDD_train -> ucla_GD_train; files: " in err and ", recorded -> now); moved aside" in err
    assert torch.equal(images(again), plain)


def test_a_seal_that_records_nothing_of_its_inputs_is_taken_over_when_every_byte_holds(own_root, capsys):
    """A seal an earlier version wrote (no made_from): the pack is used as it is, not made again."""
    pack = image_pack(own_root)
    seal = json.loads(seal_path(pack).read_text())
    del seal["made_from"]
    seal_path(pack).write_text(json.dumps(seal))
    inode = pack.stat().st_ino
    capsys.readouterr()
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    assert capsys.readouterr().err == "" and again.cache_paths == [pack] and pack.stat().st_ino == inode


def test_an_unsealed_pack_is_made_again_in_its_place(own_root, capsys):
    pack = image_pack(own_root)
    seal_path(pack).unlink()   # as an older version left it
    flip(pack)
    capsys.readouterr()
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    assert capsys.readouterr().err == "" and seal_problem([pack]) is None
    assert torch.equal(images(again), images(DescriptorImages(own_root, "ucla", None, "train", "GD", uint8=True)))


@pytest.mark.parametrize("which, damage", [("pack", truncate), ("pack", flip), ("index", empty), ("index", truncate),
                                           ("index", flip)])
def test_a_damaged_skeleton_pack_is_moved_aside_and_made_again(demo_raw, tmp_path, capsys, which, damage):
    seq = tmp_path / "ucla"
    shutil.copytree(Path(demo_raw) / "ucla", seq)
    plain = SkeletonSequences(seq, "ucla", None, "test")
    pack = SkeletonSequences(seq, "ucla", None, "test", pack=True).pack_path
    damaged = pack if which == "pack" else pack_index_path(pack)
    size = damaged.stat().st_size
    damage(damaged)
    assert damage is not flip or damaged.stat().st_size == size
    capsys.readouterr()
    again = SkeletonSequences(seq, "ucla", None, "test", pack=True)
    assert_named_once_and_moved_aside(capsys.readouterr().err, pack, "damaged skeleton pack (")
    assert seal_problem([pack, pack_index_path(pack)], again.pack_record()) is None
    for i in range(len(plain)):
        assert np.array_equal(again[i].sequence, plain[i].sequence)


def test_verify_reads_a_seal_with_its_own_block_size(own_root):
    """A seal written with other blocks (another version's BLOCK) is still checked, not skipped."""
    pack = image_pack(own_root)
    seal = json.loads(seal_path(pack).read_text())
    block = 4096
    seal["block"], seal["files"][pack.name]["crc32"] = block, block_crcs(pack, block)
    seal_path(pack).write_text(json.dumps(seal))
    assert seal_problem([pack]) is None
    flip(pack)
    last = (pack.stat().st_size - 100) // block
    bytes_ = f"{last * block:,}-{min((last + 1) * block, pack.stat().st_size) - 1:,}"
    assert seal_problem([pack]) == f"{pack.name}: bytes {bytes_} differ from its seal"


@pytest.mark.parametrize("edit", [{"block": 1 << 40}, {"block": 0}, {"block": "4096"}, {"files": []},
                                  {"made_from": 3}])
def test_a_crafted_seal_is_unreadable_before_anything_of_its_size_is_made(own_root, capsys, edit):
    pack = image_pack(own_root)
    seal = json.loads(seal_path(pack).read_text())
    seal_path(pack).write_text(json.dumps({**seal, **edit}))
    assert seal_problem([pack]) == "its seal is unreadable"
    capsys.readouterr()
    DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    assert_named_once_and_moved_aside(capsys.readouterr().err, pack, "damaged --cache pack (its seal is unreadable)")
