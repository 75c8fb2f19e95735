# shellcheck shell=bash
# Sourced by CI (.ci/run via scripts/test.sh), not run: starts the project's
# Kafka broker with scripts/kafka.sh, exports FEATURED_KAFKA_BROKERS for the
# tests, and defines kafka_stop for the caller's trap:
#
#   source .ci/kafka-env.sh
#   trap 'kafka_stop || true' EXIT
#
# Honours KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_DIR and KAFKA_CACHE (see
# scripts/kafka.sh). The first run on a machine fetches the broker's jars through
# Maven into .cache/kafka (about 45 MB of jars, 20 s here); later runs reuse them.

_featured_kafka_sh="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/kafka.sh"

# kafka_stop stops the broker started here; safe to call more than once.
kafka_stop() {
	bash "$_featured_kafka_sh" stop
}

# The polyglot machine ships Java 17 and Maven; install them where a machine
# lacks them and we may (CI runs as root).
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "kafka-env.sh: installing Java 17 and Maven" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
	fi
fi

if ! _featured_kafka_out="$(bash "$_featured_kafka_sh" start)"; then
	echo "kafka-env.sh: scripts/kafka.sh start failed" >&2
	return 1
fi
FEATURED_KAFKA_BROKERS="$(printf '%s\n' "$_featured_kafka_out" | sed -n 's/^KAFKA_BROKERS=//p' | tail -n 1)"
if [ -z "$FEATURED_KAFKA_BROKERS" ]; then
	echo "kafka-env.sh: scripts/kafka.sh start printed no KAFKA_BROKERS= line:" >&2
	printf '%s\n' "$_featured_kafka_out" >&2
	return 1
fi
export FEATURED_KAFKA_BROKERS
echo "kafka-env.sh: FEATURED_KAFKA_BROKERS=$FEATURED_KAFKA_BROKERS" >&2
unset _featured_kafka_out
