# lungseg: `make demo` (install, start Orthanc, send the demo series, show the result),
# `make test` (ruff + the whole pytest suite), `make stop`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export LUNGSEG_VENV := $(VENV)

.PHONY: install demo test stop lint constraints

install:
	LUNGSEG_EXTRAS=$${LUNGSEG_EXTRAS-train,test} deploy/install.sh

demo:
	LUNGSEG_EXTRAS=$${LUNGSEG_EXTRAS-} deploy/install.sh
	deploy/demo.sh

lint:
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest -q

# write deploy/constraints.txt again from the venv (after an upgrade that passed `make test`)
constraints:
	{ sed -n '/^#/p' deploy/constraints.txt; $(VENV)/bin/pip freeze --exclude-editable | grep -v -i '^torch=='; } > deploy/constraints.txt.new
	mv deploy/constraints.txt.new deploy/constraints.txt

stop:
	-deploy/stop-viewer.sh
	deploy/stop-orthanc.sh

# OHIF viewer behind nginx next to Orthanc (same origin; HTTPS with LUNGSEG_TLS_CERT/LUNGSEG_TLS_KEY):
# `make viewer STUDY=<StudyInstanceUID>` prints the link.
.PHONY: viewer
viewer:
	deploy/ohif/install-ohif.sh
	deploy/start-viewer.sh $(STUDY)
