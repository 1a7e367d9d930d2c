# Sourced by the GPU scripts: `results_folder DEFAULT_RUN VAR...` makes this run's folder, laid out as it will sit in
# the repository — $OUT/bench/results/DATE-CARD-RUN/ (RUN names it, else DEFAULT_RUN) — with a README.md stub holding
# the date, the card and the command with the environment variables VAR... that were set, and sets `out` to it.
# Bring it back with `cp -r <files_at>/bench/results/* bench/results/` and add a row to bench/results/README.md.
results_folder() {
  local default_run=$1; shift
  local card run
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE 'h100|h200|b200|a100|l40s' \
    | tr '[:upper:]' '[:lower:]')
  run=$(date -u +%F)-${card:-gpu}-${RUN:-$default_run}
  out=${OUT:-/tmp/out}/bench/results/$run; mkdir -p "$out"
  { echo "# $run"; echo; echo "Date: $(date -u +%F). Card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)."
    echo; echo "Command: \`$(for v in "$@"; do [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)bash $0\`"
    echo; echo "TODO: commit, what was measured, headline numbers (see bench/results/README.md)."; } > "$out/README.md"
}
