"""lungseg pipeline: one CT series in, lesion masks, measurements, DICOM-SEG and SR out."""

from pipeline.version import __version__

__all__ = ["__version__"]
