"""The shipped model files, installed with lungseg as the package ``lungseg_models``.

The folder holds the exported U-Net (``lungseg-unet.onnx``, its int8 twin, the ``.pt2``
program) with their JSON sidecars and the model card (``README.md``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "lungseg-unet.onnx"


def default_model_path() -> Path:
    """Return the path of the shipped default model (``lungseg-unet.onnx``).

    Returns
    -------
    Path
        Where the installed (or checked-out) file lies; it may be missing when the package
        was installed without its data.
    """
    return Path(str(resources.files(__name__).joinpath(DEFAULT_MODEL_NAME)))
