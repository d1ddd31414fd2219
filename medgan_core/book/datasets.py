"""Chapters 1 and 4 (data, public datasets): sample grids, intensity histograms, slice counts against the
manifests, each recipe on a phantom, and the status of the paper's public datasets here."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medgan_core.book.demo import PHANTOM_VERSION, phantom_key, prepare_slices, write_ct_phantom
from medgan_core.evaluation.images import load_images

PAGE_WIDTH_IN = 8.0  # figure width that the book shows at about its natural size (column ~ 800 px at 100 dpi)
PER_ROW = 4  # images per row of a strip: titles stay legible at page width


def image_grid(images, titles, title: str, per_row: int = PER_ROW, cmap: str = "gray"):
    """Images in rows of at most `per_row`, at page width, each with its own title (fontsize legible in the book)."""
    count = len(images)
    columns = max(1, min(per_row, count))
    rows = max(1, -(-count // columns))
    side = PAGE_WIDTH_IN / columns
    fig, axes = plt.subplots(rows, columns, figsize=(PAGE_WIDTH_IN, side * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, text in zip(axes.ravel(), images, titles):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=255)
        ax.set_title(text, fontsize=11)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def sample_figure(folder, count: int, title: str):
    """Evenly spaced slices of a folder of PNGs, in rows; returns (figure, all images uint8 [N, H, W, C])."""
    images, _ = load_images(folder)
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    titles = [f"slice {index + 1} of {len(images)}" for index in picks]
    return image_grid([images[i, :, :, 0] for i in picks], titles, title), images


def histogram_figure(images: np.ndarray, title: str):
    """Pixel-value histogram (log counts) of a stack of uint8 slices."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 3.2))
    ax.bar(np.arange(256), np.bincount(images.ravel(), minlength=256), width=1.0, color="tab:blue")
    ax.set(yscale="log", xlim=(-1, 256), xlabel="8-bit value", ylabel="pixels (log)", title=title)
    fig.tight_layout()
    return fig


CT_CLASSES = {  # 8-bit ranges of the liver window (L 50 / W 350: -125 HU -> 0, 225 HU -> 255)
    "air and gas (0)": (0, 0),
    "fat (1-60)": (1, 60),
    "muscle, bowel, liver, spleen (61-160)": (61, 160),
    "contrast and bone (161-254)": (161, 254),
    "saturated: marker (255)": (255, 255),
}


def intensity_classes(images: np.ndarray, classes: dict = CT_CLASSES) -> str:
    """The share of pixels in each named 8-bit range, in words (only the ranges that occur)."""
    values = np.asarray(images).ravel()
    parts = []
    for name, (low, high) in classes.items():
        share = float(((values >= low) & (values <= high)).mean())
        if share > 0:
            parts.append(f"{name} {share:.1%}")
    return "; ".join(parts) if parts else "no pixels"


def settings_table(recipe: str) -> pd.DataFrame:
    """A recipe's preprocessing settings, one row per setting (nested settings as 'slice_selection: labels')."""
    from medgan_core.data.recipes import Recipe

    rows = {}
    for name, value in Recipe.from_name(recipe).manifest["preprocessing"].items():
        if isinstance(value, dict):
            rows.update({f"{name}: {key}": str(inner) for key, inner in value.items()})
        else:
            rows[name] = str(value)
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)}).rename_axis("setting")


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
    lines.append(f"phantom slices by 8-bit range: {intensity_classes(ct_images)}")
    dicom = [plt.imread(path) for path in sorted((work / "pydicom-samples").glob("*.png"))]
    dicom_fig = image_grid([255 * image for image in dicom], [f"{i.shape[1]}x{i.shape[0]}" for i in dicom],
                           "pydicom's real CT, MR and computed radiograph after their recipes", per_row=3)  # fmt: skip
    hist = histogram_figure(ct_images, f"liver-ct phantom: pixel values of all {len(ct_images)} slices")
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
    from medgan_core.book.display import dash_missing

    return dash_missing(pd.DataFrame(rows).set_index("dataset")), missing


def phantom_recipes(work):
    """Each public recipe on a phantom in the dataset's real layout; returns (figure, table of counts)."""
    from medgan_core.data import phantoms

    writers = {  # in-plane sizes like the real data's (padded to the recipe's size), so a slice is not a dot
        "sliver07": lambda root: phantoms.write_sliver07_phantom(root, shape_zyx=(10, 512, 512)),
        "acdc": lambda root: phantoms.write_acdc_phantom(root, frames=4, shape_zyx=(6, 216, 256)),
        "msd-brain": lambda root: phantoms.write_msd_brain_phantom(root, shape_zyx=(8, 200, 160)),
        "chestxray14": lambda root: phantoms.write_chestxray_phantom(root, count=2),
    }
    counts, shown, titles = [], [], []
    for recipe, write in writers.items():
        src = Path(work) / f"{recipe}-src"
        if not (src / "phantom.json").is_file():
            shutil.rmtree(src, ignore_errors=True)  # an older phantom: written anew
            write(src)
            (src / "phantom.json").write_text(f"{PHANTOM_VERSION}\n")
        report = prepare_slices(recipe, Path(work) / recipe, src=src)
        images, _ = load_images(Path(work) / recipe)
        size = f"{images.shape[1]}x{images.shape[2]}"
        counts.append(dict(recipe=recipe, phantom_slices=report.total, failures=len(report.failures), size=size))
        richness = [len(np.unique(image)) for image in images[:, :, :, 0]]
        shown.append(images[int(np.argmax(richness)), :, :, 0])  # the slice with the most distinct values
        titles.append(f"{recipe} ({images.shape[1]} px)")
    fig = image_grid(shown, titles, "One slice per recipe, from phantoms (not real data)", per_row=2)
    return fig, pd.DataFrame(counts).set_index("recipe")
