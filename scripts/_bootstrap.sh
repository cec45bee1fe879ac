# Sourced by scripts/dev and scripts/test: checks Python and Java (one line saying what to do
# when either is wrong), defines ensure_venv, and sets a project-local DAGSTER_HOME.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "error: $*" >&2; exit 1; }

PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for candidate in python3.11 python3.12 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
[[ -n "$PYTHON" ]] || die "Python 3.11 is required and none was found: install Python 3.11 (or set PYTHON=/path/to/python3.11)."
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$PYVER" in
  3.11|3.12) ;;
  *) die "Python 3.11 is required but $PYTHON is $PYVER: install Python 3.11 (or set PYTHON=/path/to/python3.11)." ;;
esac

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA="$(command -v java || true)"; fi
[[ -n "$JAVA" ]] || die "Java 17 is required by Spark and 'java' was not found: install it (e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME."
JAVA_MAJOR="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n1)"
[[ -n "$JAVA_MAJOR" && "$JAVA_MAJOR" -ge 17 ]] || die "Java 17 or newer is required by Spark 4 but $JAVA is version ${JAVA_MAJOR:-unknown}: install Java 17 or point JAVA_HOME at it."

VENV="$ROOT/.venv"

# Create .venv and install the project (again only when pyproject.toml changed).
ensure_venv() {
  # The test suite runs these scripts inside its own, already installed environment.
  [[ "${PYSETL_DAGSTER_VENV_READY:-}" == 1 && -x "$VENV/bin/python" ]] && return 0
  STAMP="$VENV/.pysetl-dagster-installed"
  WANT="$(cat pyproject.toml | "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "Creating $VENV with $PYTHON ($PYVER)..."
    "$PYTHON" -m venv "$VENV" || die "could not create a virtualenv with $PYTHON: install the venv module (e.g. 'apt-get install python3.11-venv')."
  fi
  if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    echo "Installing pysetl-dagster and its pinned dependencies into .venv (first run takes a few minutes)..."
    log="$VENV/pip-install.log"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >"$log" 2>&1 || true
    if ! "$VENV/bin/python" -m pip install -e ".[dev]" >>"$log" 2>&1 \
      || ! "$VENV/bin/python" -c "import pysetl_dagster, dagster, pyspark, pysetl" 2>>"$log"; then
      grep -iE "error|could not|no matching" "$log" | tail -n 15 >&2
      die "installing dependencies failed: the whole pip log is in $log."
    fi
    echo "$WANT" > "$STAMP"
  fi
}

# Bytecode for the project's own modules (the library is an editable install, so pip compiled
# none of it). Where PYTHONDONTWRITEBYTECODE is set (Docker images, CI machines), Python would
# otherwise compile all of it again in every process: each Dagster run, step worker and CLI
# call. compileall rewrites only what changed since its last pass (about 0.3 s then).
compile_bytecode() {
  "$VENV/bin/python" -m compileall -q -j 0 "$ROOT/pysetl_dagster" "$ROOT/definitions" "$@" >/dev/null 2>&1 || true
}

# System packages the tests start for real: PostgreSQL (the production stack) and Chromium (the
# browser test). apt-get runs only when a binary is missing.
ensure_system_packages() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  [[ -x /usr/bin/prometheus-pushgateway ]] || missing+=(prometheus-pushgateway)
  (( ${#missing[@]} == 0 )) && return 0
  echo "Installing ${missing[*]} with apt-get (needed by the deployment, browser and metrics tests)..."
  local log="$ROOT/.venv-apt.log"
  local sudo=""; (( EUID == 0 )) || sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1 \
    || die "apt-get could not install ${missing[*]} (log: $log): install them by hand (Debian packages ${missing[*]})."
}

export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
[[ -f "$DAGSTER_HOME/dagster.yaml" ]] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
# The daemon picks a queued run up every second instead of Dagster's default 5 s: a click on
# Materialize in `dagster dev` waits 2.5 s less on average. Added once to an existing home.
if ! grep -q '^run_coordinator:' "$DAGSTER_HOME/dagster.yaml"; then
  printf '%s\n' 'run_coordinator:' '  module: dagster._core.run_coordinator' \
    '  class: QueuedRunCoordinator' '  config:' '    dequeue_interval_seconds: 1' \
    >> "$DAGSTER_HOME/dagster.yaml"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYSPARK_PYTHON="$VENV/bin/python"
