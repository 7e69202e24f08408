"""The readers of the field's one-file datasets (PYSKL pickles, CTR-GCN npz files) and their
unpacked folders, on the demo's files altered as a tester would (issue 26): ids enter checked and
samples.csv goes through the csv module (no row injected); a small crafted file never allocates
what it declares (one line naming it, peak memory under 500 MB); every sample of a split that is
not made is named with why, in the log and in origin.json; a split pair that overlaps, a
duplicate frame_dir and a split given as a string are one-line refusals that write nothing; a
protocol-5 pickle is plain data."""
from __future__ import annotations

import io
import json
import pickle
import re
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from common.safe_pickle import MAX_ITEMS, SafeUnpickler, load_pickle
from demo.field_files import write_ctrgcn, write_pyskl
from skeletons.ctrgcn import read_ctrgcn, register_ctrgcn_dataset
from skeletons.custom import write_custom_dataset
from skeletons.pyskl import register_pyskl_dataset
from skeletons.unpacked import ORIGIN_FILE, SAMPLES_FILE, read_samples, sample_file, unpacked_root

_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
INJECTED = "zz\nS003C002P023R001A027,5,x"   # issue 26, item 5
VICTIM = "S003C002P023R001A027"             # a test sample of the demo, action 27


@pytest.fixture(scope="module")
def demo_pyskl(tmp_path_factory) -> dict:
    """The demo's PYSKL file as a dict (60 samples; xsub_val holds VICTIM)."""
    path = write_pyskl(tmp_path_factory.mktemp("demo") / "ntu.pkl")
    return pickle.loads(path.read_bytes())


@pytest.fixture(scope="module")
def demo_npz(tmp_path_factory) -> dict[str, np.ndarray]:
    path = write_ctrgcn(tmp_path_factory.mktemp("demo") / "NTU60_CS.npz")
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def altered(demo: dict, path: Path, change=None, protocol: int = 2) -> Path:
    """The demo's PYSKL file with ``change(data)`` applied, written to ``path``."""
    data = pickle.loads(pickle.dumps(demo))
    if change:
        change(data)
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def rename(data: dict, old: str, new: str) -> None:
    for item in data["annotations"]:
        if item["frame_dir"] == old:
            item["frame_dir"] = new
    data["split"] = {key: [new if n == old else n for n in names] for key, names in data["split"].items()}


def one_line(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


# ---------------------------------------------------------------- item 5: ids and samples.csv

@pytest.mark.parametrize("name, words", [
    (INJECTED, "control character '\\n'"),
    ("S001C001P001R001A001\r", "control character '\\r'"),
    ("a" * 20_000, "a name of 20,000 characters"),
])
def test_frame_dir_that_would_break_a_row_is_refused_and_writes_nothing(tmp_path, monkeypatch, demo_pyskl, name,
                                                                          words):
    monkeypatch.chdir(tmp_path)
    first = demo_pyskl["annotations"][0]["frame_dir"]
    path = altered(demo_pyskl, tmp_path / "f.pkl", lambda data: rename(data, first, name))
    with pytest.raises(ValueError) as error:
        register_pyskl_dataset(path)
    message = one_line(error, path)
    assert "annotation 0: frame_dir" in message and words in message, message
    assert not unpacked_root(path, "pyskl").exists()


def test_names_with_commas_quotes_and_path_parts_keep_their_rows(tmp_path, monkeypatch, demo_pyskl):
    """A frame_dir with ',', '"', '/' and '..' is a safe id (a file name), and samples.csv keeps
    its row whole: every sample keeps its own label (the NTU one, 27, for VICTIM)."""
    monkeypatch.chdir(tmp_path)
    odd = '../zz,5,"x"/S003'
    first = demo_pyskl["annotations"][0]
    path = altered(demo_pyskl, tmp_path / "f.pkl", lambda data: rename(data, first["frame_dir"], odd))
    ds = register_pyskl_dataset(path)
    rows = read_samples(unpacked_root(path, "pyskl") / SAMPLES_FILE)
    assert len(rows) == 60 and {name for _, _, name in rows} >= {odd, VICTIM}
    labels = {name: label for _, label, name in rows}
    assert labels[odd] == first["label"] + 1 and labels[VICTIM] == 27
    odd_file = sample_file(ds, odd)
    assert odd_file.parent == Path(ds.seq_dir) and "/" not in odd_file.name and ".." not in odd_file.name
    assert np.array_equal(np.load(odd_file), first["keypoint"].astype(np.float32))
    assert ds.parse_name(VICTIM).label == 27


# ---------------------------------------------------------------- item 6: small files, huge declarations

class Reduces:
    """An object that pickles as the given reduce tuple (how a crafted file is written)."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def nested_shared_list(levels: int) -> list:
    """A list that holds one list many times over, ``levels`` deep: 2**levels items expanded."""
    inner: list = [0]
    for _ in range(levels):
        inner = [inner] * 2
    return inner


BIG = (2, 10**7, 25, 3)
CRAFTED_KEYPOINTS = {   # name: (keypoint, words of the refusal)
    "declared_shape": (Reduces(_RECONSTRUCT, (np.ndarray, BIG, b"f"), (1, BIG, np.dtype("f2"), False, b"\0" * 4)),
                       "declared on 4 bytes of data"),
    "constructor": (Reduces(np.ndarray, (BIG, "f4")), "numpy.ndarray called"),
    "subarray_dtype": (Reduces(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                               (1, (1,), Reduces(np.dtype, ("f4", False, True),
                                                 (3, "|", (np.dtype("f4"), BIG), None, None, 4, 4, 0)),
                                False, b"\0" * 4)),
                       "a dtype state that is not a plain type's"),
}


def crafted_pyskl(demo: dict, folder: Path) -> dict[str, tuple[Path, str]]:
    """The demo's file with one field of annotation 0 replaced by a crafted value: {name: (file, words)}."""
    def one(name: str, field: str, value: object) -> Path:
        return altered(demo, folder / f"{name}.pkl", lambda data: data["annotations"][0].update({field: value}))

    files = {name: (one(name, "keypoint", value), words) for name, (value, words) in CRAFTED_KEYPOINTS.items()}
    files["shared_lists"] = (one("shared_lists", "label", nested_shared_list(60)), f"more than {MAX_ITEMS:,} items")
    files["billion_classes"] = (one("billion_classes", "label", 10**9), "label 1000000000 is not a 0-based class")
    return files


ZEROS = bytes(4 << 20)


class ZeroBlocks:
    """A deflate compressor for zipfile that turns each 4 MiB block of zeros into one precomputed,
    independent deflate block: a member of gigabytes of zeros written in a moment."""
    block = None

    def compress(self, data) -> bytes:
        if data is ZEROS:
            if ZeroBlocks.block is None:
                c = zlib.compressobj(9, zlib.DEFLATED, -15)
                ZeroBlocks.block = c.compress(ZEROS) + c.flush(zlib.Z_FULL_FLUSH)
            return ZeroBlocks.block
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(bytes(data)) + c.flush(zlib.Z_FULL_FLUSH)

    def flush(self) -> bytes:
        return b"\x03\x00"   # an empty final block


def npz_with_zeros(path: Path, arrays: dict, key: str, shape: tuple, dtype: str, monkeypatch) -> Path:
    """An npz of ``arrays`` plus ``key``: an all-zero array of ``shape``, compressed (its CRC is not
    written: a reader that reads it to the end is refused there, after the damage)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, monkeypatch.context() as patch:
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", array_bytes(array))
        patch.setattr(zipfile, "_get_compressor", lambda *args: ZeroBlocks())
        patch.setattr(zipfile, "crc32", lambda data, crc=0: 0)
        with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                          "shape": shape})
            total = int(np.prod(shape)) * np.dtype(dtype).itemsize
            for _ in range(total // len(ZEROS)):
                member.write(ZEROS)
            member.write(bytes(total % len(ZEROS)))
    return path


def crafted_ctrgcn(demo: dict, folder: Path, monkeypatch) -> dict[str, tuple[Path, str]]:
    others = {key: demo[key] for key in ("x_test", "y_test")}
    one_sample = {"x_train": demo["x_train"][:1], "y_train": demo["y_train"][:1], **others}
    lying = folder / "lying_y.npz"
    with zipfile.ZipFile(lying, "w") as archive:     # a header of (1e7, 60) on 1 KB of data
        for name, array in {"x_train": demo["x_train"], **others}.items():
            archive.writestr(f"{name}.npy", array_bytes(array))
        archive.writestr("y_train.npy", array_bytes(np.zeros((16, 60)), shape=(10**7, 60)))
    return {
        "zero_labels": (npz_with_zeros(folder / "zero_labels.npz", {"x_train": demo["x_train"], **others},
                                       "y_train", (10**7, 60), "<f8", monkeypatch), "y_train: row 0 is not one-hot"),
        "long_sample": (npz_with_zeros(folder / "long_sample.npz", {k: v for k, v in one_sample.items()
                                                                    if k != "x_train"},
                                       "x_train", (1, 8 * 10**6, 150), "<f4", monkeypatch),
                        "number of frames per sample 8000000 is outside"),
        "lying_y": (lying, "declares a (10000000, 60) float64 array"),
    }


def array_bytes(array: np.ndarray, shape: tuple | None = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": array.dtype.str, "fortran_order": False,
                                              "shape": shape or array.shape})
    return out.getvalue() + array.tobytes()


MEASURE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (500 << 20, 500 << 20))
from pathlib import Path
from skeletons.pyskl import read_pyskl
from skeletons.ctrgcn import read_ctrgcn
for arg in sys.argv[1:]:
    path = Path(arg)
    try:
        data = (read_pyskl if path.suffix == ".pkl" else read_ctrgcn)(path)
        for _ in data.samples:
            pass
        print("read", path)
    except ValueError as error:
        print(str(error).replace(chr(10), " NEWLINE "))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("peak", status["VmHWM"].split()[0], status["VmPeak"].split()[0])   # KiB; ru_maxrss would count the parent's
"""


def test_small_files_that_declare_gigabytes_are_one_line_refusals_within_500_mb(tmp_path, monkeypatch, demo_pyskl,
                                                                                demo_npz):
    """Issue 26, item 6: each crafted file is refused in one line naming it, and the reader, run
    with its address space limited to 500 MB, never gets near it (MemoryError would show)."""
    files = crafted_pyskl(demo_pyskl, tmp_path) | crafted_ctrgcn(demo_npz, tmp_path, monkeypatch)
    assert files["zero_labels"][0].stat().st_size < 6 << 20 and files["shared_lists"][0].stat().st_size < 1 << 20
    proc = subprocess.run([sys.executable, "-c", MEASURE, *(str(p) for p, _ in files.values())], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == len(files) + 1, proc.stdout + proc.stderr
    for line, (name, (path, words)) in zip(lines, files.items()):
        assert line.startswith(f"{path}: ") and words in line and "NEWLINE" not in line, (name, line)
    _, resident, virtual = lines[-1].split()
    assert int(resident) < 500 << 10 and int(virtual) <= 500 << 10, lines[-1]


def test_a_protocol_5_pickle_is_plain_data(tmp_path, monkeypatch, demo_pyskl):
    monkeypatch.chdir(tmp_path)
    path = altered(demo_pyskl, tmp_path / "p5.pkl", protocol=5)
    assert b"_frombuffer" in path.read_bytes()
    ds = register_pyskl_dataset(path)
    for item in demo_pyskl["annotations"][:5]:
        assert np.array_equal(np.load(sample_file(ds, item["frame_dir"])), item["keypoint"].astype(np.float32))


def test_unpickler_reads_what_numpy_pickles_and_refuses_what_it_cannot_hold(tmp_path):
    value = {"a": np.arange(6, dtype=np.float16).reshape(2, 3), "f": np.asfortranarray(np.ones((2, 3))),
             "o": np.array([{"x": np.ones(2)}], dtype=object), "s": np.float32(1.5), "u": np.array(["ab", "c"]),
             "shared": [np.zeros(2)] * 2, "t": (1, np.int64(3)), "b": b"", "set": {1, 2}}
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"{protocol}.pkl"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        got, plain = load_pickle(path), pickle.loads(path.read_bytes())
        for key in ("a", "f", "u"):
            assert got[key].dtype == plain[key].dtype and np.array_equal(got[key], plain[key])
            assert got[key].flags.f_contiguous == plain[key].flags.f_contiguous
        assert type(got["o"][0]["x"]) is np.ndarray and got["shared"][0] is got["shared"][1]
        assert (got["s"], got["t"], got["b"], got["set"]) == (plain["s"], plain["t"], plain["b"], plain["set"])
    cycle: list = []
    cycle.append(cycle)
    deep: list = []
    for _ in range(200):
        deep = [deep]
    for value, words in ((cycle, "holds itself"), (deep, "nested more than 100 deep")):
        path = tmp_path / "bad.pkl"
        path.write_bytes(pickle.dumps(value, protocol=2))
        with pytest.raises(ValueError, match=words):
            load_pickle(path)


# ---------------------------------------------------------------- item 7: every sample not made is named

def test_split_names_absent_from_annotations_are_named(tmp_path, monkeypatch, capsys, demo_pyskl):
    monkeypatch.chdir(tmp_path)

    def drop(data):
        data["annotations"] = [a for a in data["annotations"] if a["frame_dir"] != VICTIM]
        data["split"]["xsub_val"].append("S099C001P001R001A001")   # listed, in no annotation

    path = altered(demo_pyskl, tmp_path / "f.pkl", drop)
    ds = register_pyskl_dataset(path)
    skipped = json.loads((unpacked_root(path, "pyskl") / ORIGIN_FILE).read_text())["skipped"]
    assert skipped == {VICTIM: "listed in xsub_val, xview_train but not among the file's samples",
                       "S099C001P001R001A001": "listed in xsub_val but not among the file's samples"}
    log = capsys.readouterr().err
    assert "unpacked 59 samples" in log and "2 not made" in log
    assert f"'{VICTIM}': listed in xsub_val, xview_train" in log and "'S099C001P001R001A001'" in log
    assert len(ds.custom.row_order("xsub", "test")) == 29


def test_ctrgcn_negative_label_is_named_not_dropped(tmp_path, monkeypatch, capsys, demo_npz):
    monkeypatch.chdir(tmp_path)
    arrays = dict(demo_npz)
    for part in ("train", "test"):   # (N,) class numbers, as some conversions write them
        arrays[f"y_{part}"] = arrays[f"y_{part}"].argmax(axis=1)
    arrays["y_train"][2] = -1
    path = tmp_path / "labels.npz"
    np.savez(path, **arrays)
    ds = register_ctrgcn_dataset(path)
    origin = json.loads((unpacked_root(path, "ctrgcn") / ORIGIN_FILE).read_text())
    assert origin["skipped"] == {"train_2": "label -1 is not a class number"} and origin["samples"] == 59
    assert "'train_2': label -1 is not a class number" in capsys.readouterr().err
    assert "train_2" not in ds.custom.row_order("split", "train") and len(ds.custom.row_order("split", "train")) == 29


def test_a_sample_in_both_parts_of_a_protocol_is_refused(tmp_path, monkeypatch, demo_pyskl):
    monkeypatch.chdir(tmp_path)
    leaked = demo_pyskl["split"]["xsub_train"][4]
    path = altered(demo_pyskl, tmp_path / "f.pkl", lambda data: data["split"]["xsub_val"].append(leaked))
    with pytest.raises(ValueError) as error:
        register_pyskl_dataset(path)
    message = one_line(error, path)
    assert f"sample '{leaked}' is in both 'xsub_train' and 'xsub_val'" in message and "remove it" in message
    assert not unpacked_root(path, "pyskl").exists()


# ---------------------------------------------------------------- one-line refusals that write nothing

@pytest.mark.parametrize("change, words", [
    (lambda data: data["annotations"][7].update(frame_dir=data["annotations"][3]["frame_dir"]),
     "annotations 3 and 7 have the same frame_dir"),
    (lambda data: data["split"].update(xsub_train="S001C001P001R001A001"),
     "split 'xsub_train' is a str, not a list of frame_dirs"),
    (lambda data: data["split"]["xview_train"].append(data["split"]["xview_train"][0]),
     "split 'xview_train' lists"),
    (lambda data: data["split"].update({"../x_train": [], "../x_val": []}), "a protocol name holds only"),
])
def test_malformed_pyskl_files_are_one_line_refusals(tmp_path, monkeypatch, demo_pyskl, change, words):
    monkeypatch.chdir(tmp_path)
    path = altered(demo_pyskl, tmp_path / "f.pkl", change)
    with pytest.raises(ValueError) as error:
        register_pyskl_dataset(path)
    assert words in one_line(error, path)
    assert not unpacked_root(path, "pyskl").exists()


def test_reader_refusals_name_the_file(tmp_path, demo_npz):
    """The npz reader reads a one-hot y a block at a time and names the first row that is not."""
    arrays = dict(demo_npz)
    arrays["y_test"] = arrays["y_test"].copy()
    arrays["y_test"][5] = 0
    path = tmp_path / "y.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as error:
        read_ctrgcn(path)
    assert "y_test: row 5 is not one-hot" in one_line(error, path)


def test_safe_unpickler_object_is_still_a_drop_in(tmp_path):
    """skeletons/ntu.py loads txt2npy's pickled dicts through SafeUnpickler(file, refuse).load()."""
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps(np.array({"skel_body0": np.ones((2, 25, 3))}), protocol=3))
    with open(path, "rb") as handle:
        value = SafeUnpickler(handle, lambda module, name: ValueError(name)).load()
    assert value.shape == () and np.array_equal(value.item()["skel_body0"], np.ones((2, 25, 3)))


@pytest.mark.parametrize("classes, split, words", [
    (["walk", "wave\nkick"], "train", "class name 'wave\\nkick' is not one non-empty line"),
    (["walk", "wave"], "train\nclip_9,2,test", "split 'train\\nclip_9,2,test' is not train or test"),
])
def test_custom_writer_refuses_values_that_would_add_rows(tmp_path, classes, split, words):
    """write_custom_dataset writes labels.csv with the csv module and refuses a class name or split
    that would become two lines (a second class, an injected sample)."""
    with pytest.raises(ValueError, match=re.escape(words)):
        write_custom_dataset(tmp_path / "d", {"clip_1": np.zeros((3, 17, 2))}, {"clip_1": 1}, {"clip_1": split},
                             classes)
    assert not (tmp_path / "d").exists()
