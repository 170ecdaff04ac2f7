"""Device recipes by name or path: ``local`` -> the bundled devices/local.yaml; ``my-pi.yaml`` -> that file.

A user's ./devices folder comes before the bundled one, so a copy with the
user's host name wins over the shipped template of the same name.
"""
from __future__ import annotations

from pathlib import Path

from edgecls import bundled
from edgecls.errors import RecipeError
from edgecls.recipe import typed

from edgecls.devices.schema import DeviceRecipe

BUNDLED_DIR = bundled.folder("devices")  # package data (edgecls/bundled/devices)


def device_dirs() -> list[Path]:
    out: list[Path] = []
    for d in (Path.cwd() / "devices", BUNDLED_DIR):
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def resolve_device(name_or_path: str) -> Path:
    """The file for a device name or path; RecipeError naming the choices if there is none."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return path
    for d in device_dirs():
        for suffix in (".yaml", ".yml"):
            if (d / f"{name_or_path}{suffix}").is_file():
                return d / f"{name_or_path}{suffix}"
    names = [n for n, _, _ in list_devices()]
    hint = typed._suggest(name_or_path, names)
    listing = f"devices: {', '.join(names) or 'none'} (or give the path of a .yaml file)"
    raise RecipeError(f"no device recipe named '{name_or_path}'{hint + ' ' if hint else '; '}{listing}", source="--device")


def load_device(name_or_path: str | Path) -> DeviceRecipe:
    """Read and validate a device recipe; a mistake is a RecipeError with file:line: key."""
    path = resolve_device(str(name_or_path))
    raw = typed.read_yaml(path)
    return typed.build(DeviceRecipe, raw, "", typed.Context(str(path)), 1)


def describe(device: DeviceRecipe) -> str:
    """The listing's line: the description, and a micro board's budgets as edgecls reads them."""
    if device.connect != "micro":
        return device.description
    budgets = f"micro: flash {device.flash_kb} KiB, RAM {device.ram_kb} KiB"
    if device.flash_reserved_kb or device.ram_reserved_kb:
        budgets += f" ({device.flash_reserved_kb} and {device.ram_reserved_kb} KiB reserved)"
    return f"{device.description} [{budgets}]".lstrip()


def list_devices() -> list[tuple[str, Path, str]]:
    """(name, path, description) of the device recipes found; a broken one shows its error."""
    rows, seen = [], set()
    for d in device_dirs():
        for path in sorted(d.glob("*.y*ml")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                desc = describe(load_device(path))
            except RecipeError as err:
                desc = f"INVALID: {err}"  # as `edgecls recipes` shows a broken recipe
            rows.append((path.stem, path, desc))
    return rows
