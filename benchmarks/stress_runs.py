"""Stress: can concurrent and killed runs mix or lose each other's results? (docs/CHECKS.md)

    python benchmarks/stress_runs.py [--seconds 180] [--seed 0] [--work DIR]

On the demo's NTU-60 csub split (32-px images): a clean serial run first trains GD and JDD
(--cache --verify-cache) and evaluates them. Then, for --seconds, random events on one shared
descriptor root and one shared checkpoint folder: trainings of either model started (several
at once, so they collide on the same checkpoints), trainings killed with SIGKILL at random
moments, skels2desc reruns of the split while trainings read it, and --cache packs damaged at
random (truncated, emptied or altered) while no process maps them. At the end every model is
finished by rerunning its command, and the script checks that every checkpoint records the
folders it was trained on, that test.py's table equals the serial run's, and that every
killed or refused run left the finished epochs in place. Prints the counts of each event.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from descriptors import provenance  # noqa: E402
from descriptors.dataset import CACHE_DIR  # noqa: E402
from descriptors.names import descriptor_dir  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.names import checkpoint_path  # noqa: E402
from skeletons.datasets import Split  # noqa: E402

try:
    import fcntl
except ImportError:  # pragma: no cover - Linux only, as the locks are
    fcntl = None

MODELS = ("GD", "JDD")
EPOCHS = "30"   # long enough (10-20 s a run here) for kills and collisions mid-run


def run(*command: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, **kw)


def prepare(work: Path) -> tuple[Path, Path]:
    """Demo data, converted and extracted: (sequence folder, descriptor root)."""
    run("-m", "demo", "--out", str(work / "demo"), check=True)
    npy = work / "npy"
    run("txt2npy.py", "-d", "ntu60", "-txt", str(work / "demo/ntu/txt60skel"), "-npy", str(npy), "--no-progress",
        check=True)
    root = work / "descriptors"
    for part in ("train", "test"):
        run("skels2desc_ntu.py", "-d", "ntu60", "-p", "csub", "-dspath", str(npy), "-despth", str(root), "-a", part,
            "--img-size", "32", "--quiet", check=True)
    return npy, root


def train_command(root: Path, ckpt: Path, desc: str) -> list[str]:
    return ["train.py", "-d", "ntu60", "-p", "csub", "-desc", desc, "-gpu", "-1", "-despth", str(root), "-ckpt",
            str(ckpt), "--epochs", EPOCHS, "--width", "0.0625", "--batch-size", "16", "--lr", "1e-3", "--workers", "0",
            "--cache", "--verify-cache", "--no-progress"]


def table(root: Path, ckpt: Path) -> list:
    result = run("test.py", "-d", "ntu60", "-p", "csub", "-desc", "all", "-gpu", "-1", "-despth", str(root),
                 "-ckpt", str(ckpt), "--epoch", "last", "--workers", "0", "--out", str(ckpt / "results"))
    if result.returncode != 0:
        return []
    doc = json.loads(next((ckpt / "results").glob("*_results.json")).read_text())
    return [(row["key"], row["top1"], row["top5"]) for row in doc["rows"]]


def damage_at_rest(pack: Path, rng: random.Random) -> bool:
    """Damage the pack unless a process maps it (its PackHold); locked meanwhile, so a run that
    opens it sees it before or after the damage, as with a disk that fails at rest."""
    if fcntl is None:
        return False
    fd = os.open(pack, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    try:
        damage(pack, rng)
    finally:
        os.close(fd)
    return True


def damage(pack: Path, rng: random.Random) -> str:
    how = rng.choice(("truncate", "empty", "alter"))
    data = bytearray(pack.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = bytearray()
    else:
        data[rng.randrange(128, len(data))] ^= 0xFF
    pack.write_bytes(bytes(data))
    return how


def stress(root: Path, npy: Path, ckpt: Path, seconds: float, rng: random.Random) -> dict:
    counts = dict(started=0, finished=0, refused_busy=0, killed=0, extractions=0, extractions_refused=0,
                  packs_damaged=0, other_failures=0)
    running: list[subprocess.Popen] = []
    logs: list[Path] = []
    ckpt.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in [p for p in running if p.poll() is not None]:
            running.remove(p)
            counts["finished" if p.returncode == 0 else "refused_busy" if p.returncode == 2 and
                   "held by process" in p.log.read_text() else "killed" if p.returncode == -9 else
                   "other_failures"] += 1
        event = rng.random()
        if event < 0.45 and len(running) < 3:
            log = ckpt.parent / f"run{counts['started']}.log"
            logs.append(log)
            with open(log, "w") as out:
                wait = ["--wait"] if rng.random() < 0.3 else []   # some wait for the run they collide with
                p = subprocess.Popen([sys.executable, *train_command(root, ckpt, rng.choice(MODELS)), *wait],
                                     cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            p.log = log
            running.append(p)
            counts["started"] += 1
        elif event < 0.7 and running:
            rng.choice(running).send_signal(signal.SIGKILL)
        elif event < 0.85:
            counts["extractions"] += 1
            result = run("skels2desc_ntu.py", "-d", "ntu60", "-p", "csub", "-dspath", str(npy), "-despth", str(root),
                         "-a", rng.choice(("train", "test")), "--img-size", "32", "--quiet")
            counts["extractions_refused"] += result.returncode == 2 and "in use by process" in result.stderr
        else:
            packs = [p for p in (root / CACHE_DIR).glob("*.npy") if p.stat().st_size > 128]
            if packs and damage_at_rest(rng.choice(packs), rng):
                counts["packs_damaged"] += 1
        time.sleep(rng.uniform(0.2, 1.5))
    for p in running:
        p.wait()
    counts["damaged_packs_caught"] = sum(log.read_text().count("damaged --cache pack") for log in logs)
    return counts


def check(root: Path, ckpt: Path) -> int:
    """Finish every model by its own command, as a user would, and check what its checkpoints
    record against the folders; the damaged packs these last runs caught."""
    caught = 0
    for desc in MODELS:
        result = run(*train_command(root, ckpt, desc))
        assert result.returncode == 0, result.stdout + result.stderr
        caught += result.stderr.count("damaged --cache pack")
        last = load_checkpoint(checkpoint_path(ckpt, "ntu60", "csub", desc, "last"))
        assert last.epoch == int(EPOCHS) and [r["epoch"] for r in last.raw["history"]] == list(range(1, int(EPOCHS) + 1))
        for part, descs in last.settings["data"].items():
            folder = descriptor_dir(root, Split.of("ntu60", "csub", part), desc)
            record = provenance.read_record(folder)
            assert descs[desc]["fingerprint"] == record["fingerprint"], (desc, part)
    return caught


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="work folder (default: a temp folder, removed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="stress_"))
    try:
        npy, root = prepare(work)
        serial = work / "serial"
        for desc in MODELS:
            run(*train_command(root, serial, desc), check=True)
        reference = table(root, serial)
        started = time.monotonic()
        counts = stress(root, npy, work / "shared" / "checkpoints", args.seconds, random.Random(args.seed))
        counts["damaged_packs_caught"] += check(root, work / "shared" / "checkpoints")
        same = table(root, work / "shared" / "checkpoints") == reference and bool(reference)
        print(f"{time.monotonic() - started:.0f} s of stress, seed {args.seed}: " +
              ", ".join(f"{k} {v}" for k, v in counts.items()))
        print(f"every checkpoint records the folders it was trained on; test.py table equal to the serial run's: "
              f"{same}")
        sys.exit(0 if same else 1)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
