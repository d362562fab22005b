#!/usr/bin/env bash
# Prints the path of a working Python 3.10 (Rasa 3.6 supports 3.8-3.10 only).
# A pyenv shim named python3.10 can exist and still fail, so every candidate is run.
set -u
candidates=("${PYTHON:-}" python3.10)
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for p in "$root"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  candidates+=("$p")
done
for c in "${candidates[@]}"; do
  [ -n "$c" ] || continue
  if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
    command -v "$c" 2>/dev/null || echo "$c"
    exit 0
  fi
done
cat >&2 <<'MSG'
Python 3.10 was not found. Rasa 3.6 (the last open-source Rasa) runs on Python 3.8-3.10 only.
Install it, then run make again (or point PYTHON=/path/to/python3.10 at it):
  - with pyenv:  pyenv install 3.10      (https://github.com/pyenv/pyenv)
  - with uv:     uv python install 3.10  and  PYTHON=$(uv python find 3.10) make run
Debian 12 ships Python 3.11 only; Ubuntu 22.04 ships python3.10 (apt-get install python3.10-venv).
MSG
exit 1
