#!/bin/sh
# Creates Vigil's topics, with their configs, on the docker-compose.yaml broker: run once by
# the kafka-init service, in the apache/kafka image (kafka-topics.sh, POSIX sh). The names,
# partitions and replication come from the same VIGIL_* variables the detectors read;
# --if-not-exists makes a second run a no-op. Production clusters: create them likewise (see
# deploy/k8s/README.md) or let the detectors create them (VIGIL_CREATE_TOPICS, the default),
# with the same configs.
#
# Generated from stream/kafka/topic_specs.py by `make topics-script`: edit that, not this file
# (tests/unit/kafka/test_topic_specs.py fails while they differ).
set -eu

topics=/opt/kafka/bin/kafka-topics.sh
bootstrap="${VIGIL_BOOTSTRAP_SERVERS:?}"
partitions="${VIGIL_TOPIC_PARTITIONS:?}"
replication="${VIGIL_TOPIC_REPLICATION_FACTOR:?}"
day_ms=86400000
# The features topic keeps the sidecar's training window (VIGIL_SIDECAR_WINDOW_S, whole seconds).
window_s="${VIGIL_SIDECAR_WINDOW_S:?}"
features_ms=$(( ${window_s%.*} * 1000 ))

# create NAME PARTITIONS [CONFIG=VALUE ...]
create() {
    name=$1
    count=$2
    shift 2
    configs=""
    for config in "$@"; do
        configs="$configs --config $config"
    done
    # $configs is split into words on purpose: each --config and its value.
    # shellcheck disable=SC2086
    "$topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
        --partitions "$count" --replication-factor "$replication" $configs
}

# Inputs, keyed by service: a week to replay after an outage or a restore from snapshots.
create "${VIGIL_TOPIC_METRICS:?}" "$partitions" retention.ms=$((7 * day_ms))
create "${VIGIL_TOPIC_LOGS:?}" "$partitions" retention.ms=$((3 * day_ms))
# Labels: small, and read from the beginning by new detector groups.
create "${VIGIL_TOPIC_INCIDENTS:?}" "$partitions" retention.ms=$((30 * day_ms))
create "${VIGIL_TOPIC_FEEDBACK:?}" "$partitions" retention.ms=$((30 * day_ms))
# Outputs: two weeks for alerting systems to catch up and for operators to inspect.
create "${VIGIL_TOPIC_ALERTS:?}" "$partitions" retention.ms=$((14 * day_ms))
create "${VIGIL_TOPIC_DLQ:?}" "$partitions" retention.ms=$((14 * day_ms))
# The newest model version per key, forever: compacted, one partition (read whole by everyone).
create "${VIGIL_TOPIC_MODELS:?}" 1 cleanup.policy=compact
# Labelled risk vectors for the sidecar: kept as long as its training window spans.
create "${VIGIL_TOPIC_FEATURES:?}" "$partitions" retention.ms="$features_ms"
# Alerts keyed by their scope (region, cluster): vigil correlate's consumer group scales out over it.
create "${VIGIL_TOPIC_SCOPED_ALERTS:?}" "$partitions" retention.ms=$((14 * day_ms))
# The newest state of every problem, keyed by problem_id: compacted, partitioned like the scopes that write it.
create "${VIGIL_TOPIC_PROBLEMS:?}" "$partitions" cleanup.policy=compact
# Silences, keyed by silence_id (a tombstone ends one): read whole by everyone.
create "${VIGIL_TOPIC_SILENCES:?}" 1 cleanup.policy=compact

"$topics" --bootstrap-server "$bootstrap" --describe --topics-with-overrides
