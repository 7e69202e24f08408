"""Does a checkpoint fit what it is asked to read? Its recorded descriptor, dataset and protocol
against its file name, and the mode, image size and skeleton layout of its training images against
the folders (or the sample) it is evaluated on. Refusals are one line naming the field and the fix.

Checkpoints of the authors' release record nothing; they are accepted as paper-mode models and
the caller says so once.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from common.provenance import check_class_names, refusal
import descriptors.registry as registry
from descriptors import provenance
from skeletons.datasets import class_names
from skeletons.layouts import Layout, layout_record

from .checkpoint import Checkpoint, CheckpointError

ROLE_FIELDS = ("descriptor", "dataset", "protocol")
RELEASE_NOTICE = ("note: {names}: the release's checkpoint files record neither the descriptor mode nor the "
                  "image size they were trained with; assuming paper mode as released")


def check_role(ckpt: Checkpoint, name: str, dataset: str, protocol: str, retrain: str) -> None:
    """Refuse a checkpoint that records another descriptor, dataset or protocol than its name says
    (e.g. a JDD model copied to the GD name), or other class names, in name or order, than the
    dataset has now (a classes.txt edited or reordered since training)."""
    expected = {"descriptor": name, "dataset": dataset, "protocol": protocol}
    differ = [f"{k} {ckpt.settings[k]}" for k in ROLE_FIELDS
              if ckpt.settings.get(k) is not None and ckpt.settings[k] != expected[k]]
    if differ:
        raise CheckpointError(f"{ckpt.path}: holds a model trained for {', '.join(differ)}, not "
                              f"{dataset} {protocol} {name}; use the right file or retrain: {retrain}")
    check_class_names(ckpt.settings.get("class_names") if ckpt.kind == "ours" else None, class_names(dataset),
                      file=ckpt.path, fix=f"use checkpoints trained on these classes (-ckpt), or retrain: {retrain}")
    check_codes(ckpt, name, retrain)


def trained_codes(ckpt: Checkpoint) -> dict[str, str]:
    """{descriptor: digest of its code} of the images a model was trained on (as its folders' records
    said); empty for the release's files and for models trained before codes were recorded."""
    data = ckpt.settings.get("data") if ckpt.kind == "ours" else None
    codes = {}
    for part in (data.values() if isinstance(data, dict) else ()):
        for desc, facts in (part.items() if isinstance(part, dict) else ()):
            if isinstance(facts, dict) and facts.get(provenance.CODE_FIELD):
                codes.setdefault(desc, facts[provenance.CODE_FIELD])
    return codes


def check_codes(ckpt: Checkpoint, name: str, retrain: str) -> None:
    """Refuse a model trained on images that another version of a descriptor's code made: the
    images made now, or read from folders made now, are not those it learnt."""
    for desc, code in trained_codes(ckpt).items():
        if desc in registry.REGISTRY and code != registry.code_digest(desc):
            raise refusal(ckpt.path, [f"{desc} code: {code} -> {registry.code_digest(desc)}"],
                          f"remake the images and retrain: {retrain}",
                          made=f"trained on images of another version of the {desc} code", direction="model -> now",
                          error=CheckpointError)


def trained_pixels(ckpt: Checkpoint) -> dict:
    """{"mode", "img_size", "layout"} of the images the model was trained on (those it records);
    empty for the release's files."""
    if ckpt.kind != "ours":
        return {}
    return {k: ckpt.settings[k] for k in provenance.PIXEL_FIELDS if ckpt.settings.get(k) is not None}


def layout_refusal(ckpt: Checkpoint, differ: str, what: str, retrain: str) -> CheckpointError:
    """The one-line refusal of a model trained on skeletons of another layout than ``what`` holds."""
    return refusal(ckpt.path, [differ], f"use checkpoints trained on this layout (-ckpt), or train them: {retrain}",
                   made=f"trained on skeletons of another layout than {what}", direction="model -> data",
                   error=CheckpointError)


def check_against_folder(ckpt: Checkpoint, folder: Path, record: dict | None, measured_size: int,
                         remake: Callable[[Path, dict], str], retrain: str) -> None:
    """Refuse evaluating a model on images made in another mode, at another size or from skeletons
    of another layout than its own. The fix never remakes ``folder``, which other models may read:
    ``remake(root, settings)`` is the command that makes the split's images with ``settings`` under
    another root."""
    trained = trained_pixels(ckpt)
    found = dict(record or {}, img_size=(record or {}).get("img_size", measured_size))
    if layout := provenance.differences(trained, found, ("layout",)):
        raise layout_refusal(ckpt, layout[0], str(folder), retrain)
    differ = provenance.differences(trained, found, provenance.PIXEL_FIELDS)
    if differ:
        wanted = {k: trained[k] for k in ("mode", "img_size") if k in trained}
        root = folder.parent
        elsewhere = root.with_name(f"{root.name}_{'_'.join(str(v) for v in wanted.values())}px")
        raise refusal(ckpt.path, differ, f"that folder stays as it is (other models may read it): make the model's "
                      f"images in another folder with: {remake(elsewhere, wanted)}, and evaluate with -despth "
                      f"{elsewhere}; or retrain the model on these images: {retrain}",
                      made=f"trained on other images than {folder} holds", direction="model -> folder",
                      error=CheckpointError)


def check_layout(ckpt: Checkpoint, layout: Layout, what: str, retrain: str) -> None:
    """Refuse a model trained on skeletons of another layout than ``layout`` (that of the data ``what``)."""
    if differ := provenance.differences(trained_pixels(ckpt), {"layout": layout_record(layout)}, ("layout",)):
        raise layout_refusal(ckpt, differ[0], what, retrain)


def check_consistent(ckpts: dict[str, Checkpoint]) -> dict:
    """The one (mode, img_size, layout) all models were trained with; refuse models that disagree."""
    pixels = {name: trained_pixels(c) for name, c in ckpts.items()}
    known = [(n, p) for n, p in pixels.items() if p]
    for name, p in known[1:]:
        differ = provenance.differences(known[0][1], p, provenance.PIXEL_FIELDS)
        if differ:
            raise CheckpointError(f"{ckpts[name].path}: trained on other images than {ckpts[known[0][0]].path} "
                                  f"({'; '.join(differ)}); their predictions cannot be fused")
    return known[0][1] if known else {}
