#!/usr/bin/env bash
# Java's tools: a JDK 17+ and Maven (Debian's openjdk-17-jdk-headless and maven). Maven itself
# fetches pgJDBC, HikariCP, JUnit and the plugins from Maven Central during java/build.sh.
set -euo pipefail
if command -v mvn >/dev/null && command -v javac >/dev/null && command -v keytool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
else
  echo "java: install a JDK 17+ and Maven (apt-get install openjdk-17-jdk-headless maven)" >&2
  exit 1
fi
