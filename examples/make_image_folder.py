"""Write a sample image folder (one sub-folder per class) to try the `folder` source.

    python examples/make_image_folder.py data/my-images [--count 600] [--size 128]
    edgecls train recipes/folder-template.yaml

The images are edgecls' procedural shapes, saved as a mix of JPEG and PNG the
way a real folder of photos is.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from edgecls.data.shapes import generate_shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=600, help="images in all")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    classes = ("circle", "square", "triangle", "star")
    images, labels = generate_shapes(image_size=args.size, classes=classes, count=args.count, seed=args.seed)
    for i, (img, label) in enumerate(zip(images, labels)):
        out = args.folder / classes[label]
        out.mkdir(parents=True, exist_ok=True)
        ext = "png" if i % 3 == 0 else "jpg"
        Image.fromarray(img).save(out / f"{i:05d}.{ext}", quality=92)
    print(f"wrote {len(images)} images in {len(classes)} classes to {args.folder}")


if __name__ == "__main__":
    main()
