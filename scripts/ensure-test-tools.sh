#!/usr/bin/env bash
# Tools some tests drive from outside Python. Installed from Debian's packages
# when running as root (as CI does); otherwise the missing ones are named.
set -u
need=()
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1 \
   && ! command -v docker-compose >/dev/null 2>&1; then
  need+=(docker-compose)   # a docker client without compose: the compose file check needs one
fi
if [ ! -x /usr/bin/chromium ]; then
  need+=(chromium fonts-noto-cjk)   # the browser tests drive Debian's chromium; CJK fonts to render Chinese
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} (Debian packages) for the tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "tests need: ${need[*]}  (sudo apt-get install ${need[*]})" >&2
  exit 1
fi
