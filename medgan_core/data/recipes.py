"""The paper's preprocessing recipes, each driven by its YAML manifest in `data_manifests/`.

A manifest names where the inputs are (`inputs`), how to turn each into 8-bit slices (`preprocessing`) and the
paper's output count (`paper.output_count`). `Recipe.discover` lists the work items of a source folder in a
deterministic order; `Recipe.plan` reads one item and plans its slices ``[(frame, slice_index, render)]``
where ``render()`` gives the uint8 [S, S] slice, and counts the slices the selection dropped
(`Recipe.render_all` renders them at once). Odd but usable input (a mask without a scan, a mask without the
wanted labels) raises a `DataWarning` naming the file.
The recipe reads every parameter from the manifest, so code and documentation cannot drift apart.

Input kinds:
- ``glob``: every file matching `patterns` under the source folder (dot-files such as macOS "._x" skipped);
- ``paired``: volumes under `images/` (files or DICOM series folders) with a mask of the same stem in `masks/`;
- ``bundled``: files shipped with PyPI packages ("nilearn:...", "pydicom:..."); the source folder is unused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from medgan_core.data import transforms
from medgan_core.data.embedded import resolve
from medgan_core.data.readers import NIFTI_SUFFIXES, DataWarning, ReadError, input_files, read_image

MANIFEST_DIR = Path(os.environ.get("MEDGAN_MANIFESTS", Path(__file__).resolve().parents[2] / "data_manifests"))
VOLUME_SUFFIXES = NIFTI_SUFFIXES + (".mhd", ".mha", ".nrrd", ".dcm")

DEFAULT_PREPROCESSING = {
    "modality": None,
    "reorient": "canonical",  # or "in-plane" (keep the stored slice axis) or "none"
    "channel": None,
    "intensity": {"method": "none"},
    "slice_selection": {"method": "all"},
    "size": 512,
    "fit": "pad",
    "resize_filter": "lanczos",
}


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """One source (a file or a DICOM series folder) and what the recipe needs beside it."""

    relative: str  # POSIX path relative to the source root ("pydicom/CT_small.dcm" for bundled files)
    path: Path
    mask: Path | None = None
    frames: tuple[int, ...] | None = None  # 0-based frames of a 4-D time series (ACDC ED and ES)
    overrides: dict | None = None  # per-source preprocessing (bundled samples of several modalities)


@dataclasses.dataclass(frozen=True)
class SlicePlan:
    """One source's planned slices [(frame or None, slice index, render)] and how many the selection dropped."""

    slices: list[tuple[int | None, int, Callable[[], np.ndarray]]]
    dropped: int = 0


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def manifest_path(name: str) -> Path:
    """data_manifests/<name>.yaml (or $MEDGAN_MANIFESTS/<name>.yaml); a path to a YAML file is used as is."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = MANIFEST_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_recipes()) or "none"
        raise FileNotFoundError(
            f"no manifest {path} for recipe {name!r} (known recipes: {known}); give a recipe name, a path to a "
            "manifest YAML, or set MEDGAN_MANIFESTS to the data_manifests/ folder of a medgan checkout"
        )
    return path


def available_recipes() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml")) if MANIFEST_DIR.is_dir() else []


def load_manifest(name: str) -> dict:
    path = manifest_path(name)
    with open(path, encoding="utf-8") as f:
        manifest = yaml.safe_load(f)
    for key in ("name", "inputs", "preprocessing", "paper"):
        if key not in (manifest or {}):
            raise ValueError(f"{path}: manifest lacks the '{key}' section")
    return manifest


def read_frames_config(path: Path, keys: list[str], base: int) -> tuple[int, ...]:
    """ACDC Info.cfg lines 'ED: 1' / 'ES: 12' (1-based frame numbers) -> 0-based frames in `keys` order."""
    if not path.is_file():
        raise ReadError(f"{path}: frame list missing (needs lines like 'ED: 1' and 'ES: 12')")
    values = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(r"\s*([A-Za-z]+)\s*:\s*(\d+)\s*$", line)
        if match:
            values[match.group(1)] = int(match.group(2))
    missing = [k for k in keys if k not in values]
    if missing:
        raise ReadError(f"{path}: no {', '.join(missing)} frame number")
    return tuple(values[k] - base for k in keys)


class Recipe:
    """A preprocessing recipe: source scans -> 8-bit square PNG slices, parameters from its manifest."""

    def __init__(self, manifest: dict):
        self.manifest = manifest
        self.name = str(manifest["name"])
        self.inputs = dict(manifest["inputs"])
        self.params = {**DEFAULT_PREPROCESSING, **(manifest.get("preprocessing") or {})}
        paper = manifest.get("paper") or {}
        self.expected_count = paper.get("output_count")
        self.extra_count = paper.get("extra_output_count")
        self.expected_label = "not a paper figure" if paper.get("output_count_how") else "the paper's count"
        self.expected_dropped = paper.get("dropped_count")  # slices the selection drops, where the manifest says

    @classmethod
    def from_name(cls, name: str) -> Recipe:
        return cls(load_manifest(name))

    # -- discovery ----------------------------------------------------------------------------------------------

    def discover(self, src: str | Path | None) -> list[WorkItem]:
        """Work items in a deterministic order (sorted relative paths)."""
        kind = self.inputs.get("kind")
        if kind == "bundled":
            return self._discover_bundled()
        if src is None:
            raise ValueError(f"recipe {self.name} needs --src (the downloaded dataset folder)")
        src = Path(src)
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: source folder not found")
        if kind == "glob":
            return self._discover_glob(src)
        if kind == "paired":
            return self._discover_paired(src)
        raise ValueError(f"recipe {self.name}: unknown inputs kind {kind!r}")

    def _discover_bundled(self) -> list[WorkItem]:
        items = []
        for entry in self.inputs["files"]:
            entry = {"source": entry} if isinstance(entry, str) else dict(entry)
            source = entry.pop("source")
            relative = source.replace(":", "/", 1)
            items.append(WorkItem(relative, resolve(source), overrides=entry or None))
        return items

    def _discover_glob(self, src: Path) -> list[WorkItem]:
        found: set[Path] = set()
        for pattern in self.inputs["patterns"]:
            found.update(p for p in src.glob(pattern) if not any(part.startswith(".") for part in p.parts))
        frames_spec = self.inputs.get("frames")
        items = []
        for path in sorted(found, key=lambda p: p.relative_to(src).as_posix()):
            frames = None
            if frames_spec:
                config = path.parent / frames_spec["file"]
                frames = read_frames_config(config, list(frames_spec["keys"]), int(frames_spec.get("base", 1)))
            items.append(WorkItem(path.relative_to(src).as_posix(), path, frames=frames))
        if not items:
            raise FileNotFoundError(f"{src}: no inputs match {self.inputs['patterns']} (see the manifest's layout)")
        return items

    def _discover_paired(self, src: Path) -> list[WorkItem]:
        images_dir, masks_dir = src / self.inputs.get("images", "images"), src / self.inputs.get("masks", "masks")
        if not images_dir.is_dir():
            raise FileNotFoundError(f"{images_dir}: expected a folder of scans (see the manifest's layout)")
        masks = {}
        if masks_dir.is_dir():
            for path in sorted(masks_dir.iterdir()):
                if not path.name.startswith("."):
                    masks[_stem(path)] = path
        items = []
        for path in sorted(images_dir.iterdir()):
            if path.name.startswith(".") or not (path.is_dir() or path.name.lower().endswith(VOLUME_SUFFIXES)):
                continue
            items.append(WorkItem(path.relative_to(src).as_posix(), path, mask=masks.pop(_stem(path), None)))
        if not items:
            raise FileNotFoundError(f"{images_dir}: no scans found")
        for mask in masks.values():  # left over: no scan of that name
            warnings.warn(
                DataWarning(mask, f"mask without a scan of the same name in {images_dir.name}/"), stacklevel=2
            )
        return items

    # -- processing ---------------------------------------------------------------------------------------------

    def item_params(self, item: WorkItem) -> dict:
        return {**self.params, **(item.overrides or {})}

    def input_files(self, item: WorkItem) -> list[tuple[str, Path]]:
        """(label, path) of every file an item's slices depend on: the scan's files, then its mask's."""
        files = []
        for role, path in (("scan", item.path), ("mask", item.mask)):
            if path is not None:
                base = path if path.is_dir() else path.parent  # a DICOM folder's files by their path inside it
                files += [(f"{role}/{file.relative_to(base).as_posix()}", file) for file in input_files(path)]
        return files

    def settings_text(self, item: WorkItem) -> str:
        """The recipe's settings for one item as canonical JSON (part of the item's input digest)."""
        return json.dumps([self.name, self.item_params(item), item.frames], sort_keys=True, default=str)

    def plan(self, item: WorkItem) -> SlicePlan:
        """Read one source and plan its slices: [(frame or None, slice index, render)], plus the dropped count.

        `render()` returns the finished uint8 [size, size] slice. Reading, checks (dimensionality, NaNs, masks,
        sizes) and slice selection happen here, so bad input fails before anything is written; the per-slice
        mapping runs in `render`, in the writer threads.
        """
        params = self.item_params(item)
        array, meta = read_image(item.path, modality=params["modality"], reorient=params["reorient"])
        if meta.format == "png":
            array = transforms.to_grayscale(array)[None]  # [1, H, W]
        size, fit = int(params["size"]), params["fit"]
        slices, dropped = [], 0
        for frame, volume in self._split_volumes(array, params, item):
            transforms.check_finite(volume, "volume")
            transforms.check_fit(volume.shape[1:], size, fit)
            mapping = self._intensity(volume, params)
            selected = self._select(volume, meta, mapping, params, item)
            dropped += volume.shape[0] - len(selected)
            for index in selected:
                render = functools.partial(_render, volume, int(index), mapping, size, fit, params["resize_filter"])
                slices.append((frame, int(index), render))
        return SlicePlan(slices, dropped)

    def process(self, item: WorkItem) -> list[tuple[int | None, int, Callable[[], np.ndarray]]]:
        """`plan(item).slices`."""
        return self.plan(item).slices

    def render_all(self, item: WorkItem) -> list[tuple[int | None, int, np.ndarray]]:
        """`process` with every slice rendered: [(frame or None, slice index, uint8 [size, size])]."""
        return [(frame, index, render()) for frame, index, render in self.process(item)]

    def _split_volumes(self, array: np.ndarray, params: dict, item: WorkItem) -> list[tuple[int | None, np.ndarray]]:
        channel, frames = params["channel"], item.frames
        if channel is not None or frames is not None:
            if array.ndim != 4:
                raise ValueError(f"expected a 4-D volume (channels or frames), got shape {array.shape}")
            if channel is not None:
                return [(None, transforms.extract_channel(array, int(channel)))]
            return [(frame, transforms.extract_channel(array, frame)) for frame in frames]
        if array.ndim != 3:
            raise ValueError(f"expected a 3-D volume, got shape {array.shape}")
        return [(None, array)]

    @staticmethod
    def _intensity(volume: np.ndarray, params: dict) -> Callable[[np.ndarray], np.ndarray]:
        """The volume's value -> uint8 mapping (monotonic non-decreasing), to apply slice by slice."""
        spec = params["intensity"]
        method = spec.get("method", "none")
        if method == "window":
            return functools.partial(transforms.window, level=float(spec["level"]), width=float(spec["width"]))
        if method == "rescale":  # per volume: the volume's min and max, applied to each slice
            low, high = float(volume.min()), float(volume.max())
            return functools.partial(transforms.rescale_intensity, low=low, high=high)
        if method == "none":
            if volume.dtype != np.uint8:
                raise ValueError(f"expected 8-bit pixels, got {volume.dtype} (set an intensity method)")
            return np.asarray
        raise ValueError(f"unknown intensity method {method!r} (window, rescale or none)")

    def _select(self, volume: np.ndarray, meta, mapping, params: dict, item: WorkItem) -> np.ndarray:
        spec = params["slice_selection"]
        method = spec.get("method", "all")
        if method == "all":
            return np.arange(volume.shape[0])
        if method == "nonempty":  # keep slices with at least min_fraction of their pixels mapped above threshold
            threshold, min_fraction = int(spec.get("threshold", 0)), float(spec.get("min_fraction", 0.0))
            if min_fraction <= 0:  # any pixel: the mapping is monotonic, so test the mapping of each slice's maximum
                brightest = mapping(volume.reshape(volume.shape[0], -1).max(axis=1))
                return np.flatnonzero(brightest > threshold)
            fractions = np.array([np.mean(mapping(plane) > threshold) for plane in volume])
            return np.flatnonzero(fractions >= min_fraction)
        if method == "mask":
            if item.mask is None:
                raise ReadError(f"{item.path}: no mask with the same name in the masks folder")
            mask, mask_meta = read_image(item.mask, reorient=params["reorient"])
            if mask.shape != volume.shape:
                raise ReadError(f"{item.mask}: mask shape {mask.shape} does not match the scan's {volume.shape}")
            if meta.origin_lps_mm is not None and mask_meta.origin_lps_mm is not None:
                half_voxel = 0.5 * min(meta.spacing_mm)
                offset = np.abs(np.subtract(mask_meta.origin_lps_mm, meta.origin_lps_mm)).max()
                if offset > half_voxel or not np.allclose(mask_meta.spacing_mm, meta.spacing_mm, rtol=1e-3):
                    raise ReadError(f"{item.mask}: mask grid (origin or spacing) differs from the scan's")
            selected = transforms.slices_with_labels(mask, spec["labels"])
            if len(selected) == 0:
                labels = " or ".join(str(label) for label in spec["labels"])
                warnings.warn(
                    DataWarning(item.mask, f"no voxel has label {labels}; its scan gives no slices"), stacklevel=2
                )
            return selected
        raise ValueError(f"unknown slice selection {method!r} (all, nonempty or mask)")


def _render(volume, index: int, mapping, size: int, fit: str, filter_name: str) -> np.ndarray:
    """One finished slice: map volume[index] to uint8, then bring it to [size, size]."""
    return transforms.fit_to_square(np.ascontiguousarray(mapping(volume[index])), size, fit, filter_name)


def output_name(source: str, frame: int | None, index: int) -> str:
    """Anonymous, deterministic PNG name: '<source hash>[_f<frame>]_s<slice>.png', e.g. '3f2a9c1b_s0042.png'."""
    frame_part = f"_f{frame:02d}" if frame is not None else ""
    return f"{source}{frame_part}_s{index:04d}.png"
