#!/usr/bin/env bash
# GPU check for WideEP's CUDA backend.
#
# Here (any x86-64 Linux box with Swift 6): builds the static release binary into .gpu/wide-ep.gz (git-ignored) and
# prints the one command to run on the GPU machine. There (the device tool, with carry: [".gpu"]), that command runs
# `wide-ep doctor`, `wide-ep selftest --device cuda`, `wide-ep bench moe --device cuda` and the PyTorch baselines
# (benchmarks/torch_moe_reference.py) on identical weights, writing every log under $OUT.
#
#   scripts/gpu-check.sh            # build, then print the device command
#   scripts/gpu-check.sh --print    # only print the device command
#   scripts/gpu-check.sh --run      # on the GPU machine: run the checks (what the printed command does)
set -euo pipefail
cd "$(dirname "$0")/.."

TOKENS="${TOKENS:-128,4096,16384}"
SEED="${SEED:-1234}"

run_checks() {
    local out="${OUT:-/tmp/wideep-gpu-check}"
    mkdir -p "$out" /tmp/wideep-dump
    export PYTHONUNBUFFERED=1
    local bin=/tmp/wide-ep
    gunzip -c .gpu/wide-ep.gz >"$bin"
    chmod +x "$bin"
    set +e
    "$bin" doctor 2>&1 | tee "$out/doctor.log"
    "$bin" selftest --device cuda 2>&1 | tee "$out/selftest.log"
    echo "selftest exit ${PIPESTATUS[0]}" | tee -a "$out/selftest.log"
    # The runtime path (MoEKernels on CUDA) against transformers' outputs on the checkpoint fixtures, then a short run.
    for c in deepseek-v3:1 deepseek-v3-fp8:0 qwen2-moe:1 qwen3-moe-f16:0 mixtral:0 mixtral-f32:0; do
        local d=Tests/Fixtures/checkpoints/${c%%:*}
        "$bin" layer --device cuda --ep-size 1 --num-slots 20 --checkpoint "$d" --layer "${c##*:}" \
            --input "$d/input.safetensors" --output /tmp/wideep-y.safetensors --expected "$d/expected.safetensors" \
            --tolerance 1e-2 2>&1 | tail -n 2 | sed "s|^|layer ${c%%:*}: |" | tee -a "$out/layers.log"
    done
    "$bin" run --device cuda --ep-size 1 --num-slots 64 --steps 20 2>&1 | tail -n 8 | tee "$out/run.log"
    "$bin" bench moe --device cuda --tokens "$TOKENS" --seed "$SEED" --dump /tmp/wideep-dump --json \
        >"$out/ours.json" 2>"$out/bench.log"
    echo "bench exit $?"; tail -n 12 "$out/bench.log"
    python3 benchmarks/torch_moe_reference.py --tokens "$TOKENS" --seed "$SEED" --ours "$out/ours.json" \
        --compare /tmp/wideep-dump --json-out "$out/torch.json" 2>&1 | tee "$out/torch.log"
}

device_command='bash scripts/gpu-check.sh --run'

case "${1:-}" in
--run) run_checks ;;
--print) echo "$device_command" ;;
*)
    swift build -c release --static-swift-stdlib --scratch-path .build-cuda-rel --product wide-ep
    mkdir -p .gpu
    # Stripped and gzipped: the device tool carries at most 64 MiB with the working tree.
    strip -o .gpu/wide-ep .build-cuda-rel/release/wide-ep
    gzip -f .gpu/wide-ep
    echo "built .gpu/wide-ep.gz; on the GPU machine (device tool, carry [\".gpu\"]) run:"
    echo "  $device_command"
    ;;
esac
