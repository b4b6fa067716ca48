"""The worker's model follows the registry's ``active`` pointer, without a restart.

Before each job the worker calls :meth:`ActiveModel.refresh`: one ``stat`` of the pointer
(:func:`pipeline.registry.active_stamp`). When it changed, the active version's model is
loaded and replaces the segmenter; the next SEG/SR carry its version (it enters their UIDs).
A model that fails to load is logged and the current one kept. Without an active version
(an empty registry), the configured ``ModelPath`` (or the shipped model) runs. Baseline
segmenters (``threshold``, ``kmeans``) ignore the registry.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from pipeline import registry as reg

LOG = logging.getLogger("lungseg.worker")


class ActiveModel:
    """The segmenter of the registry's active version (or of the configured model).

    Parameters
    ----------
    registry : str or Path
        The registry folder (:func:`orthanc_plugin.config.PluginConfig.registry_dir`).
    pconfig : pipeline.run.PipelineConfig
        The configured pipeline settings; its ``model_path`` is the fallback.
    """

    def __init__(self, registry: str | Path, pconfig: Any) -> None:
        self.registry = Path(registry)
        self.base = pconfig
        self.follows = pconfig.segmenter in ("auto", "model")
        self.stamp = reg.active_stamp(self.registry) if self.follows else None
        self.pconfig = self._config()
        self.segmenter = self._create(self.pconfig)

    def _config(self) -> Any:
        if not self.follows:
            return self.base
        version = reg.active_version(self.registry)
        if version is None:
            return self.base
        return dataclasses.replace(self.base,
                                   model_path=str(reg.model_path(self.registry, version)))

    @staticmethod
    def _create(pconfig: Any) -> Any:
        from pipeline.run import Segmenter

        return Segmenter.create(pconfig)

    def refresh(self) -> tuple[Any, Any]:
        """Reload when the active pointer changed; return ``(segmenter, pipeline config)``."""
        if not self.follows:
            return self.segmenter, self.pconfig
        stamp = reg.active_stamp(self.registry)
        if stamp == self.stamp:
            return self.segmenter, self.pconfig
        self.stamp = stamp
        try:
            pconfig = self._config()
            segmenter = self._create(pconfig)
        except Exception as exc:  # keep serving with the model that works
            LOG.error("registry %s: cannot load the active model, keeping %s: %s: %s",
                      self.registry, self.segmenter.version, type(exc).__name__, exc)
            return self.segmenter, self.pconfig
        old = self.segmenter
        self.segmenter, self.pconfig = segmenter, pconfig
        old.close()
        LOG.info("model %s active (was %s)", segmenter.version, old.version)
        return self.segmenter, self.pconfig
