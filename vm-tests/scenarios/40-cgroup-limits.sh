# cgroup v2 ceilings keep one vassal's misbehaviour its own: under --vassal-pids-max 64 and
# --vassal-memory-max 64M, a fork bomb hits the pids limit, a memory hog is OOM-killed in its
# own cgroup and respawned, and a quiet vassal next to them keeps its payload while the emperor
# keeps answering. SIGTERM then leaves no process and no populated cgroup.
. /vm/scenarios/lib.sh

STATS=127.0.0.1:9191
DIR=/tmp/vassals
SUT_LOG=/tmp/emperor.log
CG=/sys/fs/cgroup/emperor
mkdir "$DIR"
vassal() {
	printf '%s\n' '[uwsgi]' "unprivileged-binary-patch-arg = $2" > "/tmp/$1.ini"
	mv "/tmp/$1.ini" "$DIR/$1.ini"
}
vassal bomb "/bin/sh -c 'while :; do sleep 1000 & done'"
vassal hog "/bin/sh -c 'x=0123456789abcdef; while :; do x=\$x\$x; done'"
vassal quiet "/bin/sleep 100000"
start_sut emperor --emperor "$DIR" --vassal-pids-max 64 --vassal-memory-max 64M \
	--emperor-stats "$STATS" 2> "$SUT_LOG"

# The cgroup of each vassal, in its tenant's slice (the monitor's, outside tyrant mode):
# /sys/fs/cgroup/emperor/tenant-<dir with / as _>/<config path with / as _>.
SLICE="$CG/tenant-$(echo "$DIR" | tr / _)"
cgroup_of() { echo "$SLICE/$(echo "$DIR/$1.ini" | tr / _)"; }
event() { sed -n "s/^$2 //p" "$1" 2>/dev/null; }

quiet_pid=
quiet_up() { payload_of "$STATS" "$DIR/quiet.ini" && quiet_pid=$payload; }
poll 60 quiet_up || fail "the quiet vassal's payload did not start: $(cat /tmp/stats.json)"
log "quiet payload: $(describe "$quiet_pid")"
for v in bomb hog quiet; do
	[ -d "$(cgroup_of $v)/payload" ] || fail "no cgroup $(cgroup_of $v)/payload: $(ls $CG $SLICE)"
	assert_eq 64 "$(cat "$(cgroup_of $v)/pids.max")" "pids.max of $v"
	assert_eq $((64 << 20)) "$(cat "$(cgroup_of $v)/memory.max")" "memory.max of $v"
done

# While the others misbehave: the bomb never exceeds 64 tasks, the quiet payload stays the same
# process, and the stats answer within 2 s every time. Until both the bomb has hit its limit
# and the hog has been OOM-killed and respawned.
BOMB=$(cgroup_of bomb) HOG=$(cgroup_of hog)
max_bomb=0 rounds=0 hog_respawns=0
watch_round() {
	rounds=$((rounds + 1))
	stats "$STATS" > /tmp/stats.json || fail "the emperor did not answer stats within 2 s (round $rounds)"
	for f in "$BOMB/pids.current" "$BOMB/payload/pids.current"; do
		n=$(cat "$f")
		[ "$n" -le 64 ] || fail "$f is $n, above pids.max 64"
		[ "$n" -gt "$max_bomb" ] && max_bomb=$n
	done
	[ -e "/proc/$quiet_pid" ] || fail "the quiet payload $quiet_pid died (round $rounds): $(describe $(sut_pids sleep))"
	rt=$(vassal_field /tmp/stats.json "$DIR/quiet.ini" pid)
	assert_eq "$quiet_pid" "$(children "$rt")" "the quiet vassal's payload (round $rounds)"
	hog_respawns=$(vassal_field /tmp/stats.json "$DIR/hog.ini" respawns)
	bomb_max=$(($(event "$BOMB/pids.events" max) + $(event "$BOMB/payload/pids.events" max)))
	oom_kills=$(event "$HOG/memory.events" oom_kill)
	[ "$bomb_max" -gt 0 ] && [ "${oom_kills:-0}" -ge 1 ] && [ "${hog_respawns:-0}" -ge 1 ]
}
if ! poll 90 watch_round; then
	show_sut
	fail "after $rounds rounds: bomb pids.events max $bomb_max, hog oom_kill '$oom_kills', hog respawns '$hog_respawns'"
fi
log "after $rounds rounds: bomb at most $max_bomb tasks, pids.events max $bomb_max; hog oom_kill $oom_kills, respawns $hog_respawns"
for f in "$BOMB/pids.events" "$BOMB/payload/pids.events" "$HOG/memory.events" "$HOG/payload/memory.events"; do
	log "$f: $(tr '\n' ' ' < "$f")"
done
grep -q "^oom_kill [1-9]" "$HOG/payload/memory.events" || fail "the OOM kill is not in the hog's payload cgroup: $(tr '\n' ' ' < "$HOG/payload/memory.events")"
# The quiet vassal's cgroup saw none of it.
assert_eq 0 "$(event "$(cgroup_of quiet)/memory.events" oom_kill)" "oom_kill of the quiet vassal"
assert_eq 0 "$(event "$(cgroup_of quiet)/pids.events" max)" "pids.events max of the quiet vassal"
show_sut

terminate_leaving_no_cgroup_process "$CG"
show_sut_log
pass
