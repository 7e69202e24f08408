"""Training and testing from skeletons: the same samples, images, predictions and provenance as
the descriptor folders of the same split, mode and size."""
from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from descriptors import provenance
from descriptors.dataset import DescriptorImages, as_three_channels, bgr_chw
from descriptors.extract import extract_split
from skeletons.reading import load_sequence, load_uncentred
from descriptors.seals import seal_path
from descriptors.skeleton_source import (ImageMaker, SequenceBatch, SkeletonSequences, bgr_batch, collate_sequences,
                                         pack_index_path, read_pack, skeleton_loader)
from descriptors.torch_engine import descriptor_images_torch
from models.evaluation import model_outputs
from models.networks import build_model
from models.loop import RunOptions, train_one_epoch
from models.recipe import make_criterion
from skeletons.augment import Augment
from skeletons.compact import DIGITS7, FLOAT32, FLOAT64, encode_sample
from skeletons.datasets import Split, get_dataset
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER, descriptor_dir

SPLITS = [("ntu60", "csub"), ("ucla", None)]
IMG_SIZE = 32          # the demo descriptors' size (conftest.demo_descriptors)
WIDTH = 0.0625


@pytest.fixture(scope="module")
def sequence_dirs(demo_raw, tmp_path_factory) -> dict[str, Path]:
    """Where each demo dataset's sequence files are: txt2npy's .skeleton.npy for NTU (made here as
    conftest.demo_descriptors makes them), the raw .json for NW-UCLA."""
    from skeletons.convert import convert_folder

    npy = tmp_path_factory.mktemp("skeleton_source") / "npy60skel"
    convert_folder(Path(demo_raw) / "ntu" / "txt60skel", npy, "ntu60", workers=1, progress=False)
    return {"ntu60": npy, "ucla": Path(demo_raw) / "ucla"}


def image_batches(root: Path, dataset: str, protocol: str | None, part: str, descs, batch_size: int = 16):
    data = DescriptorImages(root, dataset, protocol, part, descs, uint8=True)
    return data, list(torch.utils.data.DataLoader(data, batch_size=batch_size))


def skeleton_batches(seq_dir: Path, dataset: str, protocol: str | None, part: str, descs, batch_size: int = 16,
                     mode: str = "paper", img_size: int = IMG_SIZE):
    data = SkeletonSequences(seq_dir, dataset, protocol, part, mode)
    maker = ImageMaker(descs, data.layout, mode, img_size)
    return data, list(skeleton_loader(data, maker, batch_size=batch_size))


def assert_same_batches(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for (images, labels), (expected, expected_labels) in zip(ours, theirs):
        assert torch.equal(labels, expected_labels)
        assert type(images) is type(expected)
        for a, b in zip(*((images, expected) if isinstance(images, list) else ([images], [expected]))):
            assert a.dtype == b.dtype == torch.uint8 and a.shape == b.shape
            assert torch.equal(a, b)


@pytest.mark.parametrize("dataset,protocol", SPLITS)
@pytest.mark.parametrize("part", ["train", "test"])
def test_samples_labels_and_fingerprint_are_the_descriptor_folders(dataset, protocol, part, sequence_dirs,
                                                                   demo_descriptors):
    data = SkeletonSequences(sequence_dirs[dataset], dataset, protocol, part)
    folder = descriptor_dir(demo_descriptors, Split.of(dataset, protocol, part), "GD")
    manifest = provenance.read_manifest(folder)
    assert data.rows() == [{k: row[k] for k in ("index", "sample", "label")} for row in manifest]
    assert [item.index for item in data] == list(range(len(manifest)))
    assert [item.label for item in data] == [row["label"] - 1 for row in manifest]
    assert [len(item.sequence) for item in data] == [row["frames"] for row in manifest]
    folder_record = provenance.read_record(folder)
    record = data.record(IMG_SIZE, "GD")
    for key in ("fingerprint", "samples", "mode", "img_size", "layout", "dataset", "protocol", "part", "descriptor"):
        assert record[key] == folder_record[key], key
    assert record["source"] == "skeletons" and record["complete"]


@pytest.mark.parametrize("dataset,protocol", SPLITS)
def test_batches_are_bit_equal_to_the_image_loaders(dataset, protocol, sequence_dirs, demo_descriptors):
    for descs in ("GD", "JDD", "FDD", FUSION, ["LAD", "GD"]):
        _, theirs = image_batches(demo_descriptors, dataset, protocol, "test", descs)
        _, ours = skeleton_batches(sequence_dirs[dataset], dataset, protocol, "test", descs)
        assert_same_batches(ours, theirs)


@pytest.mark.parametrize("dataset,protocol,img_size", [("ntu60", "csub", 112), ("ucla", None, 20)])
def test_clean_mode_batches_at_other_sizes_are_bit_equal_too(dataset, protocol, img_size, sequence_dirs, tmp_path):
    summary = extract_split(dataset, protocol, "test", sequence_dirs[dataset], tmp_path, mode="clean",
                            img_size=img_size, workers=1, progress=False)
    assert summary.ok
    _, theirs = image_batches(tmp_path, dataset, protocol, "test", FUSION)
    source, ours = skeleton_batches(sequence_dirs[dataset], dataset, protocol, "test", FUSION, mode="clean",
                                    img_size=img_size)
    assert_same_batches(ours, theirs)
    assert source.record(img_size)["fingerprint"] == provenance.read_record(
        descriptor_dir(tmp_path, Split.of(dataset, protocol, "test"), "GD"))["fingerprint"]


@pytest.mark.parametrize("dataset,protocol", SPLITS)
def test_a_model_predicts_the_same_from_skeletons_as_from_the_pngs(dataset, protocol, sequence_dirs,
                                                                    demo_descriptors):
    """test.py's inference (model_outputs) over the test split: five ResNet_c and Fuse5, eval mode."""
    torch.manual_seed(0)
    classes = get_dataset(dataset).num_classes
    models = {name: build_model(name, classes, width=WIDTH).eval() for name in (*DESCRIPTORS, FUSION)}
    descs = list(FUSION_ORDER)
    pngs, png_loader = image_batches(demo_descriptors, dataset, protocol, "test", descs, batch_size=7)
    source, skeleton_loader_ = skeleton_batches(sequence_dirs[dataset], dataset, protocol, "test", descs, batch_size=7)
    expected = model_outputs(models, png_loader, descs, torch.device("cpu"))
    outputs = model_outputs(models, skeleton_loader_, descs, torch.device("cpu"))
    assert torch.equal(source.labels0, pngs.labels0)
    for name in DESCRIPTORS:
        np.testing.assert_array_equal(outputs[name], expected[name])
        np.testing.assert_array_equal(outputs[name].argmax(1), expected[name].argmax(1))
    for head in ("main", "g12", "g345"):
        np.testing.assert_array_equal(outputs[FUSION][head], expected[FUSION][head])
    assert len(outputs[FUSION]["main"]) == len(pngs)


def test_a_training_epoch_from_skeletons_equals_one_from_the_pngs(sequence_dirs, demo_descriptors):
    """train_one_epoch as fit() runs it, fed by either source: the same weights after it."""
    weights = []
    for make_loader in ("png", "skeletons"):
        torch.manual_seed(0)
        model = build_model(FUSION, 60, width=WIDTH)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        if make_loader == "png":
            _, loader = image_batches(demo_descriptors, "ntu60", "csub", "train", FUSION, batch_size=8)
        else:
            _, loader = skeleton_batches(sequence_dirs["ntu60"], "ntu60", "csub", "train", FUSION, batch_size=8)
        stats = train_one_epoch(model, make_criterion(), optimizer, loader, torch.device("cpu"), 1,
                                RunOptions(progress=False))
        weights.append((model.state_dict(), stats["loss"]))
    (first, loss), (second, loss2) = weights
    assert loss == loss2
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_bgr_batch_is_the_per_image_helpers_on_a_batch(sequence_dirs):
    data = SkeletonSequences(sequence_dirs["ntu60"], "ntu60", "csub", "test")
    made = descriptor_images_torch([data[i].sequence for i in range(4)], data.layout, "paper", IMG_SIZE)
    for name in DESCRIPTORS:
        batch = bgr_batch(made[name])
        for i in range(4):
            assert torch.equal(batch[i], as_three_channels(bgr_chw(made[name][i].numpy())))


def ucla_copy(sequence_dirs, tmp_path) -> Path:
    """A copy of the demo's NW-UCLA files that a test may change."""
    seq_dir = tmp_path / "ucla"
    seq_dir.mkdir()
    for path in sequence_dirs["ucla"].glob("*.json"):
        (seq_dir / path.name).write_bytes(path.read_bytes())
    return seq_dir


def test_the_pack_gives_the_files_sequences_and_is_made_once(sequence_dirs, tmp_path):
    seq_dir = ucla_copy(sequence_dirs, tmp_path)
    plain = SkeletonSequences(seq_dir, "ucla", None, "test")
    packed = SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    assert packed.pack_path.is_file() and packed.pack_path.parent == seq_dir / ".cache"
    for i in range(len(plain)):
        np.testing.assert_array_equal(packed[i].sequence, plain[i].sequence)
        assert packed[i].label == plain[i].label
    made_at = packed.pack_path.stat().st_mtime_ns
    assert SkeletonSequences(seq_dir, "ucla", None, "test", pack=True).pack_path.stat().st_mtime_ns == made_at
    assert not [p for p in (seq_dir / ".cache").iterdir() if ".tmp" in p.name]
    # a changed file gets a new pack; the old one stays while ``packed`` maps it (a training that
    # started before the change), and the next run removes it once it is released
    changed = plain.paths[0]
    os.utime(changed, ns=(made_at + 10**9, made_at + 10**9))
    again = SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    old = [packed.pack_path, pack_index_path(packed.pack_path)]
    assert again.pack_path != packed.pack_path and all(path.exists() for path in old)
    assert packed[0].sequence.shape == plain[0].sequence.shape   # still readable
    del packed
    gc.collect()
    assert SkeletonSequences(seq_dir, "ucla", None, "test", pack=True).pack_path == again.pack_path
    assert not any(path.exists() for path in old)
    assert sorted(p.name for p in (seq_dir / ".cache").iterdir()) == sorted(
        [again.pack_path.name, pack_index_path(again.pack_path).name, seal_path(again.pack_path).name])


def test_a_pack_that_cannot_be_written_is_named_and_an_unreadable_sample_is_not_blamed_on_it(sequence_dirs, tmp_path):
    seq_dir = ucla_copy(sequence_dirs, tmp_path)
    (seq_dir / ".cache").write_text("")   # a file where the pack's folder goes
    with pytest.raises(ValueError) as error:
        SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    assert str(error.value) == (f"{seq_dir / '.cache'}: cannot write the skeleton pack there (File exists); "
                                "make it writable with room to spare, or leave out --cache")
    (seq_dir / ".cache").unlink()
    data = SkeletonSequences(seq_dir, "ucla", None, "test")
    data.paths[2].unlink()
    data.paths[2].mkdir()   # an input that cannot be read: named as such, and the pack made of the others
    packed = SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    assert (data.paths[2], "a folder, not a regular file; not read") in packed.problems
    assert packed.paths == [p for p in data.paths if p != data.paths[2]] and packed.pack_path.is_file()


def test_a_bad_sample_file_is_named(sequence_dirs, tmp_path):
    seq_dir = ucla_copy(sequence_dirs, tmp_path)
    data = SkeletonSequences(seq_dir, "ucla", None, "test")
    data.paths[3].write_text("{ not json")
    with pytest.raises(ValueError, match=rf"^{data.paths[3]}:.*not valid JSON"):
        data[3]
    with pytest.raises(ValueError, match=rf"^{data.paths[3]}:"):
        SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    (seq_dir / "a99_s01_e00_v03.json").write_text("{}")          # not a sample name: left out, listed
    assert [p.name for p, _ in SkeletonSequences(seq_dir, "ucla", None, "test").problems] == ["a99_s01_e00_v03.json"]
    with pytest.raises(ValueError, match=rf"^{tmp_path}: no .json files of the ucla cview train split"):
        SkeletonSequences(tmp_path, "ucla", None, "train")


def test_augmented_images_depend_on_seed_epoch_and_index_only(sequence_dirs):
    data = SkeletonSequences(sequence_dirs["ntu60"], "ntu60", "csub", "test")
    items = [data[i] for i in range(6)]

    def images(batch_size: int, epoch: int, seed: int = 0) -> torch.Tensor:
        maker = ImageMaker("GD", data.layout, "paper", IMG_SIZE, augment=Augment(), seed=seed)
        return torch.cat([maker(collate_sequences(items[k:k + batch_size]), epoch)[0]
                          for k in range(0, len(items), batch_size)])

    plain = ImageMaker("GD", data.layout, "paper", IMG_SIZE)(collate_sequences(items))[0]
    first = images(6, epoch=1)
    assert torch.equal(first, images(2, epoch=1))                 # batch size does not matter
    assert not torch.equal(first, images(6, epoch=2))             # each epoch draws anew
    assert not torch.equal(first, images(6, epoch=1, seed=1))
    assert not torch.equal(first, plain)
    off = ImageMaker("GD", data.layout, "paper", IMG_SIZE, augment=Augment.off())(collate_sequences(items))[0]
    assert torch.equal(off, plain)


def test_the_loader_takes_the_epoch_from_a_distributed_sampler(sequence_dirs):
    data = SkeletonSequences(sequence_dirs["ntu60"], "ntu60", "csub", "test")
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=1, rank=0, shuffle=False)
    maker = ImageMaker("GD", data.layout, "paper", IMG_SIZE, augment=Augment())
    loader = skeleton_loader(data, maker, batch_size=8, sampler=sampler)
    assert len(loader) == len(torch.utils.data.DataLoader(data, batch_size=8))
    sampler.set_epoch(3)
    images, labels = next(iter(loader))
    batch = collate_sequences([data[i] for i in range(8)])
    assert isinstance(batch, SequenceBatch)
    assert torch.equal(images, maker(batch, 3)[0]) and not torch.equal(images, maker(batch, 0)[0])
    assert torch.equal(labels, data.labels0[:8])


def test_items_are_load_sequence_in_the_sources_mode(sequence_dirs):
    for mode in ("paper", "clean"):
        data = SkeletonSequences(sequence_dirs["ntu60"], "ntu60", "csub", "train", mode=mode)
        np.testing.assert_array_equal(data[2].sequence, load_sequence(data.paths[2], mode))
        assert data.record(IMG_SIZE)["mode"] == mode


def test_train_and_test_scripts_from_skeletons_equal_the_png_route(demo_raw, demo_descriptors, tmp_path, capsys):
    """train.py --source skeletons records the PNG folders' fingerprints; test.py --source skeletons
    gives the same predictions as test.py on the PNGs, for the same checkpoints."""
    import json

    import train
    from conftest import load_script
    from models.checkpoint import load_checkpoint
    from descriptors import provenance
    from descriptors.names import descriptor_dir

    test_script = load_script("test")
    ckpt, ucla = tmp_path / "ckpt", demo_raw / "ucla"
    common = ["-d", "ucla", "-gpu", "-1", "-ckpt", str(ckpt), "--workers", "0"]
    for desc in ("GD", "all"):
        assert train.main(train.get_args_parser().parse_args(
            [*common, "-desc", desc, "--source", "skeletons", "-dspath", str(ucla), "--img-size", "32",
             "--epochs", "1", "--width", "0.0625", "--no-progress"])) == 0
    settings = load_checkpoint(ckpt / "ucla_all_epoch_best.tar").settings
    assert settings["source"] == "skeletons" and (settings["mode"], settings["img_size"]) == ("paper", 32)
    for part in ("train", "test"):
        for desc, facts in settings["data"][part].items():
            record = provenance.read_record(descriptor_dir(demo_descriptors, Split.of("ucla", None, part), desc))
            assert facts["fingerprint"] == record["fingerprint"] and facts["samples"] == record["samples"]
    predictions = {}
    for source in ("images", "skeletons"):
        out = tmp_path / source
        assert test_script.main(test_script.get_args_parser().parse_args(
            [*common, "-desc", "all", "-despth", str(demo_descriptors), "-dspath", str(ucla), "--source", source,
             "--out", str(out)])) == 0
        doc = json.loads(next(out.glob("*_results.json")).read_text())
        predictions[source] = (doc["samples"], doc["predictions"])
    assert predictions["images"] == predictions["skeletons"]
    capsys.readouterr()

    # Augmentation: only on skeletons, never in paper mode.
    for extra, message in ((["--source", "skeletons", "-dspath", str(ucla)], "use it with --mode clean"),
                           (["-despth", str(demo_descriptors)], "needs --source skeletons")):
        assert train.main(train.get_args_parser().parse_args(
            [*common, "-desc", "GD", "--augment", "--epochs", "1", "--width", "0.0625", "-ckpt", str(tmp_path / "a"),
             *extra])) == 2
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------- the pack on real samples: lossless, compact

def float64_bytes(index: np.ndarray, dims: int = 3) -> int:
    """What the pack's sequences take as float64 (the format-1 pack's size)."""
    return int((index[:, 2] * index[:, 3]).sum()) * dims * 8


def assert_packed_is_the_files(packed: SkeletonSequences) -> np.ndarray:
    """Every packed sequence is load_sequence's, byte for byte; returns the pack's index."""
    for i, path in enumerate(packed.paths):
        expected, got = load_sequence(path, packed.mode, packed.kind, packed.layout), packed[i].sequence
        assert got.dtype == expected.dtype == np.float64 and got.shape == expected.shape, path.name
        assert got.tobytes() == expected.tobytes(), path.name
    return read_pack(packed.pack_path)[1]


@pytest.fixture(scope="module")
def real_ntu_npy(ntu_raw_dir, tmp_path_factory) -> Path:
    """The real NTU samples through txt2npy (the sequence files a pack is made of)."""
    from skeletons.convert import convert_folder

    npy = tmp_path_factory.mktemp("real_ntu") / "npy"
    summary = convert_folder(ntu_raw_dir, npy, "ntu120", workers=1, progress=False)
    assert summary.converted and not summary.failed
    return npy


@pytest.mark.parametrize("mode", ["paper", "clean"])
def test_the_pack_of_real_ntu_samples_is_bit_exact_and_half_of_float64(real_ntu_npy, mode):
    stored = raw = 0
    for part in ("train", "test"):
        packed = SkeletonSequences(real_ntu_npy, "ntu120", "csub", part, mode, pack=True)
        index = assert_packed_is_the_files(packed)
        assert (index[:, 4] == DIGITS7).all()   # every real sample: 7 significant digits at most
        stored, raw = stored + packed.pack_path.stat().st_size, raw + float64_bytes(index)
    assert stored < 0.45 * raw   # measured: 0.381 (int32 decimals would be 0.500)


def test_the_pack_of_real_ucla_samples_is_bit_exact(ucla_dir, tmp_path):
    total = 0
    for part in ("train", "test"):
        packed = SkeletonSequences(ucla_dir, "ucla", None, part, pack=True, pack_dir=tmp_path)   # not in shared/
        index = assert_packed_is_the_files(packed)
        assert (index[:, 4] == DIGITS7).all() and packed.pack_path.stat().st_size < 0.45 * float64_bytes(index)
        total += len(packed)
    assert total == len(list(ucla_dir.glob("*.json")))


def test_a_custom_dataset_packs_decimals_float32_and_float64_exactly(real_ntu_npy, tmp_path):
    """Real NTU bodies as a custom ntu25 dataset: as read (decimals), as float32, and moved by an
    irrational offset (no decimals, no float32): each sample in its own encoding, all exact."""
    from skeletons.custom import register_custom_dataset, write_custom_dataset
    from skeletons.ntu import load_skeleton_npy

    arrays = {}
    for k, path in enumerate(sorted(real_ntu_npy.glob("*.skeleton.npy"))[:6]):
        data = load_skeleton_npy(path)
        bodies = np.stack([data[key] for key in ("skel_body0", "skel_body1") if key in data])
        arrays[f"s{k}"] = (bodies, bodies.astype(np.float32), bodies + np.pi)[k % 3]
    names = sorted(arrays)
    root = write_custom_dataset(tmp_path / "mine", arrays, {s: 1 for s in names},
                                {s: "train" for s in names}, ["one"])
    register_custom_dataset(root, "ntu25")
    packed = SkeletonSequences(root / "skeletons", "custom", None, "train", pack=True)
    index = assert_packed_is_the_files(packed)
    assert index[:, 4].tolist() == [(DIGITS7, FLOAT32, FLOAT64)[k % 3] for k in range(len(names))]


def test_a_sample_decimals_would_change_falls_back_and_stays_exact(real_ntu_npy):
    """-0.0 is a decimal 0 but not the same bits: where the centre is 0 too, -0.0 - 0.0 = -0.0 and
    0.0 - 0.0 = 0.0, so the decoded sample differs by a sign bit and must not be stored so."""
    path = sorted(real_ntu_npy.glob("*.skeleton.npy"))[0]
    uncentred, _ = load_uncentred(path)
    raw = uncentred.raw.copy()
    raw[0, uncentred.root] = 0.0
    raw[3, 7, 2] = -0.0
    changed = uncentred._replace(raw=raw)
    X = changed.centred()
    assert np.signbit(X[3, 7, 2])
    encoding, payload, how = encode_sample(changed, X)
    assert encoding == FLOAT64 and len(payload) == X.nbytes
    unchanged = uncentred._replace(raw=raw + 0.0)   # the same values, -0.0 made 0.0
    assert encode_sample(unchanged, unchanged.centred())[0] == DIGITS7


def test_packs_of_the_float64_format_are_removed_and_never_read(sequence_dirs, tmp_path):
    seq_dir = ucla_copy(sequence_dirs, tmp_path)
    packed = SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    prefix = packed.pack_path.name.rsplit("_", 1)[0]
    old = [seq_dir / ".cache" / f"{prefix}_0123456789abcdef{suffix}" for suffix in (".f64", ".index.npy")]
    for path in old:
        path.write_bytes(b"old")
    packed.pack_path.unlink()
    again = SkeletonSequences(seq_dir, "ucla", None, "test", pack=True)
    assert again.pack_path == packed.pack_path and not any(path.exists() for path in old)
    assert_packed_is_the_files(again)
