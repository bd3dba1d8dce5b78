#!/usr/bin/env bash
# Prepare what bench/gpu_check.sh needs on a GPU machine that has Python 3.12 and torch but
# neither optuna nor plotly, in two folders git ignores (.git/info/exclude) for the device
# tool's `carry`:
#   .whl/       wheels for CPython 3.12 on manylinux x86_64: optuna 5 and what it needs beyond
#               numpy/tqdm/PyYAML (sqlalchemy, alembic, Mako, MarkupSafe, colorlog, packaging,
#               typing_extensions), and plotly + narwhals, only so that every test module
#               imports when pytest collects tests/ (no GPU step uses them);
#   .gpu-data/  cifar-10-batches-py: a class-balanced CIFAR-10 subset in the real pickle format
#               (10,000 training images over data_batch_1..5, 2,000 test images).
# Then it prints the size of everything that travels (the tool's limit: 64 MiB in all).
# Usage, from the repository root: bash bench/gpu_carry.sh [CIFAR_ROOT]  (default /work/data)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
SOURCE=${1:-/work/data}
PIP=${PIP:-python3 -m pip}
PYTHON=${PYTHON:-python3}
WHEELS=(optuna==5.0.0 SQLAlchemy==2.1.9 alembic==1.20.1 Mako==1.4.3 MarkupSafe==3.0.4
        colorlog==6.12.0 packaging==26.4 typing_extensions==4.16.0 plotly==7.1.0 narwhals==2.29.0)

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for folder in /.whl/ /.gpu-data/; do
    grep -qxF "$folder" "$exclude" 2>/dev/null || echo "$folder" >> "$exclude"
done

rm -rf .whl && mkdir -p .whl
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"

"$PYTHON" - "$SOURCE" <<'PY'
import os, pickle, sys

import numpy as np

source = os.path.join(sys.argv[1], "cifar-10-batches-py")
out = os.path.join(".gpu-data", "cifar-10-batches-py")
os.makedirs(out, exist_ok=True)
TRAIN_PER_CLASS_PER_BATCH, TEST_PER_CLASS = 200, 200  # 5 x 2,000 train, 2,000 test

def read(name):
    """A CIFAR pickle with bytes keys, as the original (re-made copies may have str keys)."""
    with open(os.path.join(source, name), "rb") as f:
        d = pickle.load(f, encoding="bytes")
    return {k.encode() if isinstance(k, str) else k: v for k, v in d.items()}

def subset(name, per_class):
    d = read(name)
    labels = np.asarray(d[b"labels"])
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
    return {
        b"batch_label": d.get(b"batch_label", name.encode()),
        b"labels": labels[keep].tolist(),
        b"data": np.ascontiguousarray(np.asarray(d[b"data"], dtype=np.uint8)[keep]),
        b"filenames": [d[b"filenames"][i] for i in keep] if b"filenames" in d else [],
    }

for i in range(1, 6):
    batch = subset(f"data_batch_{i}", TRAIN_PER_CLASS_PER_BATCH)
    with open(os.path.join(out, f"data_batch_{i}"), "wb") as f:
        pickle.dump(batch, f, protocol=4)
with open(os.path.join(out, "test_batch"), "wb") as f:
    pickle.dump(subset("test_batch", TEST_PER_CLASS), f, protocol=4)
with open(os.path.join(out, "batches.meta"), "wb") as f:
    pickle.dump(read("batches.meta"), f, protocol=4)
PY

# What travels: tracked files and untracked ones git does not ignore, plus the carried folders.
repo=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
wheels=$(du -sb .whl | cut -f1)
data=$(du -sb .gpu-data | cut -f1)
total=$((repo + wheels + data))
limit=$((64 * 1024 * 1024))
printf 'carry: repository %.1f MiB + .whl %.1f MiB + .gpu-data %.1f MiB = %.1f MiB of %d MiB\n' \
    "$(echo "$repo / 1048576" | bc -l)" "$(echo "$wheels / 1048576" | bc -l)" \
    "$(echo "$data / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)" 64
if [ "$total" -ge "$limit" ]; then echo "carry: over the 64 MiB limit" >&2; exit 1; fi
echo 'device run: carry [".whl", ".gpu-data"], command "bash bench/gpu_check.sh", timeout_s 560'
