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
if ! command -v redis-sentinel >/dev/null 2>&1; then
  need+=(redis-sentinel)   # the failover and chaos tests run three Sentinels
fi
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  need+=(haproxy)   # docker/haproxy.cfg is checked by haproxy, and the chaos test runs it
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} (Debian packages) for the tests"
  export DEBIAN_FRONTEND=noninteractive
  # redis-sentinel and haproxy are services: keep their packages from starting
  # them (a Sentinel on 26379, a proxy on port 80); the tests start their own.
  guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  status=$?
  [ -n "$guard" ] && rm -f "$guard"
  exit $status
else
  echo "tests need: ${need[*]}  (sudo apt-get install ${need[*]})" >&2
  exit 1
fi
