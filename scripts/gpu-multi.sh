#!/usr/bin/env bash
# Multi-GPU check and benchmark of WideEP's dispatch/combine (NVLink normal and low-latency modes, NCCL), in one call.
#
# Here (x86-64 Linux with Swift 6): builds the static release binary into .gpu-multi/wide-ep (git-ignored) and prints
# the device command. There (the device tool, with carry: [".gpu-multi"]), that command:
#   1. checks every rank's received rows, metadata and combined outputs (bf16 and FP8, both modes, 0/1/many tokens);
#   2. benchmarks bf16 dispatch/combine at TOKENS (default 128,4096) next to torch all_to_all_single and the P2P copy;
#   3. benchmarks FP8 dispatch (NVLink modes);
#   4. kills one rank mid-job and checks that the job ends with an error within seconds instead of hanging.
# One process per GPU; with a single GPU two ranks share it through CUDA IPC (NCCL and torch are then skipped, and
# the timings measure time-slicing between two processes, not NVLink). Logs and JSON land in $OUT.
#
#   scripts/gpu-multi.sh            # build, then print the device command
#   scripts/gpu-multi.sh --print    # only print the device command
#   scripts/gpu-multi.sh --run      # on the GPU machine: run everything (what the printed command does)
set -uo pipefail
cd "$(dirname "$0")/.."

TOKENS="${TOKENS:-128,4096}"

run_all() {
    local out="${OUT:-/tmp/wideep-gpu-multi}" bin=.gpu-multi/wide-ep
    mkdir -p "$out"
    chmod +x "$bin"
    export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    local gpus
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 0)
    local nproc=$(( gpus >= 2 ? gpus : 2 ))
    local iters="${ITERS:-$(( gpus >= 2 ? 20 : 4 ))}"
    echo "gpu-multi: $gpus GPU(s), $nproc ranks, tokens $TOKENS, $iters iterations"
    [ "$gpus" -ge 2 ] && nvidia-smi topo -m 2>&1 | tee "$out/topo.log"
    local t0 t1
    echo "== 1. correctness (bf16 + fp8, normal + low-latency)"
    "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --check-only --tokens 256 2>&1 | tee "$out/check.log"
    echo "check exit ${PIPESTATUS[0]}"
    echo "== 2. bench bf16"
    "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --no-check --tokens "$TOKENS" --iterations "$iters" \
        --out "$out/dispatch-bf16.json" 2>&1 | tee "$out/bench-bf16.log"
    echo "bench bf16 exit ${PIPESTATUS[0]}"
    echo "== 3. bench fp8 dispatch"
    "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --no-check --fp8 --mode normal,low-latency \
        --tokens "$TOKENS" --iterations "$iters" --torch-baseline off --out "$out/dispatch-fp8.json" 2>&1 \
        | tee "$out/bench-fp8.log"
    echo "bench fp8 exit ${PIPESTATUS[0]}"
    echo "== 4. a killed rank ends the job"
    t0=$(date +%s)
    timeout 120 "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --check-only --fail-rank 1 --timeout 20 \
        >"$out/kill.log" 2>&1
    local rc=$?
    t1=$(date +%s)
    tail -n 6 "$out/kill.log"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ $((t1 - t0)) -lt 60 ]; then
        echo "kill test PASS: exit $rc after $((t1 - t0)) s"
    else
        echo "kill test FAIL: exit $rc after $((t1 - t0)) s"
    fi
}

case "${1:-}" in
--run) run_all ;;
--print) echo 'bash scripts/gpu-multi.sh --run' ;;
*)
    swift build -c release --static-swift-stdlib --scratch-path .build-multigpu-rel --product wide-ep || exit 1
    mkdir -p .gpu-multi
    # Stripped, so that the carried tree stays under the device tool's 64 MiB.
    strip -o .gpu-multi/wide-ep .build-multigpu-rel/release/wide-ep
    grep -qx '/.gpu-multi/' .git/info/exclude 2>/dev/null || echo '/.gpu-multi/' >>.git/info/exclude
    echo "built .gpu-multi/wide-ep ($(du -h .gpu-multi/wide-ep | cut -f1)); on the device (carry .gpu-multi):"
    echo '  bash scripts/gpu-multi.sh --run'
    ;;
esac
