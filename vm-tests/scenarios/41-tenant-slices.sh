# Tenants share one emperor safely: in tyrant mode each tenant's vassals live in one cgroup
# slice with the provider's limits for the whole tenant (--tenant-pids-max, --tenant-memory-max).
# alice spreads five fork bombs and five memory hogs over ten vassals; bob serves HTTP from one
# vassal. alice's slice never exceeds its tasks limit and its hogs are OOM-killed inside it;
# bob's slice sees none of it, and every one of bob's requests is answered (latency reported).
. /vm/scenarios/lib.sh

STATS=127.0.0.1:9191
DIR=/tmp/vassals
SUT_LOG=/tmp/emperor.log
CG=/sys/fs/cgroup/emperor
ALICE=$CG/tenant-uid-2001 BOB=$CG/tenant-uid-2002
mkdir -m 1777 "$DIR"

# drop USER NAME COMMAND: a config owned by USER, written elsewhere and moved in whole.
drop() {
	printf '%s\n' '[uwsgi]' "unprivileged-binary-patch-arg = $3" > "/tmp/$2.ini"
	chown "$1:$(id -g "$1")" "/tmp/$2.ini" && mv "/tmp/$2.ini" "$DIR/$2.ini" || fail "cannot drop $2.ini for $1"
}

as_user bob sh -c 'mkdir -p /home/bob/www && echo hello from bob > /home/bob/www/index.html' ||
	fail "cannot write bob's page"
start_sut emperor --emperor "$DIR" --emperor-tyrant --emperor-use-clone fs,ipc,pid,uts \
	--tenant-pids-max 100 --tenant-memory-max 96M --emperor-stats "$STATS" 2> "$SUT_LOG"
drop bob web "/bin/busybox httpd -f -p 127.0.0.1:8081 -h /home/bob/www"
served() { timeout 5 wget -q -O /tmp/page http://127.0.0.1:8081/ 2> /dev/null; }
wait_until 60 served
assert_eq "hello from bob" "$(cat /tmp/page)" "bob's page"

for i in 1 2 3 4 5; do
	drop alice "bomb$i" "/bin/sh -c 'while :; do sleep 1000 & done'"
	drop alice "hog$i" "/bin/sh -c 'x=0123456789abcdef; while :; do x=\$x\$x; done'"
done
alice_up() { [ -d "$ALICE" ] && [ "$(find "$ALICE" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 10 ]; }
wait_until 60 alice_up
assert_eq 100 "$(cat "$ALICE/pids.max")" "alice's slice pids.max"
assert_eq $((96 << 20)) "$(cat "$ALICE/memory.max")" "alice's slice memory.max"
[ -d "$BOB" ] || fail "no slice for bob: $(ls "$CG")"

# While alice misbehaves, bob is asked for his page over and over; each answer is timed.
event() { sed -n "s/^$2 //p" "$1" 2>/dev/null; }
rounds=0 failed=0 worst=0 total=0 most=0
round() {
	rounds=$((rounds + 1))
	n=$(cat "$ALICE/pids.current")
	[ "$n" -le 100 ] || fail "alice's slice holds $n tasks, above its pids.max 100"
	[ "$n" -gt "$most" ] && most=$n
	t0=$(now_cs)
	served || failed=$((failed + 1))
	took=$(($(now_cs) - t0))
	total=$((total + took))
	[ "$took" -gt "$worst" ] && worst=$took
	# Each vassal may have 1024 tasks: reaching 100 means the slice's limit is what binds
	# (Linux 6.1 counts the refused fork in the forking task's cgroup, not in the slice).
	[ "$most" -ge 100 ] && [ "$(event "$ALICE/memory.events" oom_kill)" -ge 1 ] &&
		[ "$rounds" -ge 100 ]
}
if ! poll 120 round; then
	show_sut
	for d in "$ALICE"/*/; do log "$d: pids $(cat "$d/pids.current") events $(tr '\n' ' ' < "$d/pids.events") mem $(cat "$d/memory.current")"; done
	fail "after $rounds rounds: at most $most tasks, oom_kill $(event "$ALICE/memory.events" oom_kill)"
fi
log "bob: $rounds requests while alice misbehaved, $failed failed, mean $((total * 10 / rounds)) ms, worst $((worst * 10)) ms"
log "alice's slice: at most $most tasks; memory.events $(tr '\n' ' ' < "$ALICE/memory.events")"
assert_eq 0 "$failed" "bob's failed requests"
assert_eq 0 "$(event "$BOB/memory.events" oom_kill)" "oom_kill in bob's slice"
assert_eq 0 "$(event "$BOB/pids.events" max)" "pids.events max in bob's slice"
stats "$STATS" > /tmp/stats.json || fail "the emperor did not answer stats"
show_sut

terminate_leaving_no_cgroup_process "$CG"
pass
