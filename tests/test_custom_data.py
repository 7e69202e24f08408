"""Your own skeletons: real NTU samples turned into a COCO-17 2D dataset folder, read back, made into
the five descriptor images; the 2D descriptors' values and image-plane invariances; one-line errors."""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from descriptors.core import GRAY_DESCRIPTORS, descriptor_images, descriptor_matrices, normalised_adjacency
from demo.coco import EAR_OFFSET, FOCAL_LENGTH, PRINCIPAL_POINT, ntu_to_coco2d, ntu_to_coco3d
from skeletons.custom import load_custom_sequence, read_custom_dataset, write_custom_dataset
from skeletons.layouts import NTU, find_layout
from skeletons.ntu import paper_sequence, read_skeleton
from descriptors.names import DESCRIPTORS

IMG = 32
COCO = find_layout("coco17")
# sample -> (label, split); A050 has two bodies
SAMPLES = {"S001C001P001R001A001": (1, "train"), "S001C001P001R001A008": (2, "test"),
           "S001C001P001R001A023": (3, "train"), "S001C001P001R001A050": (4, "test")}
CLASSES = ["drink water", "sit down", "hand waving", "punching"]
TWO = "S001C001P001R001A050"


def bodies(data: dict) -> np.ndarray:
    """(M, T, 25, 3) camera-space bodies of a converter dict."""
    return np.stack([data[key] for key in ("skel_body0", "skel_body1") if key in data])


@pytest.fixture(scope="module")
def ntu_dicts(ntu_raw_dir) -> dict[str, dict]:
    return {sample: read_skeleton(ntu_raw_dir / f"{sample}.skeleton") for sample in SAMPLES}


@pytest.fixture(scope="module")
def coco_root(ntu_dicts, tmp_path_factory) -> Path:
    """A COCO-17 dataset folder: one-body samples saved as (T, 17, 2), the two-body one as (2, T, 17, 2)."""
    arrays = {s: ntu_to_coco2d(bodies(d)) for s, d in ntu_dicts.items()}
    arrays = {s: a if len(a) == 2 else a[0] for s, a in arrays.items()}
    root = tmp_path_factory.mktemp("coco")
    return write_custom_dataset(root, arrays, {s: v[0] for s, v in SAMPLES.items()},
                                {s: v[1] for s, v in SAMPLES.items()}, CLASSES)


def sequence_of(array: np.ndarray, folder: Path, layout=COCO) -> np.ndarray:
    """The sequence load_custom_sequence makes of ``array`` saved as a sample file."""
    path = folder / f"sample_{np.random.default_rng().integers(1 << 30)}.npy"
    np.save(path, array, allow_pickle=False)
    return load_custom_sequence(path, layout)


# ---------------------------------------------------------------- NTU -> COCO-17 2D

def test_ntu_to_coco2d_is_a_pinhole_projection_of_named_joints(ntu_dicts):
    body = ntu_dicts[TWO]["skel_body1"]
    coco3, coco2 = ntu_to_coco3d(body), ntu_to_coco2d(body)
    assert coco3.shape == body.shape[:1] + (17, 3) and coco2.shape == body.shape[:1] + (17, 2)
    for name in ("left_shoulder", "right_elbow", "left_wrist", "right_hip", "left_knee", "right_ankle"):
        np.testing.assert_array_equal(coco3[:, COCO.joints.index(name)], body[:, NTU.joints.index(name)])
    head = body[:, NTU.joints.index("head")]
    np.testing.assert_array_equal(coco3[:, 0], head)                                  # nose = head joint
    ears = coco3[:, [COCO.joints.index("left_ear"), COCO.joints.index("right_ear")]]
    np.testing.assert_allclose(ears.mean(axis=1), head, atol=1e-12)                    # ears either side of it
    np.testing.assert_allclose(np.linalg.norm(ears[:, 0] - head, axis=-1), EAR_OFFSET)
    x, y, z = coco3[..., 0], coco3[..., 1], coco3[..., 2]
    np.testing.assert_allclose(coco2[..., 0], PRINCIPAL_POINT[0] + FOCAL_LENGTH * x / z)
    np.testing.assert_allclose(coco2[..., 1], PRINCIPAL_POINT[1] - FOCAL_LENGTH * y / z)
    untracked = body.copy()
    untracked[3] = 0
    assert not ntu_to_coco2d(untracked)[3].any() and np.isfinite(ntu_to_coco2d(untracked)).all()
    with pytest.raises(ValueError, match=r"expected NTU joints \(\.\.\., 25, 3\), not shape \(5, 20, 3\)"):
        ntu_to_coco2d(np.ones((5, 20, 3)))


# ---------------------------------------------------------------- the dataset folder

def test_converted_dataset_reads_back(coco_root, ntu_dicts):
    ds = read_custom_dataset(coco_root, COCO)
    assert ds.samples == tuple(sorted(SAMPLES)) and ds.class_names == tuple(CLASSES) and ds.unlisted == ()
    assert ds.labels == (1, 2, 3, 4) and ds.splits == ("train", "test", "train", "test")
    assert ds.split_samples("test") == [("S001C001P001R001A008", 2), (TWO, 4)]
    for sample, data in ntu_dicts.items():
        X = load_custom_sequence(ds.path(sample), COCO)
        converted = ntu_to_coco2d(bodies(data))                  # (M, T, 17, 2)
        M, T = converted.shape[:2]
        assert X.shape == (T, M * 17, 2) and X.dtype == np.float64
        # body 1's joints after body 0's, centred on body 0's root (left hip) at frame 0
        centred = converted - converted[0, 0, COCO.root]
        np.testing.assert_array_equal(X, centred.transpose(1, 0, 2, 3).reshape(T, M * 17, 2))
        assert not X[0, COCO.root].any()


def test_a_3d_ntu_folder_gives_the_builtin_sequences_and_paper_images(ntu_dicts, tmp_path):
    ntu25 = find_layout("ntu25")
    for sample in ("S001C001P001R001A001", TWO):
        data = ntu_dicts[sample]
        X = sequence_of(bodies(data), tmp_path, ntu25)
        np.testing.assert_array_equal(X, paper_sequence(data))   # same rows, same centring
        ours, builtin = descriptor_images(X, ntu25, "paper", IMG), descriptor_images(paper_sequence(data), img_size=IMG)
        for desc in DESCRIPTORS:
            np.testing.assert_array_equal(ours[desc], builtin[desc], err_msg=f"{sample} {desc}")


# ---------------------------------------------------------------- 2D descriptors

def test_coco_descriptor_images_in_both_modes(coco_root):
    ds = read_custom_dataset(coco_root, COCO)
    for sample in ds.samples:
        X = load_custom_sequence(ds.path(sample), COCO)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            paper, clean = (descriptor_images(X, COCO, mode, IMG) for mode in ("paper", "clean"))
            matrices = descriptor_matrices(X, COCO, "clean")
        assert all(np.isfinite(m).all() for m in matrices.values())
        B = X.shape[1] // 17
        assert matrices["GD"].shape == (B * 17, len(X), 2) and matrices["JDD"].shape == (B * 32, len(X))
        assert matrices["ADD"].shape == (B * 17, len(X) - 1) and matrices["LAD"].shape == (B * 14, len(X))
        assert list(paper) == list(DESCRIPTORS)
        for desc in DESCRIPTORS:
            assert paper[desc].dtype == np.uint8
            assert paper[desc].shape == ((IMG, IMG, 3) if desc in ("GD", "FDD") else (IMG, IMG)), desc
            assert paper[desc].any(), (sample, desc)
            np.testing.assert_array_equal(paper[desc], clean[desc])   # no quirks for a custom layout
        assert paper["GD"][..., :2].any(axis=(0, 1)).all() and not paper["GD"][..., 2].any()   # R = x, G = y, B = 0
        for channel, desc in enumerate(GRAY_DESCRIPTORS):
            np.testing.assert_array_equal(paper["FDD"][..., channel], paper[desc])


def test_2d_descriptor_values_match_direct_formulas(coco_root):
    X = load_custom_sequence(coco_root / "skeletons" / f"{TWO}.npy", COCO)
    m = descriptor_matrices(X, COCO, "clean")
    body1 = X[:, 17:]
    gd = np.einsum("tvc,vw->wtc", body1, normalised_adjacency(COCO).astype(np.float64))
    np.testing.assert_allclose(m["GD"][17:], gd, rtol=1e-5, atol=1e-3)   # float32 of pixel coordinates
    size = sum(np.linalg.norm(body1[0, i] - body1[0, j]) for i, j in COCO.size_bones)
    i, j = COCO.jdd_pairs[5]                                               # (left_wrist, left_knee)
    np.testing.assert_allclose(m["JDD"][32 + 5], np.linalg.norm(body1[:, i] - body1[:, j], axis=1) / size)
    np.testing.assert_allclose(m["ADD"][17 + 9], np.linalg.norm(np.diff(body1[:, 9], axis=0), axis=1))
    p, a, b = (body1[:, j] for j in COCO.lad_triplets[4])                 # the left elbow's angle
    u, v = a - p, b - p
    cosine = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    assert np.all(np.abs(np.cos(m["LAD"][14 + 4]) - cosine) <= 0.005 + 1e-9)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_mode_invariances_in_the_image_plane(ntu_dicts, tmp_path, seed):
    rng = np.random.default_rng(seed)
    keypoints = ntu_to_coco2d(bodies(ntu_dicts[TWO]))            # (2, T, 17, 2) pixels
    angle = rng.uniform(0.3, 2 * np.pi - 0.3)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.uniform(-500, 500, 2)

    def images(points: np.ndarray) -> dict[str, np.ndarray]:
        return descriptor_images(sequence_of(points, tmp_path), COCO, "clean", IMG)

    base, moved = images(keypoints), images(keypoints @ rotation.T + shift)
    for desc in ("JDD", "ADD", "LAD"):
        assert max_diff(base[desc], moved[desc]) <= 1, desc
    scaled = images(1.7 * keypoints)
    for desc in ("JDD", "LAD"):
        assert max_diff(base[desc], scaled[desc]) <= 1, desc
    assert max_diff(base["GD"], images(keypoints + shift)["GD"]) <= 1
    assert max_diff(base["GD"], moved["GD"]) > 1   # GD encodes coordinates: rotation changes it


@pytest.mark.parametrize("mode", ["paper", "clean"])
def test_2d_edge_cases_give_images_without_warnings(coco_root, mode):
    X = load_custom_sequence(coco_root / "skeletons" / f"{TWO}.npy", COCO)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = descriptor_images(X[:1], COCO, mode, IMG)            # T = 1: ADD empty
        assert not one["ADD"].any() and one["JDD"].any()
        still = descriptor_images(np.repeat(X[:1], 5, axis=0), COCO, mode, IMG)
        assert not still["ADD"].any() and still["JDD"].any()
        zeros = descriptor_images(np.zeros((6, 17, 2)), COCO, mode, IMG)
        assert not any(image.any() for image in zeros.values())
    with pytest.raises(ValueError, match=r"does not fit the coco17 layout \(expected \(T, 17 or 34, 2\)\)"):
        descriptor_images(np.zeros((5, 17, 3)), COCO)
    with pytest.raises(ValueError, match="no skeleton layout has 17 joints"):
        descriptor_images(X[:, :17])                                # 2D layouts are never guessed


# ---------------------------------------------------------------- one-line errors

SMALL = {"a": (1, "train", (6, 17, 2)), "b": (2, "test", (2, 6, 17, 2)), "c": (3, "train", (4, 17, 2))}


@pytest.fixture
def small_root(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    return write_custom_dataset(root, {s: rng.uniform(0, 600, v[2]) for s, v in SMALL.items()},
                                {s: v[0] for s, v in SMALL.items()}, {s: v[1] for s, v in SMALL.items()},
                                ["walk", "wave", "sit"])


def test_the_small_dataset_reads_and_unlisted_files_are_named(small_root):
    np.save(small_root / "skeletons" / "extra.npy", np.zeros((3, 17, 2)))
    (small_root / "skeletons" / ".a.npy.1234.tmp.npy").write_bytes(b"half written")   # an atomic temp
    ds = read_custom_dataset(small_root, COCO)
    assert ds.samples == ("a", "b", "c") and ds.labels == (1, 2, 3) and ds.unlisted == ("extra",)
    assert (small_root / "labels.csv").read_text() == "sample_id,label,split\na,1,train\nb,2,test\nc,3,train\n"
    assert (small_root / "classes.txt").read_text() == "walk\nwave\nsit\n"


def test_files_with_a_byte_order_mark_read_as_without(small_root):
    """Excel's "CSV UTF-8" and Notepad's UTF-8 start with a byte-order mark."""
    plain = read_custom_dataset(small_root, COCO)
    for name in ("labels.csv", "classes.txt"):
        path = small_root / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked = read_custom_dataset(small_root, COCO)
    assert (marked.samples, marked.labels, marked.class_names) == (plain.samples, plain.labels, plain.class_names)
    assert marked.class_names[0] == "walk"


def save(name: str, array) -> callable:
    return lambda root: np.save(root / "skeletons" / f"{name}.npy", np.asarray(array), allow_pickle=False)


def text(name: str, content: str) -> callable:
    return lambda root: (root / name).write_text(content)


def raw(name: str, content: bytes) -> callable:
    return lambda root: (root / name).write_bytes(content)


def fifo(root: Path) -> None:
    path = root / "skeletons" / "a.npy"
    path.unlink()
    os.mkfifo(path)


def pickled(root: Path) -> None:
    np.save(root / "skeletons" / "a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)


def truncated(root: Path) -> None:
    path = root / "skeletons" / "a.npy"
    path.write_bytes(path.read_bytes()[:200])


def with_nan(root: Path) -> None:
    array = np.zeros((6, 17, 2))
    array[3, 4, 1] = np.nan
    np.save(root / "skeletons" / "a.npy", array)


LABELS = "sample_id,label,split\na,1,train\nb,2,test\nc,3,train\n"
BAD_DATASETS = [
    (lambda root: (root / "classes.txt").unlink(), "classes.txt: missing (one class name per line)"),
    (text("classes.txt", "walk\n\nsit\n"), "classes.txt:2: empty class name"),
    (text("classes.txt", "walk\nwave\nwalk\n"), "classes.txt:3: class 'walk' repeats line 1"),
    (text("classes.txt", "\n"), "classes.txt:1: empty class name"),
    (lambda root: (root / "labels.csv").unlink(), "labels.csv: missing (columns sample_id,label,split)"),
    (text("labels.csv", "sample_id,label\na,1\n"),
     "labels.csv:1: missing column 'split' (the header needs sample_id,label,split)"),
    (text("labels.csv", LABELS + "ghost,1,train\n"), "labels.csv:5: sample 'ghost' has no file skeletons/ghost.npy"),
    (text("labels.csv", LABELS.replace("b,2", "b,4")), "labels.csv:3: label 4 is out of range 1..3 "
                                                       "(classes.txt has 3 classes)"),
    (text("labels.csv", LABELS.replace("b,2", "b,0")), "labels.csv:3: label 0 is out of range 1..3 "
                                                       "(classes.txt has 3 classes)"),
    (text("labels.csv", LABELS.replace("b,2", "b,wave")), "labels.csv:3: label 'wave' is not a class number (1..3)"),
    (text("labels.csv", LABELS.replace("test", "val")), "labels.csv:3: split 'val' is not train or test"),
    (text("labels.csv", LABELS + "a,2,test\n"), "labels.csv:5: sample 'a' repeats line 2"),
    (text("labels.csv", LABELS.replace("b,2,test", "b,2")), "labels.csv:3: 2 fields, the header has 3"),
    (text("labels.csv", LABELS + "a b,1,test\n"),
     "labels.csv:5: sample id 'a b' may hold only letters, digits, '_' and '-'"),
    (text("labels.csv", "sample_id,label,split\n"), "labels.csv: no samples"),
    (lambda root: [p.unlink() for p in (root / "skeletons").iterdir()] and (root / "skeletons").rmdir(),
     "skeletons: missing (one <sample_id>.npy per sample)"),
    (save("a", np.zeros((5, 18, 2))), "skeletons/a.npy: shape (5, 18, 2): 18 joints, the coco17 layout has 17"),
    (save("a", np.zeros((5, 17, 3))), "skeletons/a.npy: shape (5, 17, 3): 3 values per joint, "
                                      "the coco17 layout has dims 2"),
    (save("a", np.zeros((3, 5, 17, 2))), "skeletons/a.npy: shape (3, 5, 17, 2): 3 bodies, expected 1 to 2"),
    (save("a", np.zeros((5, 34))), "skeletons/a.npy: shape (5, 34) is not (T, 17, 2) or (M, T, 17, 2)"),
    (save("a", np.zeros((0, 17, 2))), "skeletons/a.npy: shape (0, 17, 2): no frames"),
    (save("a", np.zeros((5, 17, 2), bool)), "skeletons/a.npy: dtype bool is not an integer or float array"),
    (with_nan, "skeletons/a.npy: non-finite value (nan or inf) in frame 3"),
    (pickled, "skeletons/a.npy: holds Python objects, which are not read (no pickle); save a plain numeric array"),
    (lambda root: (root / "skeletons" / "a.npy").write_bytes(pickle.dumps([1, 2])),
     "skeletons/a.npy: not a .npy file (np.save writes them)"),
    (truncated, "skeletons/a.npy: unreadable .npy file (mmap length is greater than file size)"),
    (fifo, "skeletons/a.npy: a FIFO, not a regular file; not read"),   # opening it would block forever
    (raw("labels.csv", LABELS.replace("b,2", "b\xe9,2").encode("latin-1")),
     "labels.csv:3: not UTF-8 text (byte b'\\xe9'); save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet)"),
    (raw("classes.txt", "walk\nwav\xe9\nsit\n".encode("latin-1")),
     "classes.txt:2: not UTF-8 text (byte b'\\xe9'); save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet)"),
    (text("labels.csv", "sample_id,label,split,notes\na,1,train," + "x" * 200_000 + "\n"),
     "labels.csv:2: not readable as CSV (field larger than field limit (131072))"),
]


@pytest.mark.parametrize("corrupt, problem", BAD_DATASETS, ids=[p.split(" ")[0] + str(k)
                                                               for k, (_, p) in enumerate(BAD_DATASETS)])
def test_bad_dataset_folders_are_one_line_errors(small_root, corrupt, problem):
    corrupt(small_root)
    with pytest.raises(ValueError) as error:
        read_custom_dataset(small_root, COCO)
    assert str(error.value) == f"{small_root}/{problem}"


def test_values_are_checked_when_a_sequence_is_loaded(small_root):
    with_nan(small_root)
    ds = read_custom_dataset(small_root, COCO, check_values=False)   # shapes only: no file is read whole
    with pytest.raises(ValueError) as error:
        load_custom_sequence(ds.path("a"), COCO)
    assert str(error.value) == f"{small_root}/skeletons/a.npy: non-finite value (nan or inf) in frame 3"
    with pytest.raises(ValueError, match=r"^.*/skeletons/zz\.npy: missing$"):
        load_custom_sequence(small_root / "skeletons" / "zz.npy", COCO)
    with pytest.raises(ValueError, match=r"/nothere: no such dataset folder$"):
        read_custom_dataset(small_root / "nothere", COCO)


def test_write_custom_dataset_refuses_incomplete_tables(tmp_path):
    array = np.zeros((3, 17, 2))
    with pytest.raises(ValueError, match=r"^splits: no entry for sample 'a'$"):
        write_custom_dataset(tmp_path, {"a": array}, {"a": 1}, {}, ["walk"])
    with pytest.raises(ValueError, match=r"^samples: sample id 'a/b' may hold only letters, digits, '_' and '-'$"):
        write_custom_dataset(tmp_path, {"a/b": array}, {"a/b": 1}, {"a/b": "train"}, ["walk"])
    assert not any(tmp_path.iterdir())
