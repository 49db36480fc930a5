# Upgrading the emperor in place (docs/upgrade.md) as a hosting provider runs it: installed in
# /opt/emperor/bin (the emperor and its runtime binary emperor-vassal beside it), unprivileged
# (uid 10000, only CAP_SETUID and CAP_SETGID), in tyrant mode with every namespace. alice and bob
# each serve a real uWSGI app on a tyrant port while a request loop asks both over and over.
# Three upgrades, each after a new build is installed by a rename over the old files, by SIGUSR2
# and `emperor upgrade` in turn: each time the emperor keeps its pid, its uids and exactly its two
# capabilities (nothing inheritable or ambient) and runs the new file, each tenant's runtime,
# uWSGI master and workers keep their pids, and the loop sees no failed request. A corrupt binary
# installed is refused (`emperor upgrade` exits 1) with every vassal untouched. After the
# upgrades carol's new config runs as carol and serves; SIGKILL of the emperor leaves nothing.
. /vm/scenarios/lib.sh

STATS=127.0.0.1:9191
CONTROL=/run/emperor-control.sock
DIR=/tmp/vassals
SUT_LOG=/tmp/emperor.log
BIN=/opt/emperor/bin
TENANTS="alice bob"
REQUESTS=/tmp/requests

uid_of() { case $1 in alice) echo 2001 ;; bob) echo 2002 ;; carol) echo 2003 ;; esac; }
port_of() { case $1 in alice) echo 8001 ;; bob) echo 8002 ;; carol) echo 8003 ;; esac; }

# get TENANT PATH: the body of GET PATH from TENANT's app, or status 1 (busybox 1.35's wget -T
# segfaults: timeout(1) bounds it instead).
get() { timeout 5 wget -q -O - "http://127.0.0.1:$(port_of "$1")$2" 2>/dev/null; }

# top_field KEY: a top-level number (pid, uid, upgrades...) of the stats in /tmp/stats.json.
top_field() { sed -n "s/^  \"$1\": \\([0-9]*\\),\$/\\1/p" /tmp/stats.json; }

# install FROM NAME: put FROM at $BIN/NAME as a package manager does: a copy beside it, renamed
# over the old file (whose inode a running process keeps).
install_as() {
	cp "$1" "$BIN/.$2.new" && chmod 755 "$BIN/.$2.new" && mv "$BIN/.$2.new" "$BIN/$2" ||
		fail "cannot install $1 as $BIN/$2"
}

# drop_app TENANT: TENANT's uWSGI app config, written elsewhere and moved in whole.
drop_app() {
	as_user "$1" sh -c "printf '%s\n' '[uwsgi]' 'plugins = python3' \
		'http-socket = 127.0.0.1:$(port_of "$1")' 'wsgi-file = $FIXTURES/uwsgi/app.py' \
		'env = TENANT=$1' 'master = true' 'processes = 2' 'disable-logging = true' \
		> /tmp/$1.ini && mv /tmp/$1.ini $DIR/$1.ini" || fail "$1 cannot drop a config in $DIR"
}

# app_up TENANT: its vassal is its runtime, a uWSGI master and two workers, and its app answers
# as its owner.
app_up() {
	stats "$STATS" > /tmp/stats.json || return 1
	_rt=$(vassal_field /tmp/stats.json "$DIR/$1.ini" pid)
	[ -n "$_rt" ] && [ "$_rt" -gt 0 ] || return 1
	[ "$(tree "$_rt" | wc -l)" -eq 4 ] || return 1
	case $(get "$1" /) in "$1 uid=$(uid_of "$1") "*) ;; *) return 1 ;; esac
}
apps_up() { app_up alice && app_up bob; }

# check_emperor WHEN [INODE]: the emperor is still $SUT_PID, as uid/gid 10000 with CapPrm =
# CapEff = CAP_SETUID|CAP_SETGID and nothing inheritable or ambient, and runs the file with
# inode INODE (default: the file now at $BIN/emperor).
check_emperor() {
	[ "$(cat "/proc/$SUT_PID/comm" 2>/dev/null)" = emperor ] ||
		fail "$1: the emperor's pid $SUT_PID is gone or is not the emperor: $(describe "$SUT_PID")"
	assert_eq "$SUT_PID" "$(top_field pid)" "$1: the emperor's pid in the stats"
	assert_eq "10000 10000 10000 10000" "$(uids "$SUT_PID")" "$1: the emperor's uids"
	for cap in CapInh:0000000000000000 CapPrm:00000000000000c0 CapEff:00000000000000c0 CapAmb:0000000000000000; do
		value=$(sed -n "s/^${cap%:*}:[[:space:]]*//p" "/proc/$SUT_PID/status")
		assert_eq "${cap#*:}" "$value" "$1: the emperor's ${cap%:*}"
	done
	assert_eq "${2:-$(stat -c %i "$BIN/emperor")}" "$(stat -L -c %i "/proc/$SUT_PID/exe")" \
		"$1: inode of the emperor's executable (${2:+the last good install}${2:-that of $BIN/emperor})"
}

# check_vassals WHEN: alice's and bob's processes (runtime, uWSGI master, workers) are those
# seen when they came up, and the stats name the same runtimes.
check_vassals() {
	for t in $TENANTS; do
		eval "before=\$tree_$t rt=\$rt_$t"
		assert_eq "$rt" "$(vassal_field /tmp/stats.json "$DIR/$t.ini" pid)" "$1: $t's runtime in the stats"
		assert_eq "$before" "$(echo $(tree "$rt"))" "$1: $t's runtime, uWSGI master and workers"
	done
}

# The request loop: alice's and bob's apps asked in turn until /tmp/stop-requests exists, one
# line per request in $REQUESTS, "ok TENANT" or "FAILED TENANT AT".
request_loop() {
	while [ ! -e /tmp/stop-requests ]; do
		for t in $TENANTS; do
			case $(get "$t" /) in
			"$t uid=$(uid_of "$t") "*) echo "ok $t" ;;
			*) echo "FAILED $t at $(now_cs)" ;;
			esac
		done >> "$REQUESTS"
	done
}
requests() { wc -l < "$REQUESTS"; }
requests_reach() { [ "$(requests)" -ge "$1" ]; }
failed_requests() { grep -c FAILED "$REQUESTS"; }

mkdir -p "$BIN" && cp /usr/bin/emperor /usr/bin/emperor-vassal "$BIN/" || fail "cannot install the emperor in $BIN"
mkdir -m 1777 "$DIR"
start_sut "$BIN/emperor" --emperor "$DIR" --emperor-tyrant --emperor-use-clone fs,net,ipc,pid,uts \
	--emperor-tyrant-ports 8000-8999 --vassal-max-fd 4096 --uid 10000 --gid 10000 --cap setuid,setgid \
	--emperor-control "$CONTROL" --emperor-stats "$STATS" 2> "$SUT_LOG"
log "emperor $SUT_PID started from $BIN/emperor"

for t in $TENANTS; do
	drop_app "$t"
done
if ! poll 90 apps_up; then
	show_sut
	fail "the two uWSGI apps did not both come up with a master and two workers: $(cat /tmp/stats.json)"
fi
assert_eq 0 "$(top_field upgrades)" "upgrades in the stats at start"
check_emperor "at start"
for t in $TENANTS; do
	uid=$(uid_of "$t")
	rt=$(vassal_field /tmp/stats.json "$DIR/$t.ini" pid)
	tree=$(echo $(tree "$rt"))
	eval "rt_$t=$rt tree_$t='$tree'"
	for pid in $tree; do
		assert_eq "$uid $uid $uid $uid" "$(uids "$pid")" "host uids of $t's $(describe "$pid")"
	done
	# Its program on its command line: the runtime's first word, or the fifth of the keeper
	# it becomes while it hibernates (its executable is then the keeper's memfd).
	assert_eq "$BIN/emperor-vassal" "$(tr '\0' '\n' <"/proc/$rt/cmdline" | grep -m1 '/emperor-vassal$')" \
		"$t's runtime's program"
	[ "$(readlink "/proc/$rt/ns/net")" != "$(readlink /proc/1/ns/net)" ] ||
		fail "$t's runtime is in the host's net namespace"
	log "$t: runtime $rt, uWSGI master and workers $(children "$rt") $(children "$(children "$rt")")"
done

: > "$REQUESTS"
request_loop &
LOOP_PID=$!
wait_until 30 requests_reach 4

upgrades=0
for how in SIGUSR2 "emperor upgrade" SIGUSR2; do
	upgrades=$((upgrades + 1))
	install_as /usr/bin/emperor-vassal emperor-vassal
	install_as /usr/bin/emperor emperor
	asked=$(requests) t0=$(now_cs)
	if [ "$how" = SIGUSR2 ]; then
		kill -USR2 "$SUT_PID"
	else
		said=$(timeout 40 emperor upgrade --control "$CONTROL" 2>&1) ||
			fail "upgrade $upgrades: emperor upgrade failed: $said"
		log "emperor upgrade: $said"
	fi
	upgraded() { stats "$STATS" > /tmp/stats.json && [ "$(top_field upgrades)" = "$upgrades" ]; }
	poll 30 upgraded || fail "upgrade $upgrades by $how: the stats do not show $upgrades upgrades: $(cat /tmp/stats.json)"
	meanwhile=$(($(requests) - asked))
	log "upgrade $upgrades by $how done in $(($(now_cs) - t0))0 ms; $meanwhile requests meanwhile"
	[ "$meanwhile" -gt 0 ] || fail "upgrade $upgrades: the request loop made no request while it ran"
	check_emperor "after upgrade $upgrades"
	check_vassals "after upgrade $upgrades"
	# Both apps asked again by the loop after the upgrade.
	asked=$(requests)
	wait_until 30 requests_reach $((asked + 4))
	assert_eq 0 "$(failed_requests)" "failed requests after upgrade $upgrades ($(grep FAILED "$REQUESTS" | tr '\n' ';'))"
done

# A corrupt build installed: refused, the emperor and every vassal untouched.
good=$(stat -c %i "$BIN/emperor")
head -c 100000 /dev/urandom > /tmp/corrupt
install_as /tmp/corrupt emperor
said=$(timeout 40 emperor upgrade --control "$CONTROL" 2>&1)
assert_eq 1 "$?" "exit status of emperor upgrade to a corrupt binary ($said)"
log "emperor upgrade to a corrupt binary: $said"
grep -q "upgrade failed: .*this emperor goes on, every vassal untouched" "$SUT_LOG" ||
	fail "no log line saying the upgrade to a corrupt binary failed"
stats "$STATS" > /tmp/stats.json || fail "no stats after the corrupt binary"
assert_eq "$upgrades" "$(top_field upgrades)" "upgrades after the corrupt binary"
check_vassals "after the corrupt binary"
check_emperor "after the corrupt binary" "$good"

touch /tmp/stop-requests
wait "$LOOP_PID"
log "request loop: $(requests) requests, $(failed_requests) failed"
[ "$(requests)" -gt 0 ] || fail "the request loop made no request"
assert_eq 0 "$(failed_requests)" "failed requests ($(grep FAILED "$REQUESTS" | tr '\n' ';'))"

# The upgraded emperor starts a new tenant's vassal as its owner, jailed and serving.
drop_app carol
if ! poll 60 app_up carol; then
	show_sut
	fail "carol's app did not come up after the upgrades: $(cat /tmp/stats.json)"
fi
rt=$(vassal_field /tmp/stats.json "$DIR/carol.ini" pid)
for pid in $(tree "$rt"); do
	assert_eq "2003 2003 2003 2003" "$(uids "$pid")" "host uids of carol's $(describe "$pid")"
done
payload=$(children "$rt")
assert_eq 0000000000000000 "$(sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$payload/status")" "CapEff of carol's uWSGI master"
log "carol: runtime $rt, uWSGI master $payload; answer '$(get carol /)'"
stats "$STATS" > /tmp/stats.json || fail "no stats after carol's config"
check_vassals "after carol's config"
show_sut

# SIGKILL of the upgraded emperor: nothing of it is left, no tenant's process among it.
end_sut KILL 30
for pid in $(for p in /proc/[0-9]*; do echo "${p#/proc/}"; done); do
	case $(uids "$pid") in 2001\ * | 2002\ * | 2003\ *) fail "a tenant's process is left: $(describe "$pid")" ;; esac
done
show_sut_log
pass
