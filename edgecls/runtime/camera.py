"""Camera frames for ``classify --camera``: RGB uint8 arrays from OpenCV or from the Raspberry Pi camera.

    --camera 0            OpenCV device index (USB webcams; V4L2)
    --camera clip.mp4     OpenCV video file or stream URL
    --camera picamera2    Raspberry Pi OS Camera Module through libcamera (Picamera2), which OpenCV cannot open

Each source is a :class:`Frames`: ``open()``, then ``read()`` until it gives
None, then ``close()`` (or use it as a context manager). The optional module a
source needs is imported when the source is made, so a missing one is named
before the model is loaded. No TensorFlow, no OpenCV or Picamera2 at import.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgecls.errors import EdgeclsError, first_line
from edgecls.runtime.errors import DependencyMissing

PICAMERA2 = "picamera2"
# Picamera2's main stream: the ISP scales the sensor to this (4:3, the Camera Modules' native aspect); the
# classifier then fits it to the model's input with its own resize policy, as for any image.
PICAMERA2_SIZE = (640, 480)  # (width, height), Picamera2's order


class CameraError(EdgeclsError):
    """A camera that cannot be opened, or that opens but gives no frame."""


class Frames:
    """A source of RGB uint8 (H, W, 3) frames (grayscale sources: (H, W))."""

    name = "camera"

    def open(self) -> "Frames":
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        """The next frame, or None when the source has ended."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Frames":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


class OpenCVFrames(Frames):
    """cv2.VideoCapture on a device index, a video file or a URL; OpenCV's BGR turned into RGB."""

    def __init__(self, source: int | str):
        try:
            import cv2  # noqa: PLC0415 - optional extra
        except ImportError:
            raise DependencyMissing("--camera needs OpenCV: pip install opencv-python-headless "
                                    "(or edgecls[camera]); for the Raspberry Pi Camera Module use --camera picamera2"
                                    ) from None
        self._cv2, self.source, self.name, self._cap = cv2, source, f"camera {source}", None

    def open(self) -> "OpenCVFrames":
        self._cap = self._cv2.VideoCapture(self.source)
        if not self._cap.isOpened():
            self.close()
            raise CameraError(f"{self.name}: cannot open it (is it connected, and is the index right?)")
        return self

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return frame[..., ::-1] if frame.ndim == 3 and frame.shape[-1] == 3 else frame  # OpenCV is BGR

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Frames(Frames):
    """The Raspberry Pi camera through Picamera2 (libcamera), in its "RGB888" format.

    Picamera2 names formats the libcamera/DRM way: "RGB888" is [B, G, R] per pixel in memory (the
    Picamera2 manual, "Image formats"), so the channels are reversed here.
    """

    name = "camera picamera2"

    def __init__(self, size: tuple[int, int] = PICAMERA2_SIZE):
        try:
            from picamera2 import Picamera2  # noqa: PLC0415 - optional, Raspberry Pi OS only
        except ImportError as err:
            raise DependencyMissing(
                f"--camera picamera2 needs Picamera2 ({first_line(err)}): on Raspberry Pi OS "
                "`sudo apt install python3-picamera2` (in a venv, make it with --system-site-packages); "
                "elsewhere pip install edgecls[picamera] (it also needs libcamera's Python bindings)") from None
        except Exception as err:  # noqa: BLE001 - e.g. "numpy.dtype size changed": apt's modules against pip's numpy 2
            raise DependencyMissing(
                f"--camera picamera2: Picamera2 is installed but does not import ({first_line(err)}); on Raspberry "
                "Pi OS keep the system's numpy in the venv (pip uninstall numpy, or pip install 'numpy<2')") from None
        self._cls, self.size, self._cam = Picamera2, (int(size[0]), int(size[1])), None

    def open(self) -> "Picamera2Frames":
        try:
            self._cam = self._cls()
            config = self._cam.create_preview_configuration(main={"size": self.size, "format": "RGB888"})
            self._cam.configure(config)
            self._cam.start()
        except Exception as err:  # noqa: BLE001 - libcamera raises IndexError, RuntimeError...: all mean "no camera"
            self.close()
            raise CameraError(f"{self.name}: cannot open it ({first_line(err)}); is the Camera Module connected, "
                              "enabled and not in use by another program? (`rpicam-hello --list-cameras`)") from None
        return self

    def read(self) -> np.ndarray | None:
        try:
            frame = np.asarray(self._cam.capture_array("main"))
        except Exception as err:  # noqa: BLE001 - a camera that stops mid-stream
            raise CameraError(f"{self.name}: gave no frame ({first_line(err)})") from None
        if frame.ndim == 3 and frame.shape[-1] in (3, 4):
            frame = frame[..., 2::-1]  # [B, G, R(, X)] in memory -> R, G, B
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            for step in ("stop", "close"):
                try:
                    getattr(cam, step)()
                except Exception:  # noqa: BLE001, S112 - already failed or stopped: nothing left to release
                    continue


def camera_frames(source: int | str) -> Frames:
    """The frame source ``--camera`` names: "picamera2", else an OpenCV device index, file or URL.

    Raises DependencyMissing (naming what to install) when its module is not there; nothing is opened yet.
    """
    if isinstance(source, str) and source.strip().lower() == PICAMERA2:
        return Picamera2Frames()
    return OpenCVFrames(source)


__all__ = ["CameraError", "Frames", "OpenCVFrames", "PICAMERA2", "Picamera2Frames", "camera_frames"]
