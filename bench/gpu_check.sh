#!/usr/bin/env bash
# The GPU check on a machine with only torch (and numpy, pandas, pytest, ...) installed: install
# the wheels bench/gpu_carry.sh put in .whl/ into /tmp/site, then run bench/gpu_check.py on the
# CIFAR-10 subset it put in .gpu-data/. Run from the repository root; extra flags go to gpu_check.py.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
exec python3 bench/gpu_check.py --data .gpu-data "$@"
