"""``--show``: an OpenCV window per stream."""

from __future__ import annotations

import numpy as np

from uolrps.core.errors import OptionError


class WindowOutput:
    """An OpenCV window (``--show``); ``show`` returns False when the user pressed q / Esc or closed it."""

    def __init__(self, title: str = "uolrps") -> None:
        import cv2

        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OptionError("show needs OpenCV with GUI support and a display: on a desktop, pip uninstall -y "
                              "opencv-python-headless && pip install 'uolrps[opencv]'; on a Jetson, JetPack's OpenCV "
                              "(docs/jetson.md); without a display use serve or save", "show", "serve", "save") from None
        self._open = True

    def show(self, image: np.ndarray) -> bool:
        import cv2

        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        return key not in (ord("q"), 27) and visible

    def close(self) -> None:
        import cv2

        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
