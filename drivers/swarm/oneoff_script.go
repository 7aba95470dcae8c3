package swarm

// exitRendezvousFailed is the one-off boot script's exit code when it could not
// reach the rendezvous endpoint, or was refused there.
const exitRendezvousFailed = 196

// oneOffBootScript boots a one-off task: the slug as bootScript fetches and unpacks
// it (kept apart from it: a one-off has no drain and no SIGTERM relay), then it
// connects out to the rendezvous endpoint with nc, retrying until
// MANIFOLD_RENDEZVOUS_SECONDS have passed, and exits with the command's status,
// which the task's status passes through.
//
// nc -e runs the attach script with the connection as its stdin and stdout. It asks
// for /rendezvous/<token> (the token leaves the environment right after) and reads
// the answer; then, without a terminal, it runs the command with stdin, stdout and
// stderr (merged into stdout, as Heroku's rendezvous does) on the connection; with
// MANIFOLD_TTY set it becomes telnetd in inetd mode, which runs the login script on a
// pty and speaks telnet over the connection. The status reaches the boot script
// through a file, as nc's and telnetd's own status is not the command's.
const oneOffBootScript = `set -e
` + fetchSlug + `unset MANIFOLD_SLUG_URL MANIFOLD_SLUG_SHA256 MANIFOLD_DRAIN_SECONDS
r=/tmp/.manifold-run
mkdir -p -m 700 $r
cat > $r/attach <<'EOF'
#!/bin/sh
printf 'GET /rendezvous/%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: ` + rendezvousUpgrade + `\r\n\r\n' "$MANIFOLD_RENDEZVOUS_TOKEN" "$MANIFOLD_RENDEZVOUS_HOSTPORT"
unset MANIFOLD_RENDEZVOUS_TOKEN MANIFOLD_RENDEZVOUS_HOST MANIFOLD_RENDEZVOUS_PORT MANIFOLD_RENDEZVOUS_HOSTPORT MANIFOLD_RENDEZVOUS_SECONDS
IFS= read -r answer || exit 0
case "$answer" in
"HTTP/1.1 101 "*) ;;
*) printf '%s\n' "$answer" | tr -d '\r' > /tmp/.manifold-run/refused; exit 0 ;;
esac
cr=$(printf '\r')
while IFS= read -r line && [ "$line" != "$cr" ]; do :; done
: > /tmp/.manifold-run/attached
unset MANIFOLD_RENDEZVOUS_URL
if [ -n "$MANIFOLD_TTY" ]; then
  exec telnetd -i -f /dev/null -l /tmp/.manifold-run/login
fi
/bin/sh -c "$MANIFOLD_COMMAND" 2>&1
echo $? > /tmp/.manifold-run/status
EOF
cat > $r/login <<'EOF'
#!/bin/sh
stty rows "$MANIFOLD_TTY_ROWS" cols "$MANIFOLD_TTY_COLS" 2>/dev/null
unset MANIFOLD_TTY MANIFOLD_TTY_ROWS MANIFOLD_TTY_COLS
cd /app
trap : INT QUIT
/bin/sh -c "$MANIFOLD_COMMAND"
echo $? > /tmp/.manifold-run/status
EOF
chmod 700 $r/attach $r/login
set +e
deadline=$(( $(date +%s) + MANIFOLD_RENDEZVOUS_SECONDS ))
while :; do
  nc -w 5 "$MANIFOLD_RENDEZVOUS_HOST" "$MANIFOLD_RENDEZVOUS_PORT" -e $r/attach 2>/dev/null
  if [ -f $r/status ]; then exit "$(cat $r/status)"; fi
  if [ -f $r/attached ]; then echo "the one-off's command ended with no status" >&2; exit 1; fi
  if [ -f $r/refused ]; then echo "rendezvous at $MANIFOLD_RENDEZVOUS_URL refused the one-off: $(cat $r/refused)" >&2; exit 196; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then echo "rendezvous at $MANIFOLD_RENDEZVOUS_URL not reachable within $MANIFOLD_RENDEZVOUS_SECONDS s" >&2; exit 196; fi
  sleep 1
done
`
