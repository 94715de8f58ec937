#!/usr/bin/env bash
# The main job: set up the environment and start the web app + API with the bundled model.
# Opens on http://127.0.0.1:7860 (pass --host/--port/--model to change; see `fetalscope serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/fetalscope serve "$@"
