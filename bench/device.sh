#!/usr/bin/env bash
# One prepared GPU run of the bench, for a lent GPU machine that has jax[cuda] and torch
# installed and no network (the project's `device` tool). It resumes: the layers already
# in bench/results/<gpu>.json are kept, so a second call finishes an interrupted run.
#   bash bench/device.sh SECONDS [python -m jaxconv.bench options, e.g. --suite pooling]
# It copies the table to $OUT, where the tool fetches files from.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
limit="${1:-500}"
shift || true
nvidia-smi -L
python3 -c "import jax, flax, jaxconv; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" || exit 1
timeout "$limit" python3 -m jaxconv.bench --backend cuda --repeats 5 --resume --out bench/results "$@"
status=$?
cp bench/results/nvidia-* "${OUT:-/tmp}/" 2>/dev/null
exit $status
