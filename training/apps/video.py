"""Writing the viewer's frames to a video file (mp4 or GIF) that appears only when it is complete.

`camdrive watch --video` (or watch without a screen) renders off screen and hands every displayed
frame here. The frames go to a hidden file beside the target that is renamed to it at the end, so a
video that is being written, or whose writing failed, never stands where a finished one is expected;
after Ctrl-C or SIGTERM the frames so far can still be kept as the video (`keep_partial`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from training.common.outputs import remove_stale_temps, temp_path


class VideoWriter:
    """Frames to an mp4 (H.264 through imageio-ffmpeg's bundled ffmpeg) or a GIF, at a fixed rate.

    The frames go to a hidden file beside `path` that `close` renames to `path`: a video that is
    being written, or whose writing failed, never stands where a finished one is expected.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)
        self._tmp = temp_path(self.path)  # keeps the suffix, from which imageio picks the format
        self.frames = 0
        if self.path.suffix.lower() == ".gif":
            self._writer = imageio.get_writer(self._tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            # macro_block_size 8: 960x600 (600 = 75 * 8) is encoded as it is, not padded to 16.
            self._writer = imageio.get_writer(
                self._tmp, fps=fps, codec="libx264", quality=7, macro_block_size=8, pixelformat="yuv420p"
            )

    def add(self, frame: np.ndarray) -> None:
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and put it at `path`."""
        try:
            self._writer.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        """Stop writing and leave no file."""
        try:
            with contextlib.suppress(Exception):  # an encoder already gone: the file is dropped anyway
                self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def keep_partial(self) -> str:
        """After Ctrl-C or SIGTERM: keep the frames written so far as the video; says what was kept."""
        if not self.frames:
            self.discard()
            return "no video written"
        try:
            self.close()
        except Exception as e:  # the encoder died with the signal (a whole process group was stopped)
            return f"the video could not be finished ({type(e).__name__}); none written"
        return f"kept the {self.frames} frames so far as {self.path}"
