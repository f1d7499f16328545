#!/usr/bin/env bash
# One prepared benchmark run on a machine with an accelerator: the layer suites at GPU
# batch sizes (each layer's batch grows until lax takes about 1 ms) and the network
# suite, within SECONDS (default 480), writing bench/results/<device>*.{md,json,png}
# and copying them to $OUT when it is set (the device tool fetches files from there).
# It resumes: a second call finishes an interrupted run.
#
#   bash bench/gpu.sh [SECONDS]        on the GPU machine
#   bash bench/gpu.sh --dry-run        here, on the CPU: the same steps, tiny, in a temp dir
#
# The GPU image has jax[cuda], flax, optax and torch. If jax sees no GPU, wheels carried
# in .whl/ (see the device tool's notes) are installed first.
set -u
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
limit="${1:-480}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=python3
if [ "$dry" = 1 ]; then
    [ -x .venv/bin/python ] && py=.venv/bin/python
    out=$(mktemp -d)
    args=(--backend cpu --quick --repeats 1 --out "$out")
    layers=(--suite mobilenetv2)
    networks=(--suite networks --network MobileNetV2)
else
    nvidia-smi -L || exit 1
    if ! "$py" -c "import jax; assert jax.default_backend() == 'gpu'" 2>/dev/null; then
        if ls .whl/*.whl >/dev/null 2>&1; then
            "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
            export PYTHONPATH="/tmp/site:$PYTHONPATH"
        fi
    fi
    out=bench/results
    args=(--backend cuda --repeats 5 --resume --out "$out")
    layers=()
    for s in resnet50 vgg16 mobilenetv2 efficientnet_b0 convnext_t vit_b16 large_kernel \
        wav2vec2 resnet3d18 unet_decoder pooling; do layers+=(--suite "$s"); done
    networks=(--suite networks)
fi
"$py" -c "import jax, flax, jaxconv; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" || exit 1
start=$SECONDS
timeout $((limit * 5 / 8)) "$py" -m bench "${args[@]}" "${layers[@]}"
status=$?
left=$((limit - (SECONDS - start)))
if [ "$left" -gt 30 ]; then
    timeout "$left" "$py" -m bench "${args[@]}" "${networks[@]}"
    status=$((status || $?))
fi
if [ "$dry" = 1 ]; then
    ls "$out"/*.md "$out"/*.json >/dev/null || exit 1
    echo "dry run: wrote $(ls "$out" | tr '\n' ' ')"
elif [ -n "${OUT:-}" ]; then
    cp "$out"/"$("$py" -c 'import jax; print(jax.devices()[0].device_kind.lower().replace(" ", "-"))')"* "$OUT"/ 2>/dev/null
fi
exit $status
