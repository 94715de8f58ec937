#!/usr/bin/env bash
# Set up the environment (incl. Debian's chromium for the browser test) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -f scripts/install_browser.sh ]; then
  bash scripts/install_browser.sh || echo "warning: chromium could not be installed; browser tests will skip"
fi
if [ -f scripts/install_dicom_tools.sh ]; then
  bash scripts/install_dicom_tools.sh || echo "warning: orthanc/dicom3tools could not be installed; PACS tests will skip"
fi
.venv/bin/ruff check src tests benchmarks scripts
exec .venv/bin/python -m pytest "$@"
