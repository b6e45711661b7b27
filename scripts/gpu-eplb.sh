#!/usr/bin/env bash
# Online EPLB on the GPU (issue #6) and the Python EPLB drop-in on the GPU host's cores (issue #8), in one device call.
#
# Here (x86-64 Linux with Swift 6): builds the static release `wide-ep` and `libwideep.so` (plus the Swift runtime
# libraries it links) into .gpu-eplb/ (git-ignored) and prints the device command. There (the device tool, with
# carry: [".gpu-eplb"]), that command runs, each step under its own time limit, logs and JSON under $OUT:
#   1. `selftest --device cuda` (GPU split == CPU twin and within 1% of Core, map kernel == CPU, every kernel);
#   2. `bench split` on the real DeepSeek-R1 loads (GPU split µs per layer next to Core's CPU split);
#   3. `run --device cuda` under `launch` (two ranks), verified against the dense reference at every step while the
#      balancer re-plans every step (>= 100 rebalances);
#   4. the same with DeepSeek-V3 routing (256 experts, top-8, 288 slots) and H, I reduced so the float32 host store
#      fits, re-planning every 20 steps: steady vs migrating step time, copy waits, bytes per rebalance;
#   5. `--compare` off / static / online on drifting traffic, same shapes;
#   6. benchmarks/eplb_bench.py with the host's cores (libwideep against the numpy DeepSeek reference);
#   7. `--compare` with the `run` defaults (deepseek-v3-mini, 72 slots) on 8 GPU processes;
#   8. `--compare` with the `run` defaults on the CPU backend, 8 rank threads on the host's cores (with a core per
#      rank the slowest rank sets the step time, so tokens/s shows what balance buys);
#   9. `--compare` on 8 GPU processes under MPS, each capped at 1/8 of the SMs (ranks that run at the same time, as
#      on 8 GPUs, instead of time-slicing), compute-bound shapes;
#  10. `--compare` on the CPU backend, compute-bound shapes, seeds 0 and 1, with phase times;
#  11. full-size DeepSeek-V3 expert shapes (one layer: 45 GB of float32 experts per process), online EPLB on two
#      GPU processes (FULL_TOKENS, FULL_STEPS, FULL_REBAL; FULL_EXTRA="--verify-every 1" checks every step against
#      the dense reference, which takes seconds per step at this size: use few tokens).
# With one GPU the ranks are processes sharing it through CUDA IPC. PARTS="1 3 7" runs only those parts (default 1-8).
#
#   scripts/gpu-eplb.sh            # build, then print the device command
#   scripts/gpu-eplb.sh --run      # on the GPU machine: run everything
set -uo pipefail
cd "$(dirname "$0")/.."

run_all() {
    local out="${OUT:-/tmp/wideep-gpu-eplb}" dir=/tmp/wideep-eplb
    mkdir -p "$out" "$dir/lib"
    gunzip -c .gpu-eplb/wide-ep.gz >"$dir/wide-ep" && chmod +x "$dir/wide-ep" || { echo "no .gpu-eplb: build it here first"; return 1; }
    gunzip -c .gpu-eplb/libwideep.so.gz >"$dir/lib/libwideep.so"
    tar xzf .gpu-eplb/swiftrt.tgz -C "$dir/lib"
    local B="$dir/wide-ep"
    want() { [[ " ${PARTS:-1 2 3 4 5 6 7 8} " == *" $1 "* ]]; }
    # The real DeepSeek-R1 loads travel in .gpu-eplb/r1; bench split and the Python bench read them from here.
    local r1=/work/shared/data/deepseek-r1-expert-load
    [ -d "$r1" ] || { mkdir -p "$(dirname "$r1")" && cp -r .gpu-eplb/r1 "$r1"; }
    export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
    nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used --format=csv | tee "$out/gpu.log"
    local M="--preset deepseek-v3 --set hiddenSize=512 --set moeIntermediateSize=256 --set numMoELayers=8 --num-slots 288"
    M="$M --tokens-per-step ${MIGRATE_TOKENS:-4096} --imbalance-threshold inf --layer-updates-per-step 1"
    if want 1; then
    echo "== 1. selftest"
    timeout "${SELFTEST_S:-120}" "$B" selftest --device cuda 2>&1 | tee "$out/selftest.log" | tail -n 25
    echo "selftest exit ${PIPESTATUS[0]}"
    fi
    if want 2; then
    echo "== 2. bench split"
    local stats=(--stats-json "$r1/sglang_dsv3_prefill_in4096.json")
    timeout "${SPLIT_S:-60}" "$B" bench split "${stats[@]}" 2>&1 | tee "$out/split.log" | tail -n 30
    echo "bench split exit ${PIPESTATUS[0]}"
    fi
    if want 3; then
    echo "== 3. >= 100 rebalances, every step verified against the dense reference"
    timeout "${VERIFY_S:-120}" "$B" launch --nproc-per-node 2 -- run --device cuda --ep-size 2 --steps 230 \
        --rebalance-interval 1 --layer-updates-per-step 4 --drift 0.3 --verify-every 1 --json \
        >"$out/verify.json" 2>"$out/verify.log"
    echo "verify exit $?"; tail -n 3 "$out/verify.log"
    python3 - "$out/verify.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r = r[0] if isinstance(r, list) else r
keys = ("rebalances", "slotsMoved", "verifications", "verificationMismatches", "maxRelativeError", "staleSlotObservations")
print("verify:", {k: r.get(k) for k in keys})
EOF
    fi
    if want 4; then
    echo "== 4. steady vs migrating step time ($M)"
    timeout "${MIGRATE_S:-150}" "$B" launch --nproc-per-node 2 -- run --device cuda --ep-size 2 $M \
        --rebalance-interval 20 --steps 200 --json >"$out/migrate.json" 2>"$out/migrate.log"
    echo "migrate exit $?"; tail -n 3 "$out/migrate.log"
    python3 - "$out/migrate.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r = r[0] if isinstance(r, list) else r
print("migrate:", json.dumps(r.get("migration"), indent=1))
print("migrate:", {k: r.get(k) for k in ("tokensPerSecond", "imbalanceMean", "rebalances", "slotsMoved", "bytesCopied")})
EOF
    fi
    if want 5; then
    echo "== 5. --compare off / static / online"
    timeout "${COMPARE_S:-150}" "$B" launch --nproc-per-node 2 -- run --device cuda --ep-size 2 $M \
        --rebalance-interval 10 --steps 80 --compare 2>&1 | tee "$out/compare.log" | tail -n 30
    echo "compare exit ${PIPESTATUS[0]}"
    fi
    if want 6; then
    echo "== 6. Python EPLB drop-in on $(nproc) cores"
    WIDEEP_LIB="$dir/lib/libwideep.so" LD_LIBRARY_PATH="$dir/lib" timeout "${EPLB_S:-120}" \
        python3 benchmarks/eplb_bench.py --steps 16 --repeats 9 ${EPLB_ARGS:-} --json "$out/eplb.json" 2>&1 | tee "$out/eplb.log" | tail -n 20
    echo "eplb exit ${PIPESTATUS[0]}"
    fi
    if want 7; then
    echo "== 7. --compare, run defaults, 8 GPU processes"
    timeout "${COMPARE8_S:-300}" "$B" launch --nproc-per-node 8 -- run --device cuda --ep-size 8 --compare 2>&1 \
        | tee "$out/compare8.log" | tail -n 22
    echo "compare8 exit ${PIPESTATUS[0]}"
    fi
    if want 8; then
    echo "== 8. --compare, run defaults, CPU backend, 8 rank threads on $(nproc) cores"
    timeout "${COMPARECPU_S:-150}" "$B" run --compare 2>&1 | tee "$out/compare-cpu.log" | tail -n 22
    echo "compare-cpu exit ${PIPESTATUS[0]}"
    fi
    if want 9; then
    # Eight GPU ranks that each own a slice of the SMs, as eight GPUs would: under MPS the processes' kernels run at
    # the same time (no time-slicing) and CUDA_MPS_ACTIVE_THREAD_PERCENTAGE caps each at 1/8 of the SMs, so a step
    # waits for the most loaded rank and tokens/s can follow balance. MPS is a user daemon (no device setting
    # changes); it is stopped at the end of the part.
    echo "== 9. --compare on 8 SM-partitioned GPU ranks (MPS), compute-bound shapes"
    if command -v nvidia-cuda-mps-control >/dev/null; then
        export CUDA_MPS_PIPE_DIRECTORY=/tmp/wideep-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/wideep-mps/log
        mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
        nvidia-cuda-mps-control -d && echo "MPS daemon started"
        local C="--set hiddenSize=${MPS_H:-1024} --set moeIntermediateSize=${MPS_I:-1024} --tokens-per-step ${MPS_TOKENS:-8192} ${MPS_EXTRA:-}"
        CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=${MPS_PCT:-12} timeout "${MPS_S:-200}" "$B" launch --nproc-per-node 8 -- run \
            --device cuda --ep-size 8 $C --steps "${MPS_STEPS:-60}" --compare --json \
            >"$out/compare-mps-${WIDEEP_A2A_COPY:-engine}.json" 2>"$out/compare-mps-${WIDEEP_A2A_COPY:-engine}.log"
        echo "compare-mps exit $?"; tail -n 5 "$out/compare-mps-${WIDEEP_A2A_COPY:-engine}.log"
        echo quit | nvidia-cuda-mps-control
        tail -n 5 "$CUDA_MPS_LOG_DIRECTORY/control.log" 2>/dev/null
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
        summarize "$out/compare-mps-${WIDEEP_A2A_COPY:-engine}.json"
    else
        echo "no nvidia-cuda-mps-control on this machine"
    fi
    fi
    if want 10; then
    # The CPU backend's off / static / online on compute-bound shapes, per seed, with phase times.
    echo "== 10. --compare on the CPU backend, compute-bound shapes, 8 rank threads on $(nproc) cores"
    for seed in ${CPU_SEEDS:-0 1}; do
        timeout "${COMPARECPU2_S:-150}" "$B" run --compare --set hiddenSize=512 --set moeIntermediateSize=256 \
            --tokens-per-step 4096 --steps "${CPU_STEPS:-40}" --seed "$seed" --json \
            >"$out/compare-cpu-$seed.json" 2>"$out/compare-cpu-$seed.log"
        echo "compare-cpu seed $seed exit $?"
        summarize "$out/compare-cpu-$seed.json"
    done
    fi
    if want 11; then
    # Full DeepSeek-V3 expert shapes (H 7168, I 2048, 256 experts, top-8, 288 slots), as many layers as the host
    # holds: every process keeps a float32 store of 45 GB per layer, so one layer for two processes on 128 GiB.
    echo "== 11. full-size deepseek-v3, ${FULL_LAYERS:-1} layer(s), EP2 (two processes on the GPU), online EPLB"
    free -g | head -2
    timeout "${FULL_S:-240}" "$B" launch --nproc-per-node 2 -- run --device cuda --ep-size 2 --preset deepseek-v3 \
        --set numMoELayers="${FULL_LAYERS:-1}" --num-slots 288 --tokens-per-step "${FULL_TOKENS:-4096}" \
        --steps "${FULL_STEPS:-30}" --rebalance-interval "${FULL_REBAL:-10}" --imbalance-threshold inf \
        --layer-updates-per-step 1 ${FULL_EXTRA:-} --json >"$out/full.json" 2>"$out/full.log"
    echo "full exit $?"; grep -v "^\[" "$out/full.log" | tail -n 6
    python3 - "$out/full.json" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"no JSON: {e}")
keys = ("tokensPerSecond", "wallTokensPerSecond", "imbalanceMean", "rebalances", "slotsMoved", "bytesCopied",
        "migrationSeconds", "migrationStallSeconds", "dispatchRowsPerToken", "phases", "verifications",
        "verificationMismatches", "maxRelativeError", "staleSlotObservations")
print("full:", {k: r.get(k) for k in keys})
print("full:", json.dumps(r.get("migration")))
EOF
    fi
}

# One line per balancer of a `--compare --json` file: tokens/s, imbalance, step times and phase seconds.
summarize() {
    python3 - "$1" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"no JSON in {sys.argv[1]}: {e}")
for r in d["runs"]:
    m, p = r.get("migration") or {}, r.get("phases") or {}
    ms = lambda v: (v or 0) * 1000
    print(f'{r["balancer"]:7s} tok/s {r["tokensPerSecond"]:9.0f}  imb {r["imbalanceMean"]:.3f}/{r["imbalanceP99"]:.3f}'
          f'  rebal {r["rebalances"]:3d}  steady {ms(m.get("steadyStepSeconds")):8.2f} ms'
          f'  migrating {ms(m.get("migratingStepSeconds")):8.2f} ms'
          f'  phases s {json.dumps({k: round(v, 3) for k, v in p.items()})}')
EOF
}

case "${1:-}" in
--run) run_all ;;
*)
    swift build -c release --static-swift-stdlib --scratch-path .build-eplb-rel --product wide-ep || exit 1
    swift build -c release --static-swift-stdlib --scratch-path .build-eplb-rel --product wideep || exit 1
    mkdir -p .gpu-eplb
    strip -o .gpu-eplb/wide-ep.stripped .build-eplb-rel/release/wide-ep
    gzip -9 -c .gpu-eplb/wide-ep.stripped >.gpu-eplb/wide-ep.gz && rm .gpu-eplb/wide-ep.stripped
    gzip -9 -c .build-eplb-rel/release/libwideep.so >.gpu-eplb/libwideep.so.gz
    # libwideep.so links the Swift runtime dynamically: carry the libraries it needs (about 4 MB compressed).
    rt=$(dirname "$(ldd .build-eplb-rel/release/libwideep.so | awk '/libswiftCore.so/ {print $3}')")
    libs=$(ldd .build-eplb-rel/release/libwideep.so | awk -v rt="$rt" 'index($3, rt) == 1 {print $1}')
    tar czf .gpu-eplb/swiftrt.tgz -C "$rt" $libs
    rm -rf .gpu-eplb/r1 && cp -r ../shared/data/deepseek-r1-expert-load .gpu-eplb/r1
    echo "built .gpu-eplb ($(du -sh .gpu-eplb | cut -f1)); on the device (carry .gpu-eplb):"
    echo '  bash scripts/gpu-eplb.sh --run'
    ;;
esac
