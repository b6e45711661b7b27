#!/usr/bin/env bash
# Multi-GPU check and benchmark of WideEP's dispatch/combine (NVLink normal and low-latency modes, NCCL), in one call.
#
# Here (x86-64 Linux with Swift 6): builds the static release binary into .gpu-multi/wide-ep.gz (git-ignored) and prints
# the device command. There (the device tool, with carry: [".gpu-multi"]), that command:
#   1. checks every rank's received rows, metadata and combined outputs (bf16 and FP8, both modes, 0/1/many tokens);
#   2. benchmarks bf16 dispatch/combine at TOKENS (default 128,4096) next to torch all_to_all_single and the P2P copy;
#   3. benchmarks FP8 dispatch (NVLink modes);
#   4. serves the EP MoE layer with `run --device cuda` under launch (online EPLB, verified against the reference);
#   5. kills one rank mid-job and checks that the job ends with an error within seconds instead of hanging.
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
    local out="${OUT:-/tmp/wideep-gpu-multi}" bin=/tmp/wideep-multi/wide-ep
    mkdir -p "$out" /tmp/wideep-multi
    gunzip -c .gpu-multi/wide-ep.gz >"$bin" && chmod +x "$bin" || { echo "no .gpu-multi/wide-ep.gz: build it here first"; return 1; }
    # Per-step wall-clock limits in seconds (0 skips the step), so one call always ends with its logs.
    local check_s="${CHECK_S:-150}" bench_s="${BENCH_S:-180}" fp8_s="${FP8_S:-120}" kill_s="${KILL_S:-60}"
    export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    local gpus
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
    gpus=${gpus:-0}
    local nproc=$(( gpus >= 2 ? gpus : 2 ))
    local iters="${ITERS:-$(( gpus >= 2 ? 20 : 4 ))}"
    echo "gpu-multi: $gpus GPU(s), $nproc ranks, tokens $TOKENS, $iters iterations"
    [ "$gpus" -ge 2 ] && nvidia-smi topo -m 2>&1 | tee "$out/topo.log"
    local t0 t1
    echo "== 1. correctness (bf16 + fp8, normal + low-latency)"
    [ "$check_s" -gt 0 ] && { timeout "$check_s" "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --check-only \
        --timeout 20 2>&1 | tee "$out/check.log"; echo "check exit ${PIPESTATUS[0]}"; }
    echo "== 2. bench bf16"
    [ "$bench_s" -gt 0 ] && { timeout "$bench_s" "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --no-check \
        --tokens "$TOKENS" --iterations "$iters" --out "$out/dispatch-bf16.json" 2>&1 | tee "$out/bench-bf16.log"
        echo "bench bf16 exit ${PIPESTATUS[0]}"; }
    echo "== 3. bench fp8 dispatch"
    [ "$fp8_s" -gt 0 ] && { timeout "$fp8_s" "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --no-check --fp8 \
        --mode normal,low-latency --tokens "$TOKENS" --iterations "$iters" --torch-baseline off \
        --out "$out/dispatch-fp8.json" 2>&1 | tee "$out/bench-fp8.log"; echo "bench fp8 exit ${PIPESTATUS[0]}"; }
    echo "== 4. the EP MoE layer served by 'run' under launch (online EPLB, verified against the dense reference)"
    local run_s="${RUN_S:-150}"
    [ "$run_s" -gt 0 ] && { timeout "$run_s" "$bin" launch --nproc-per-node "$nproc" -- run --device cuda \
        --ep-size "$nproc" --steps "${RUN_STEPS:-40}" --verify-every 5 2>&1 | tee "$out/run.log"
        echo "run exit ${PIPESTATUS[0]}"; }
    echo "== 5. a killed rank ends the job"
    [ "$kill_s" -gt 0 ] || return 0
    t0=$(date +%s)
    timeout "$kill_s" "$bin" launch --nproc-per-node "$nproc" -- bench dispatch --check-only --fail-rank 1 --timeout 20 \
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
    # Stripped and gzipped, so that the carried tree stays well under the device tool's 64 MiB.
    strip -o .gpu-multi/wide-ep.stripped .build-multigpu-rel/release/wide-ep
    gzip -9 -c .gpu-multi/wide-ep.stripped >.gpu-multi/wide-ep.gz && rm .gpu-multi/wide-ep.stripped
    grep -qx '/.gpu-multi/' .git/info/exclude 2>/dev/null || echo '/.gpu-multi/' >>.git/info/exclude
    echo "built .gpu-multi/wide-ep.gz ($(du -h .gpu-multi/wide-ep.gz | cut -f1)); on the device (carry .gpu-multi):"
    echo '  bash scripts/gpu-multi.sh --run'
    ;;
esac
