# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Helpers shared by the deploy scripts (hack/build-image.sh, hack/kind/*,
# hack/microvm-assets/*).  Sourced, never run.
#
# Every command that changes something outside the script's own temp dir goes
# through ate_run (or a sibling): it prints "+ <command>" with shell quoting
# and, in dry-run mode (ATE_DRY_RUN=1, set by --dry-run), runs nothing.  The
# printed lines are what test/e2e asserts on.

ATE_DRY_RUN=${ATE_DRY_RUN:-0}
ATE_SCRIPT=${ATE_SCRIPT:-${0##*/}}
ATE_ROOT=${ATE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

ate_log() {
  printf '[%s] %s\n' "$ATE_SCRIPT" "$*"
}

ate_die() {
  printf '[%s] error: %s\n' "$ATE_SCRIPT" "$*" >&2
  exit 1
}

# Shell-quoted command line, one space between words.
ate_quote() {
  local out="" word
  for word in "$@"; do
    out+=" $(printf '%q' "$word")"
  done
  printf '%s' "${out# }"
}

ate_dry() {
  [[ $ATE_DRY_RUN == 1 ]]
}

ate_run() {
  printf '+ %s\n' "$(ate_quote "$@")"
  ate_dry && return 0
  "$@"
}

# ate_run_stdin FILE CMD...: CMD with its standard input from FILE.
ate_run_stdin() {
  local in=$1
  shift
  printf '+ %s < %s\n' "$(ate_quote "$@")" "$(printf '%q' "$in")"
  ate_dry && return 0
  "$@" <"$in"
}

# ate_run_stdout FILE CMD...: CMD with its standard output into FILE.
ate_run_stdout() {
  local out=$1
  shift
  printf '+ %s > %s\n' "$(ate_quote "$@")" "$(printf '%q' "$out")"
  ate_dry && return 0
  "$@" >"$out"
}

# Runs CMD in the background (stdout/stderr into LOG), remembers its pid so
# the exit trap stops it.  Sets ATE_BG_PID.
ate_bg_pids=()
ate_run_bg() {
  local log=$1
  shift
  printf '+ %s > %s 2>&1 &\n' "$(ate_quote "$@")" "$(printf '%q' "$log")"
  ATE_BG_PID=""
  ate_dry && return 0
  "$@" >"$log" 2>&1 &
  ATE_BG_PID=$!
  ate_bg_pids+=("$ATE_BG_PID")
}

ate_stop_bg() {
  local pid
  for pid in "${ate_bg_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  ate_bg_pids=()
}

# A work dir for the script's own files: ATE_WORK_DIR when set (tests fix it
# so that printed paths are stable; it is kept), else a temp dir removed at
# exit.
ate_make_work_dir() {
  if [[ -n ${ATE_WORK_DIR:-} ]]; then
    mkdir -p "$ATE_WORK_DIR"
    ate_work=$ATE_WORK_DIR
    ate_work_owned=0
  else
    ate_work=$(mktemp -d "${TMPDIR:-/tmp}/${ATE_SCRIPT%.sh}.XXXXXX")
    ate_work_owned=1
  fi
}

# Phases: named, timed steps.  A failing command inside a phase ends the
# script (errexit); the exit trap then names the phase and how long it ran.
ate_phase_name=""
ate_phase_t0=0
ate_phase_times=()
ate_phase() {
  local name=$1
  shift
  ate_phase_name=$name
  ate_phase_t0=$SECONDS
  printf '\n==> %s\n' "$name"
  "$@"
  local took=$((SECONDS - ate_phase_t0))
  ate_phase_times+=("$(printf '%-40s %5d s' "$name" "$took")")
  printf '<== %s (%d s)\n' "$name" "$took"
  ate_phase_name=""
}

ate_print_phase_times() {
  local line
  ((${#ate_phase_times[@]} > 0)) || return 0
  printf '\n%-40s %7s\n' "phase" "time"
  for line in "${ate_phase_times[@]}"; do
    printf '%s\n' "$line"
  done
}

# Exit trap: stop background helpers, print timings, run the script's
# ate_on_failure hook (if it defines one) when it failed, drop the work dir.
ate_exit_trap() {
  local rc=$?
  set +o errexit
  ate_stop_bg
  ate_print_phase_times
  if ((rc != 0)); then
    if [[ -n $ate_phase_name ]]; then
      printf '\n[%s] FAILED in phase "%s" after %d s (exit %d)\n' \
        "$ATE_SCRIPT" "$ate_phase_name" "$((SECONDS - ate_phase_t0))" "$rc" >&2
    fi
    if declare -F ate_on_failure >/dev/null; then
      ate_on_failure
    fi
  fi
  if [[ ${ate_work_owned:-0} == 1 && -n ${ate_work:-} ]]; then
    rm -rf "$ate_work"
  fi
  exit "$rc"
}

# kubectl with the script's context (KUBECTL_CONTEXT) when one is set.
ate_kubectl() {
  ate_run kubectl ${KUBECTL_CONTEXT:+"--context=$KUBECTL_CONTEXT"} "$@"
}

# Polls CMD until it succeeds or SECONDS_MAX pass (dry-run: runs it once,
# which prints it).
ate_retry() {
  local max=$1 interval=$2
  shift 2
  local t0=$SECONDS
  until "$@"; do
    if ate_dry || ((SECONDS - t0 >= max)); then
      return 1
    fi
    sleep "$interval"
  done
}

# Checks that each named tool is on PATH (skipped in dry-run, which needs none).
ate_require_tools() {
  local tool missing=()
  ate_dry && return 0
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || ate_die "missing tools on PATH: ${missing[*]}"
}

# The repository part of an image reference (no digest, no tag: a ':' after
# the last '/' starts the tag, one before it is a registry port) and its tag
# (empty when there is none).
ate_image_repo() {
  local ref=${1%%@*}
  if [[ ${ref##*/} == *:* ]]; then
    ref=${ref%:*}
  fi
  printf '%s' "$ref"
}

ate_image_tag() {
  local ref=${1%%@*}
  if [[ ${ref##*/} == *:* ]]; then
    printf '%s' "${ref##*:}"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
ate_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ate_port_forward_ready() {
  local pid=$1 log=$2 port=$3
  kill -0 "$pid" 2>/dev/null && grep -q "^Forwarding from 127\.0\.0\.1:$port -> " "$log"
}

# ate_port_forward LOG PORT KUBECTL-ARGS...: runs `kubectl port-forward`
# (KUBECTL-ARGS) in the background and waits up to 30 s until it forwards
# 127.0.0.1:PORT.  A TCP connect alone would also succeed against another
# local service on that port, so the port must be free before, and the
# forward counts as up only when kubectl itself reports it while still
# running.
ate_port_forward() {
  local log=$1 port=$2
  shift 2
  if ! ate_dry && ate_port_in_use "$port"; then
    ate_die "127.0.0.1:$port is already in use by another process; choose another local port"
  fi
  ate_run_bg "$log" "$@"
  ate_dry && return 0
  if ! ate_retry 30 1 ate_port_forward_ready "$ATE_BG_PID" "$log" "$port"; then
    cat "$log" >&2
    return 1
  fi
}
