#!/usr/bin/env bash
# Installs the programs the local stack needs when they are missing: a Java 17+ runtime and
# Maven (to fetch and run the Kafka broker) and redis-server. Uses apt-get when we are root on
# Debian/Ubuntu; otherwise says exactly what to install and fails.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if ! command -v java >/dev/null 2>&1; then
  missing+=(openjdk-17-jre-headless)
fi
if [ "$#" -gt 0 ]; then
  # Extra packages a target asks for (e.g. chromium for the browser tests), when missing.
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
fi

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing with apt-get: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged redis-server as a service; omnirouter runs its own instances.
  for service in redis-server prometheus prometheus-node-exporter; do
    if [[ " ${missing[*]} " == *" ${service%%-node-exporter} "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
else
  echo "missing: ${missing[*]} — install them (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
