#!/usr/bin/env bash
# Make sure Java 17+ and Maven are on PATH: the local Kafka broker is resolved with Maven and
# runs on the JVM. Installs them with apt-get when possible, otherwise says what to install.
set -euo pipefail

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

need=()
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
  need+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} for the local Kafka broker" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "the local Kafka broker needs ${need[*]}: install Java 17+ and Maven (e.g. apt-get install ${need[*]})" >&2
  exit 2
fi
