"""Chapters 1 and 4 (data, public datasets): sample grids, intensity histograms, slice counts against the
manifests, each recipe on a phantom, and the status of the paper's public datasets here."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medgan_core.book.demo import phantom_key, prepare_slices, write_ct_phantom
from medgan_core.evaluation.images import load_images


def sample_figure(folder, count: int, title: str):
    """Evenly spaced slices of a folder of PNGs in one row; returns (figure, all images uint8 [N, H, W, C])."""
    images, _ = load_images(folder)
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    fig, axes = plt.subplots(1, len(picks), figsize=(1.6 * len(picks), 1.9), squeeze=False)
    for ax, index in zip(axes[0], picks):
        ax.imshow(images[index, :, :, 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"#{index}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig, images


def histogram_figure(images: np.ndarray, title: str):
    """Pixel-value histogram (log counts) of a stack of uint8 slices."""
    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.bar(np.arange(256), np.bincount(images.ravel(), minlength=256), width=1.0, color="tab:blue")
    ax.set(yscale="log", xlim=(-1, 256), xlabel="8-bit value", ylabel="pixels (log)", title=title)
    fig.tight_layout()
    return fig


def count_row(name: str, made: int, expected, what: str, matches: bool) -> dict:
    return dict(recipe=name, slices_made=made, manifest_count=expected, what_the_count_is=what, matches=matches)


def report_row(name: str, report) -> dict:
    """A slice-count row from a PrepReport (the manifest's count and what that count is)."""
    return count_row(name, report.total, report.expected, report.expected_label, report.matches_expected)


def phantom_and_samples(work, n_samples: int):
    """The liver-ct recipe on the CT phantom (count checked against its masks with nibabel) and the
    pydicom-samples recipe; returns (printed lines, figures, count rows)."""
    import nibabel as nib

    work = Path(work)
    phantom = write_ct_phantom(work / "ct-phantom")
    ct_report = prepare_slices("liver-ct", work / "liver-ct-phantom", src=phantom, key_file=phantom_key(phantom))
    masks = sorted((phantom / "masks").iterdir())
    liver = sum(int((np.asarray(nib.load(p).dataobj) == 1).any(axis=(0, 1)).sum()) for p in masks)
    dicom_report = prepare_slices("pydicom-samples", work / "pydicom-samples")
    lines = [ct_report.summary(), f"slices with liver in the phantom's masks (counted with nibabel): {liver}; "
             f"slices written: {ct_report.total}", dicom_report.summary()]  # fmt: skip
    ct_fig, ct_images = sample_figure(work / "liver-ct-phantom", n_samples, "liver-ct on the phantom (L 50 / W 350)")
    dicom_fig, axes = plt.subplots(1, 3, figsize=(8, 2.8), squeeze=False)
    for ax, path in zip(axes[0], sorted((work / "pydicom-samples").glob("*.png"))):
        image = plt.imread(path)
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{image.shape[1]}x{image.shape[0]}", fontsize=9)
        ax.axis("off")
    dicom_fig.suptitle("pydicom's real CT, MR and computed radiograph after their recipes", fontsize=10)
    hist = histogram_figure(ct_images, "liver-ct phantom: pixel values (air 0, body and liver mid-range, marker 255)")
    rows = [
        count_row(
            "liver-ct (phantom)",
            ct_report.total,
            liver,
            "liver slices in the phantom's masks",
            ct_report.total == liver,
        ),  # fmt: skip
        report_row("pydicom-samples", dicom_report),
    ]
    return lines, [ct_fig, dicom_fig, hist], rows


def public_status(data_root, runs_root) -> tuple[pd.DataFrame, list[str]]:
    """Per public dataset: slices prepared here, runs and our best FRD/FID; plus, for each without a result,
    where to get it (source URL, licence) and the commands to prepare and train it."""
    from medgan_core.book.paper import PAPER_PUBLIC
    from medgan_core.book.runs import find_runs
    from medgan_core.data.recipes import load_manifest

    rows, missing = [], []
    for dataset, row in PAPER_PUBLIC.iterrows():
        recipe = row["recipe"]
        slices = Path(data_root) / recipe
        runs = find_runs(runs_root, f"{recipe}-seed*")
        best = [run.best()["value"] for run in runs if run.best() is not None]
        rows.append(dict(dataset=dataset, recipe=recipe, slices_here=len(list(slices.glob("*.png"))),
                         paper_images=row["images"], runs_here=len(runs),
                         our_best=min(best) if best else np.nan))  # fmt: skip
        if not best:
            source = load_manifest(recipe)["source"]
            missing.append(
                f"{dataset}: {source['url']} (licence: {' '.join(str(source['licence']).split())}); then "
                f"`medgan prep {recipe} --src DOWNLOAD --out {data_root}/{recipe}`, `medgan dataset --source "
                f"{data_root}/{recipe} --dest {data_root}/{recipe}.zip` and experiment 4 into "
                f"`{runs_root}/{recipe}-seed0`"
            )
    return pd.DataFrame(rows).set_index("dataset"), missing


def phantom_recipes(work):
    """Each public recipe on a phantom in the dataset's real layout; returns (figure, table of counts)."""
    from medgan_core.data import phantoms

    writers = {
        "sliver07": phantoms.write_sliver07_phantom,
        "acdc": phantoms.write_acdc_phantom,
        "msd-brain": phantoms.write_msd_brain_phantom,
        "chestxray14": lambda root: phantoms.write_chestxray_phantom(root, count=2),
    }
    fig, axes = plt.subplots(1, len(writers), figsize=(10, 2.8))
    counts = []
    for ax, (recipe, write) in zip(axes, writers.items()):
        src = Path(work) / f"{recipe}-src"
        if not src.is_dir():
            write(src)
        report = prepare_slices(recipe, Path(work) / recipe, src=src)
        images, _ = load_images(Path(work) / recipe)
        size = f"{images.shape[1]}x{images.shape[2]}"
        counts.append(dict(recipe=recipe, phantom_slices=report.total, failures=len(report.failures), size=size))
        ax.imshow(images[len(images) // 2, :, :, 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{recipe} ({images.shape[1]} px)", fontsize=9)
        ax.axis("off")
    fig.suptitle("One slice per recipe, from phantoms (not real data)", fontsize=10)
    return fig, pd.DataFrame(counts).set_index("recipe")
