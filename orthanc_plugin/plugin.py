"""Wire the plugin into Orthanc: change callback, REST routes, worker supervision.

Everything here receives the ``orthanc`` module (or a stand-in with the same functions) as
``api``; only :mod:`orthanc_plugin.entry` imports the real one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from orthanc_plugin import rest
from orthanc_plugin.config import PluginConfig, from_orthanc_configuration
from orthanc_plugin.jobstore import JobStore
from orthanc_plugin.supervisor import WorkerSupervisor
from orthanc_plugin.triage import scan_ct_series, triage


@dataclass
class PluginState:
    """What the callbacks share: the Orthanc API, configuration, job store and worker."""

    api: Any
    cfg: PluginConfig
    store: JobStore
    supervisor: WorkerSupervisor


def _scan(state: PluginState) -> None:
    try:
        queued = scan_ct_series(state.api, state.store)
        state.api.LogWarning(f"lungseg: start-up scan queued {queued} CT series")
    except Exception as exc:  # a failed scan must not take Orthanc down
        state.api.LogError(f"lungseg: start-up scan failed: {type(exc).__name__}: {exc}")


def on_change(state: PluginState, change_type: int, level: int, resource_id: str) -> None:
    """Orthanc change callback: filter and enqueue, start/stop the worker; returns at once."""
    api = state.api
    if change_type == api.ChangeType.STABLE_SERIES:
        try:
            triage(api, state.store, resource_id, "stable")
        except Exception as exc:  # never raise into Orthanc's callback thread
            api.LogError(f"lungseg: could not queue series {resource_id}: "
                         f"{type(exc).__name__}: {exc}")
    elif change_type == api.ChangeType.ORTHANC_STARTED:
        state.supervisor.start()
        if state.cfg.scan_on_start:
            threading.Thread(target=_scan, args=(state,), name="lungseg-scan",
                             daemon=True).start()
    elif change_type == api.ChangeType.ORTHANC_STOPPED:
        state.supervisor.stop()


def register(api: Any, configuration_text: str | bytes) -> PluginState:
    """Read the ``LungSeg`` section and register the callbacks and routes.

    Parameters
    ----------
    api : module
        The ``orthanc`` module.
    configuration_text : str or bytes
        Orthanc's whole configuration as JSON (``orthanc.GetConfiguration()``).

    Returns
    -------
    PluginState

    Raises
    ------
    ConfigError
        If the configuration is invalid (the message names the key path).
    """
    cfg = from_orthanc_configuration(configuration_text)
    store = JobStore(cfg.job_db)
    state = PluginState(api, cfg, store, WorkerSupervisor(cfg, log=api.LogWarning))
    api.RegisterOnChangeCallback(partial(on_change, state))
    api.RegisterRestCallback(rest.STATUS_ROUTE,
                             partial(rest.get_status, state.supervisor, store))
    api.RegisterRestCallback(rest.JOBS_ROUTE,
                             partial(rest.get_jobs, store, worker=state.supervisor))
    api.RegisterRestCallback(rest.RUN_ROUTE, partial(rest.post_run, api, store))
    api.RegisterRestCallback(rest.SERIES_ROUTE, partial(rest.get_series, store))
    api.RegisterRestCallback(rest.MODEL_ROUTE, partial(rest.get_model, cfg.registry_dir))
    api.LogWarning(f"lungseg: plugin ready (jobs in {cfg.job_db}, segmenter {cfg.segmenter})")
    return state
