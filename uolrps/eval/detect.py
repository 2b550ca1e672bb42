"""Which annotation format a data set file or folder holds (``detect_format``)."""

from __future__ import annotations

from pathlib import Path

from uolrps.core.errors import OptionError, UserError


def _csv_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.csv"))


def _coco_json_in(folder: Path) -> list[Path]:
    out = []
    for p in sorted(list(folder.glob("*.json")) + list((folder / "annotations").glob("*.json"))):
        try:
            with open(p, "rb") as f:
                head = f.read(1 << 16)
        except OSError:
            continue
        if b'"images"' in head or b'"annotations"' in head or p.parent.name == "annotations":
            out.append(p)
    return out


def _wsol_splits(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and (d / "image_ids.txt").is_file())


def _annotation_dir(folder: Path) -> Path | None:
    for name in ("annotations", "Annotations"):
        d = folder / name
        if d.is_dir() and any(d.glob("*.xml")):
            return d
    return None


def detect_format(path: str | Path) -> tuple[str, str]:
    """``(format, what was found)`` for a data set file or folder; an unknown layout is a UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"data set {p} does not exist")
    if p.is_file():
        if p.suffix.lower() == ".csv":
            return "csv", f"CSV file {p.name}"
        if p.suffix.lower() == ".json":
            return "coco", f"COCO JSON file {p.name}"
        raise UserError(f"{p} is neither a folder nor a .csv/.json annotation file: pass a data set folder")
    if (p / "image_ids.txt").is_file() and (p / "localization.txt").is_file():
        return "wsol", f"wsolevaluation metadata (image_ids.txt, localization.txt) in {p.name}/"
    splits = _wsol_splits(p)
    if splits:
        return "wsol", f"wsolevaluation metadata with split folders {', '.join(splits)} in {p.name}/"
    for cub in (p, p / "CUB_200_2011"):
        if (cub / "images.txt").is_file() and (cub / "bounding_boxes.txt").is_file():
            return "cub", f"CUB-200-2011 layout (images.txt, bounding_boxes.txt) in {cub.name}/"
    ann = _annotation_dir(p)
    if ann is not None:
        return "voc", f"PASCAL VOC layout: {sum(1 for _ in ann.glob('*.xml'))} XML files in {ann.name}/"
    csvs = _csv_in(p)
    if len(csvs) == 1:
        return "csv", f"CSV file {csvs[0].name} in {p.name}/"
    if len(csvs) > 1:
        raise UserError(f"{p} holds {len(csvs)} CSV files ({', '.join(c.name for c in csvs[:4])}): "
                        "pass the one to use instead of the folder")
    jsons = _coco_json_in(p)
    if jsons:
        return "coco", f"COCO JSON {', '.join(j.relative_to(p).as_posix() for j in jsons[:3])} in {p.name}/"
    raise OptionError(
        f"cannot tell the format of {p}: expected one of a CSV with image,x1,y1,x2,y2 columns, "
        "annotations/*.xml (PASCAL VOC), images.txt + bounding_boxes.txt (CUB-200-2011), image_ids.txt + "
        "localization.txt (wsolevaluation), or a COCO .json; pass fmt to say which", "fmt"
    )
