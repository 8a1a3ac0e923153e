#!/usr/bin/env bash
# Run repro scripts under plain `timeout` and print one tab-separated row per run:
#   script  env  launcher  start_method  outcome  seconds
#
#   repro_scripts/measure.sh VENV LAUNCHER START_METHOD SCRIPT...
#     VENV          path to a virtualenv (.venv, .venv-legacy)
#     LAUNCHER      mp (the script's own mp.spawn / mp.start_processes) or torchrun
#     START_METHOD  spawn, forkserver or fork (ignored by torchrun, which runs each rank itself)
#
# TIMEOUT (default 90) bounds each run; NPROCS (default 2) is the world size. A run that
# exceeds TIMEOUT is a hang. Everything a run started carries a unique REPRO_RUN_ID in its
# environment, and whatever still carries it after the run is killed and counted as leftover.
set -u
venv=$1 launcher=$2 method=$3
shift 3
timeout_s=${TIMEOUT:-90}
nprocs=${NPROCS:-2}
wandb_version=$("$venv/bin/python" -c 'import wandb; print(wandb.__version__)' 2>/dev/null \
    || echo none)

leftovers() {
    local proc
    for proc in /proc/[0-9]*; do
        grep -qsz "^REPRO_RUN_ID=$1\$" "$proc/environ" && echo "${proc#/proc/}"
    done
}

for script in "$@"; do
    run_id="measure-$$-$RANDOM-$(basename "$script" .py)"
    if [ "$launcher" = torchrun ]; then
        cmd=("$venv/bin/torchrun" --standalone --nproc-per-node "$nprocs" "$script")
        method_shown=-
    else
        cmd=("$venv/bin/python" "$script" --nprocs "$nprocs" --start-method "$method")
        method_shown=$method
    fi
    wandb_dir=$(mktemp -d)
    start=$(date +%s.%N)
    REPRO_RUN_ID=$run_id WANDB_MODE=offline WANDB_DIR=$wandb_dir WANDB_SILENT=true \
        timeout "$timeout_s" "${cmd[@]}" >"$wandb_dir/output.txt" 2>&1
    rc=$?
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    case $rc in
        0) outcome=exit ;;
        124) outcome="hang (killed at ${timeout_s}s)" ;;
        *) outcome="exit rc=$rc" ;;
    esac
    left=$(leftovers "$run_id")
    if [ -n "$left" ]; then
        names=$(ps -o args= -p "$(echo $left | tr ' ' ,)" | cut -c1-60 | sort | uniq -c | xargs)
        outcome="$outcome, left running: $names (killed)"
        kill -9 $left 2>/dev/null
    fi
    printf '%s\twandb %s\t%s\t%s\t%s\t%.1f\n' "$(basename "$script")" "$wandb_version" \
        "$launcher" "$method_shown" "$outcome" "$seconds"
    [ "$rc" = 0 ] && rm -rf "$wandb_dir" || echo "  output kept in $wandb_dir/output.txt" >&2
done
