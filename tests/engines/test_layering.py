"""engines is the bottom layer: importing it loads nothing of pipeline, trainer or the plugin."""

import subprocess
import sys


def test_engines_import_no_upper_layer():
    code = ("import sys, engines, engines.onnx_engine, engines.quantize, engines.errors; "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'pipeline', 'trainer', 'orthanc_plugin'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pipeline_errors_are_the_engines_errors():
    import engines.errors
    import pipeline.errors

    for name in ("LungSegError", "SeriesRejected", "EngineError", "ConfigError"):
        assert getattr(pipeline.errors, name) is getattr(engines.errors, name)
    assert issubclass(engines.errors.EngineError, pipeline.errors.LungSegError)
