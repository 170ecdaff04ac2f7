"""Write a sample image folder to try the `folder` and `csv` sources, in any of the layouts they read.

    python examples/make_image_folder.py data/my-images [--layout classes|split|csv] [--count 600] [--size 128]
    edgecls train recipes/folder-template.yaml

Layouts:
    classes  data/my-images/<class>/00000.jpg                    (one sub-folder per class)
    split    data/my-images/{train,val,test}/<class>/00000.jpg   (pre-split: 70 % / 15 % / 15 % per class)
    csv      data/my-images/images/00000.jpg and data/my-images/labels.csv with rows path,label,split
             (source: csv, path: data/my-images/labels.csv)

The images are edgecls' procedural shapes, saved as a mix of JPEG and PNG the
way a real folder of photos is.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image

from edgecls.data.shapes import generate_shapes

CLASSES = ("circle", "square", "triangle", "star")
LAYOUTS = ("classes", "split", "csv")


def part_of(k: int) -> str:
    """The split of a class's k-th image: 3 in 20 validation, 3 in 20 test, the rest train."""
    return "val" if k % 20 in (3, 10, 17) else "test" if k % 20 in (6, 13, 19) else "train"


def write(folder: Path, *, layout: str = "classes", count: int = 600, size: int = 128, seed: int = 0) -> int:
    """Write ``count`` images to ``folder`` in ``layout``; returns how many were written."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    images, labels = generate_shapes(image_size=size, classes=CLASSES, count=count, seed=seed)
    seen = [0] * len(CLASSES)
    rows = []
    for i, (img, label) in enumerate(zip(images, labels)):
        name, part = CLASSES[label], part_of(seen[label])
        seen[label] += 1
        file = f"{i:05d}.{'png' if i % 3 == 0 else 'jpg'}"
        out = {"classes": folder / name, "split": folder / part / name, "csv": folder / "images"}[layout]
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / file, quality=92)
        rows.append((f"images/{file}", name, part))
    if layout == "csv":
        with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(("path", "label", "split"))
            writer.writerows(rows)
    return len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--layout", choices=LAYOUTS, default="classes",
                        help="class folders, train/val/test folders of class folders, or images + labels.csv")
    parser.add_argument("--count", type=int, default=600, help="images in all")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = write(args.folder, layout=args.layout, count=args.count, size=args.size, seed=args.seed)
    where = args.folder / "labels.csv" if args.layout == "csv" else args.folder
    print(f"wrote {n} images in {len(CLASSES)} classes to {where} ({args.layout} layout)")


if __name__ == "__main__":
    main()
