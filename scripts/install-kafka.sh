#!/usr/bin/env bash
# Materialise the Apache Kafka broker jars (from Maven Central, via Maven) into
# <repo>/.cache/kafka/libs. Idempotent: a no-op once the jars are present, so
# it is cheap to call from `make run` and CI on every invocation.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$REPO_ROOT/tools/kafka/pom.xml"
CACHE="$REPO_ROOT/.cache/kafka"
LIBS="$CACHE/libs"
KAFKA_VERSION="4.1.1"
# Written last, so a half-finished copy (interrupted mvn) is never mistaken
# for a complete one; keyed on the POM so editing it triggers a refresh.
STAMP_NAME=".complete-$KAFKA_VERSION-$(sha256sum "$POM" | cut -c1-16)"

installed() { [[ -f "$LIBS/$STAMP_NAME" && -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; }

installed && exit 0

command -v java >/dev/null 2>&1 || { echo "install-kafka: java (17+) is required" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "install-kafka: mvn is required (apt-get install -y maven)" >&2; exit 1; }

mkdir -p "$CACHE"
# Parallel test runs may all find the jars missing; one installs, the others
# wait and then see the finished copy.
exec 9>"$CACHE/.install.lock"
flock 9
installed && exit 0

echo "install-kafka: copying Kafka $KAFKA_VERSION jars into $LIBS" >&2
STAGING="$(mktemp -d "$CACHE/libs.staging.XXXXXX")"
chmod 755 "$STAGING"
trap 'rm -rf "$STAGING"' EXIT
mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
  -DincludeScope=runtime \
  -DoutputDirectory="$STAGING"
test -f "$STAGING/kafka_2.13-$KAFKA_VERSION.jar"
touch "$STAGING/$STAMP_NAME"
# Swap in the whole directory: a stale set (e.g. an older Kafka) must never be
# mixed with the new one on the `libs/*` classpath.
rm -rf "$LIBS"
mv "$STAGING" "$LIBS"
trap - EXIT
