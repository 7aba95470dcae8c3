#!/bin/sh
# A worker that logs a line every $TICK_SECONDS seconds and exits cleanly on SIGTERM.
trap 'echo "ticker: SIGTERM, stopping"; exit 0' TERM INT
n=0
while true; do
	n=$((n + 1))
	echo "tick $n"
	sleep "${TICK_SECONDS:-5}" &
	wait $!
done
