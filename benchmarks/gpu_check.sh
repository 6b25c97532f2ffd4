#!/usr/bin/env bash
# gpu_check.sh: check the course's training stack on one NVIDIA GPU, in under 8 minutes.
#
# Three steps, each under its own time limit (a failing step does not stop the others):
#   1. gpu tests    pytest -m gpu -q -p no:cacheprovider tests          (limit 120 s)
#   2. bench_train  python benchmarks/bench_train.py on the GPT-2-small preset ("gpt2",
#                   16 x 1,024 tokens), bf16 autocast and torch.compile: tokens/s and MFU
#                   against the card's datasheet peak (llmtrain.core.device.GPU_SPECS)
#                                                                        (limit 180 s)
#   3. chapter      python -m llmtrain run 04 --quick --device cuda, into a temporary
#                   folder (never into the repository)                   (limit 150 s)
# It prints the GPU, torch and CUDA versions first and one summary table at the end:
# each step, ok / FAILED / skipped, its seconds and its key numbers. The limits are also
# capped by one overall deadline, so the whole run stays under 8 minutes.
#
# Run it from anywhere (it uses the repository's .venv when no virtualenv is active):
#     bash benchmarks/gpu_check.sh
# Exit code: 0 when every step passed, 1 when any step failed, 2 for a usage error.
# On a machine without a CUDA GPU it says so, lists the steps it skipped and exits 0.
#
# Settings (environment variables):
#   GPU_CHECK_DEVICE=cpu    a dry run of the same three steps on the CPU, with tiny sizes
#                           (the gpu tests are then skipped by tests/conftest.py); about a
#                           minute, to test this script itself. Default: cuda when available.
#   GPU_CHECK_CHAPTER=N     the chapter of step 3 (default 04, run with quick=True)
#   GPU_CHECK_TESTS_TIMEOUT, GPU_CHECK_BENCH_TIMEOUT, GPU_CHECK_CHAPTER_TIMEOUT
#                           seconds allowed per step
#   GPU_CHECK_KEEP=1        keep the logs and the executed chapter (kept anyway on failure)

set -euo pipefail

if [[ $# -gt 0 ]]; then
    case "$1" in
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "gpu_check.sh takes no arguments (try --help); got: $*" >&2; exit 2 ;;
    esac
fi

# --- where we are: the repository root, its virtualenv --------------------------------
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$ROOT"
if [[ -z "${VIRTUAL_ENV:-}" && -f "$ROOT/.venv/bin/activate" ]]; then
    set +u  # activate scripts read variables that may be unset
    # shellcheck disable=SC1091
    . "$ROOT/.venv/bin/activate"
    set -u
fi
PY="$(command -v python || command -v python3 || true)"
if [[ -z "$PY" ]]; then
    echo "gpu_check: no python on PATH" >&2
    exit 1
fi

# --- the plan: limits and commands for each mode -----------------------------------------
REQUESTED="${GPU_CHECK_DEVICE:-auto}"
case "$REQUESTED" in
    auto|cuda|cpu) ;;
    *) echo "gpu_check: GPU_CHECK_DEVICE must be cuda, cpu or auto, got '$REQUESTED'" >&2
       exit 2 ;;
esac
CHAPTER="${GPU_CHECK_CHAPTER:-04}"
BENCH_PRESET_GPU="gpt2"     # GPT-2 small: 12 layers x 768, 124 M parameters
BENCH_PRESET_CPU="nano"
START_NS="$(date +%s%N)"

elapsed() {  # seconds since START_NS (or since $1), one decimal
    local from="${1:-$START_NS}"
    awk -v a="$from" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

# --- what this machine has ----------------------------------------------------------------
echo "== gpu_check: the training stack on one NVIDIA GPU =="
echo "repo:    $ROOT (git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo "python:  $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"
if command -v nvidia-smi >/dev/null 2>&1; then
    if SMI="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"; then
        while IFS= read -r line; do echo "GPU:     $line  (name, memory, driver)"; done <<<"$SMI"
    else
        echo "GPU:     nvidia-smi failed: $(head -n 1 <<<"$SMI")"
    fi
else
    echo "GPU:     nvidia-smi not found"
fi
TORCH_PROBE='
import torch
cuda = torch.cuda.is_available()
name = torch.cuda.get_device_name(0) if cuda else "-"
bf16 = torch.cuda.is_bf16_supported() if cuda else "-"
cudnn = torch.backends.cudnn.version() if cuda else "-"
print(torch.__version__, torch.version.cuda or "none", cuda, bf16, cudnn, name, sep="|")
'
if ! TORCH_INFO="$("$PY" -c "$TORCH_PROBE")"; then
    echo "gpu_check: torch cannot be imported with $PY: nothing can be checked" >&2
    exit 1
fi
IFS='|' read -r TORCH_VERSION TORCH_CUDA CUDA_OK BF16_OK CUDNN_VERSION DEVICE_NAME <<<"$TORCH_INFO"
echo "torch:   $TORCH_VERSION"
echo "CUDA:    $TORCH_CUDA (torch build), cuDNN $CUDNN_VERSION; torch.cuda.is_available() = $CUDA_OK"
if [[ "$CUDA_OK" == "True" ]]; then
    echo "device:  $DEVICE_NAME, bf16 supported: $BF16_OK"
fi

if [[ "$REQUESTED" == "cpu" ]]; then
    MODE="cpu"
elif [[ "$CUDA_OK" == "True" ]]; then
    MODE="cuda"
else
    MODE="none"
fi

# bf16 autocast, TF32 and fused AdamW are the device policy on CUDA; --compile on forces
# torch.compile; one round of 5 warm-up + 20 timed steps at 16 x 1,024 tokens; the minimal
# reference GPT is left out (its own compile would not fit the time limit).
BENCH_ARGS_GPU=(--device cuda --presets "$BENCH_PRESET_GPU" --compile on --rounds 1
                --steps 20 --warmup 5 --no-reference)
if [[ "$MODE" == "cuda" ]]; then
    BUDGET=465   # the whole run, header included, stays under 8 minutes
    TESTS_TIMEOUT="${GPU_CHECK_TESTS_TIMEOUT:-120}"
    BENCH_TIMEOUT="${GPU_CHECK_BENCH_TIMEOUT:-180}"
    CHAPTER_TIMEOUT="${GPU_CHECK_CHAPTER_TIMEOUT:-150}"
    BENCH_PRESET="$BENCH_PRESET_GPU"
    BENCH_ARGS=("${BENCH_ARGS_GPU[@]}")
else
    BUDGET=150
    TESTS_TIMEOUT="${GPU_CHECK_TESTS_TIMEOUT:-60}"
    BENCH_TIMEOUT="${GPU_CHECK_BENCH_TIMEOUT:-90}"
    CHAPTER_TIMEOUT="${GPU_CHECK_CHAPTER_TIMEOUT:-90}"
    BENCH_PRESET="$BENCH_PRESET_CPU"
    BENCH_ARGS=(--device cpu --presets "$BENCH_PRESET" --batch 8 --block 64 --compile off
                --rounds 1 --steps 3 --warmup 1 --no-reference)
fi
DEVICE_ARG="cuda"
[[ "$MODE" == "cpu" ]] && DEVICE_ARG="cpu"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
TESTS_CMD=("$PY" -m pytest -m gpu -q -p no:cacheprovider tests)
BENCH_CMD=("$PY" benchmarks/bench_train.py "${BENCH_ARGS[@]}")
CHAPTER_CMD=("$PY" -m llmtrain run "$CHAPTER" --quick --device "$DEVICE_ARG"
             --out "$WORK/chapter")

# --- the summary table's rows ---------------------------------------------------------------
ROW_STEP=() ROW_STATUS=() ROW_SECONDS=() ROW_NUMBERS=()
add_row() { ROW_STEP+=("$1"); ROW_STATUS+=("$2"); ROW_SECONDS+=("$3"); ROW_NUMBERS+=("$4"); }

print_table() {
    local i failed=() ok=0 skipped=0 w=13
    echo
    echo "== gpu_check summary: device $1, $(elapsed) s in all =="
    printf '%-*s  %-7s  %7s  %s\n' "$w" "step" "status" "seconds" "key numbers"
    printf '%-*s  %-7s  %7s  %s\n' "$w" "-------------" "-------" "-------" "-----------"
    for i in "${!ROW_STEP[@]}"; do
        printf '%-*s  %-7s  %7s  %s\n' "$w" "${ROW_STEP[$i]}" "${ROW_STATUS[$i]}" \
            "${ROW_SECONDS[$i]}" "${ROW_NUMBERS[$i]}"
        case "${ROW_STATUS[$i]}" in
            ok) ok=$((ok + 1)) ;;
            skipped) skipped=$((skipped + 1)) ;;
            *) failed+=("${ROW_STEP[$i]}") ;;
        esac
    done
    printf 'result: %d ok, %d FAILED, %d skipped' "$ok" "${#failed[@]}" "$skipped"
    if [[ ${#failed[@]} -gt 0 ]]; then
        local names
        names="$(printf '%s, ' "${failed[@]}")"
        printf ' (failed: %s; logs in %s)\n' "${names%, }" "$WORK"
    else
        printf '\n'
    fi
}

cleanup() {
    if [[ "${KEEP_WORK:-0}" == "1" || "${GPU_CHECK_KEEP:-0}" == "1" ]]; then
        echo "logs and outputs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- no GPU: say so, list what was skipped, exit 0 ----------------------------------------
if [[ "$MODE" == "none" ]]; then
    echo
    echo "No CUDA GPU: torch.cuda.is_available() is False here, so every step is skipped:"
    echo "  gpu tests    pytest -m gpu -q -p no:cacheprovider tests"
    echo "  bench_train  python benchmarks/bench_train.py ${BENCH_ARGS_GPU[*]}"
    echo "  chapter $CHAPTER   python -m llmtrain run $CHAPTER --quick --device cuda --out <temp>"
    echo "To rehearse the three steps on the CPU: GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh"
    add_row "gpu tests" "skipped" "-" "no CUDA GPU"
    add_row "bench_train" "skipped" "-" "no CUDA GPU"
    add_row "chapter $CHAPTER" "skipped" "-" "no CUDA GPU"
    print_table "none (no CUDA GPU)"
    exit 0
fi

if [[ "$MODE" == "cpu" ]]; then
    echo
    echo "GPU_CHECK_DEVICE=cpu: a dry run of the three steps on the CPU with tiny sizes."
fi
echo "limits:  tests ${TESTS_TIMEOUT} s, bench ${BENCH_TIMEOUT} s, chapter ${CHAPTER_TIMEOUT} s;" \
     "all within ${BUDGET} s"

# --- running one step -----------------------------------------------------------------------
# run_step LABEL LIMIT LOG CMD...: runs CMD under `timeout`, its output on the screen and in
# LOG; sets STEP_RC (124 or 137: timed out) and STEP_SECONDS. Never stops the script.
STEP_RC=0 STEP_SECONDS=0 STEP_LIMIT=0
run_step() {
    local label="$1" limit="$2" log="$3"
    shift 3
    local left
    left="$(awk -v b="$BUDGET" -v e="$(elapsed)" 'BEGIN { printf "%d", b - e - 10 }')"
    if (( left < limit )); then limit="$left"; fi
    STEP_LIMIT="$limit"
    echo
    echo "== $label (limit ${limit} s): $*"
    if (( limit < 10 )); then
        echo "no time left in the ${BUDGET} s budget" | tee "$log"
        STEP_RC=124 STEP_SECONDS=0
        return 0
    fi
    local t0
    t0="$(date +%s%N)"
    STEP_RC=0
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$log" || STEP_RC=$?
    STEP_SECONDS="$(elapsed "$t0")"
}

timed_out() { [[ "$STEP_RC" == "124" || "$STEP_RC" == "137" ]]; }

# 1. the gpu-marked tests (tests/conftest.py skips them without CUDA) -------------------------
run_step "1/3 gpu tests" "$TESTS_TIMEOUT" "$WORK/tests.log" "${TESTS_CMD[@]}"
# the last "N passed, M failed, K skipped ... in 3.2s" line of pytest
T_PASSED=0 T_FAILED=0 T_SKIPPED=0 T_ERRORS=0
read -r T_PASSED T_FAILED T_SKIPPED T_ERRORS < <(awk '
    / in [0-9.]+s/ && /(passed|failed|skipped|error|deselected|no tests ran)/ { line = $0 }
    END {
        n = split(line, w, /[ ,=]+/)
        for (i = 2; i <= n; i++) c[w[i]] = w[i - 1]
        printf "%d %d %d %d\n", c["passed"], c["failed"], c["skipped"], c["error"] + c["errors"]
    }' "$WORK/tests.log") || true
numbers="$T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"
(( T_ERRORS > 0 )) && numbers+=", $T_ERRORS errors"
status="ok"
if timed_out; then
    status="FAILED" numbers="timed out after ${STEP_LIMIT} s; $numbers"
elif [[ "$STEP_RC" != "0" ]]; then
    status="FAILED" numbers+=" (pytest exit code $STEP_RC)"
elif [[ "$MODE" == "cuda" && "$T_PASSED" == "0" ]]; then
    status="FAILED" numbers+=" (no gpu test ran on the GPU)"
elif [[ "$MODE" == "cpu" ]]; then
    numbers+=" (skipped on the CPU, as expected)"
fi
add_row "gpu tests" "$status" "$STEP_SECONDS" "$numbers"

# 2. training speed of GPT-2 small: tokens/s and MFU ------------------------------------------
run_step "2/3 bench_train ($BENCH_PRESET)" "$BENCH_TIMEOUT" "$WORK/bench.log" "${BENCH_CMD[@]}"
# the preset's row: name, params, "B x T", step ms, tokens/s, MFU, ...; and the policy line
B_SHAPE="-" B_MS="-" B_TOKENS="-" B_MFU="-" B_PEAK="-" B_POLICY="-"
IFS=$'\t' read -r B_SHAPE B_MS B_TOKENS B_MFU B_PEAK B_POLICY < <(awk -v p="$BENCH_PRESET" '
    BEGIN { shape = tok = mfu = ms = "-"; peak = pol = "-" }
    $1 == "policy:" { pol = "autocast " $3; gsub(/,/, "", pol); sub(/torch\./, "", pol)
                      if (match($0, /compile [A-Za-z]+/)) pol = pol ", " substr($0, RSTART, RLENGTH) }
    /MFU uses/ { peak = $0; sub(/.*MFU uses /, "", peak); sub(/;.*/, "", peak) }
    $1 == p && $4 == "x" { shape = $3 "x" $5; ms = $6; tok = $7; mfu = $8 }
    $1 == p && /does not fit/ { shape = "out of memory" }
    END { printf "%s\t%s\t%s\t%s\t%s\t%s\n", shape, ms, tok, mfu, peak, pol }' "$WORK/bench.log") || true
status="ok"
numbers="$BENCH_PRESET $B_SHAPE: $B_TOKENS tokens/s, MFU $B_MFU ($B_PEAK), step $B_MS ms; $B_POLICY"
if timed_out; then
    status="FAILED" numbers="timed out after ${STEP_LIMIT} s"
elif [[ "$STEP_RC" != "0" ]]; then
    status="FAILED" numbers="exit code $STEP_RC: $(awk 'NF { l = $0 } END { print substr(l, 1, 120) }' "$WORK/bench.log")"
elif [[ "$B_TOKENS" == "-" ]]; then
    status="FAILED" numbers="no result for $BENCH_PRESET ($B_SHAPE)"
fi
add_row "bench_train" "$status" "$STEP_SECONDS" "$numbers"

# 3. one chapter end to end, through the headless runner ---------------------------------------
run_step "3/3 chapter $CHAPTER (quick, device $DEVICE_ARG)" "$CHAPTER_TIMEOUT" \
    "$WORK/chapter.log" "${CHAPTER_CMD[@]}"
numbers="$("$PY" - "$WORK/chapter/summary.json" <<'EOF' 2>/dev/null || true
import json, sys
for c in json.load(open(sys.argv[1]))["chapters"]:
    text = f"{c['chapter']} {c['status']}: {c['seconds']:.0f} s in papermill, {c['claims']} claims"
    if c.get("peak_mb"):
        text += f", peak {c['peak_mb']:,.0f} MB"
    if c.get("error"):
        text += f"; {c['error'].splitlines()[0][:100]}"
    print(text)
EOF
)"
[[ -n "$numbers" ]] || numbers="no summary.json"
status="ok"
if timed_out; then
    status="FAILED" numbers="timed out after ${STEP_LIMIT} s; $numbers"
elif [[ "$STEP_RC" != "0" ]]; then
    status="FAILED" numbers+=" (exit code $STEP_RC)"
fi
add_row "chapter $CHAPTER" "$status" "$STEP_SECONDS" "$numbers"

# --- the summary ------------------------------------------------------------------------------
if [[ "$MODE" == "cpu" ]]; then
    print_table "cpu (dry run)"
else
    print_table "cuda ($DEVICE_NAME)"
fi
for s in "${ROW_STATUS[@]}"; do
    if [[ "$s" == "FAILED" ]]; then
        KEEP_WORK=1
        exit 1
    fi
done
exit 0
