# The three-tenant story shared by 30-tyrant-tenants and 31-unprivileged-emperor, sourced after
# lib.sh: `tenants_story EMPEROR_ARGS...` runs it with a tyrant emperor given these extra
# arguments, calling `check_emperor` (which the scenario defines) once every vassal is up.
#
# alice, bob and carol each drop a config they own into a shared sticky directory. Each vassal
# must run, runtime and payload, as its config's owner in a user namespace of its own; each
# payload (fixtures/tenants/probe.sh) tries to read and write the other tenants' homes and to
# signal their payloads, and every attempt must fail. A config owned by root is refused, and a
# config given to another tenant (chown) stops its vassal without touching the others.

STATS=127.0.0.1:9191
DIR=/tmp/vassals
SUT_LOG=/tmp/emperor.log
TENANT_NAMES="alice bob carol"

owner_of() {
	case $1 in alice) echo 2001 ;; bob) echo 2002 ;; carol) echo 2003 ;; esac
}

# tenant_pids NAME: sets rt (runtime) and pl (payload) from the stats; status 1 if not both up.
rt= pl=
tenant_pids() {
	rt=$(vassal_field /tmp/stats.json "$DIR/$1.ini" pid) pl=
	[ -n "$rt" ] && [ "$rt" -gt 0 ] || return 1
	pl=$(children "$rt")
	[ -n "$pl" ]
}

all_payloads_up() {
	stats "$STATS" > /tmp/stats.json || return 1
	for t in $TENANT_NAMES; do
		tenant_pids "$t" || return 1
	done
}

tenants_story() {
	mkdir -m 1777 "$DIR"
	for t in $TENANT_NAMES; do
		as_user "$t" sh -c "echo secret of $t > /home/$t/secret" || fail "cannot write /home/$t/secret as $t"
	done
	start_sut emperor --emperor "$DIR" --emperor-tyrant --emperor-use-clone fs,ipc,pid,uts \
		--emperor-stats "$STATS" "$@" 2> "$SUT_LOG"

	# Each tenant writes its config elsewhere and moves it in: it is theirs, and never seen
	# half-written.
	for t in $TENANT_NAMES; do
		others=$(echo $TENANT_NAMES | tr ' ' '\n' | grep -vx "$t" | tr '\n' ' ')
		as_user "$t" sh -c "printf '%s\n' '[uwsgi]' \
			'unprivileged-binary-patch-arg = /bin/sh /vm/fixtures/tenants/probe.sh $t $others' \
			> /tmp/$t.ini && mv /tmp/$t.ini $DIR/$t.ini" || fail "$t cannot drop a config in $DIR"
	done
	ls -ln "$DIR"

	if ! poll 60 all_payloads_up; then
		show_sut
		fail "not every tenant's payload came up: $(cat /tmp/stats.json)"
	fi
	show_sut
	check_emperor

	host_userns=$(readlink /proc/1/ns/user)
	seen_userns=
	: > /tmp/tenant-pids.tmp
	for t in $TENANT_NAMES; do
		tenant_pids "$t" || fail "$t's vassal went away"
		uid=$(owner_of "$t")
		eval "rt_$t=$rt pl_$t=$pl"
		for pid in "$rt" "$pl"; do
			assert_eq "$uid $uid $uid $uid" "$(uids "$pid")" "host uids of $t's $(cat /proc/$pid/comm) $pid"
			assert_eq "$uid" "$(stat -c %u "/proc/$pid")" "owner of /proc/$pid ($t)"
		done
		userns=$(readlink "/proc/$rt/ns/user")
		[ "$userns" != "$host_userns" ] || fail "$t's runtime $rt is in the host's user namespace $userns"
		# The payload runs as the owner inside the jail too: in a user namespace of its own,
		# nested in its runtime's, where the owner's uid maps to the jail's root.
		pl_userns=$(readlink "/proc/$pl/ns/user")
		[ "$pl_userns" != "$userns" ] && [ "$pl_userns" != "$host_userns" ] ||
			fail "$t's payload $pl is not in a user namespace of its own: $pl_userns"
		case " $seen_userns " in
		*" $userns "*) fail "$t shares the user namespace $userns with another tenant" ;;
		esac
		seen_userns="$seen_userns $userns"
		assert_eq "$uid" "$(vassal_field /tmp/stats.json "$DIR/$t.ini" uid)" "uid of $t's vassal in the stats"
		log "$t: runtime $rt and payload $pl run as $uid in $userns"
		echo "$t $pl" >> /tmp/tenant-pids.tmp
	done
	mv /tmp/tenant-pids.tmp /tmp/tenant-pids

	# Every probe reports; no attempt on another tenant succeeded.
	results_written() {
		for t in $TENANT_NAMES; do
			[ -s "/home/$t/results" ] || return 1
		done
	}
	poll 60 results_written || fail "not every probe wrote its results: $(ls -l /home/*)"
	for t in $TENANT_NAMES; do
		log "$t's probe:"
		sed 's/^/    /' "/home/$t/results"
		uid=$(owner_of "$t")
		grep -q "^me uid=$uid gid=$uid " "/home/$t/results" || fail "$t's payload does not see its owner's ids $uid: $(head -1 "/home/$t/results")"
		assert_eq 7 "$(grep -c ': denied (' "/home/$t/results")" "denied attempts of $t (3 per other tenant, 1 to see them)"
		if grep -q ALLOWED "/home/$t/results"; then
			fail "$t reached another tenant: $(grep ALLOWED "/home/$t/results" | tr '\n' ';')"
		fi
		for other in $TENANT_NAMES; do
			[ -e "/home/$other/from-$t" ] && fail "$t wrote /home/$other/from-$t"
		done
		assert_eq "secret of $t" "$(cat "/home/$t/secret")" "$t's secret"
	done

	# Idle, each tenant's runtime hibernates: emperor-keeper in the same pid, as the tenant.
	for t in $TENANT_NAMES; do
		eval "rt=\$rt_$t"
		hibernated() { [ "$(cat "/proc/$rt/comm" 2>/dev/null)" = emperor-keeper ]; }
		poll 30 hibernated || fail "$t's runtime $rt does not hibernate: $(describe "$rt")"
		uid=$(owner_of "$t")
		assert_eq "$uid $uid $uid $uid" "$(uids "$rt")" "host uids of $t's hibernated runtime"
	done
	log "every tenant's runtime hibernated"
	# A reload wakes alice's: the same runtime starts her payload again, as her.
	as_user alice touch "$DIR/alice.ini" || fail "alice cannot touch her config"
	reloaded() {
		new=$(children "$rt_alice")
		[ -n "$new" ] && [ "$new" != "$pl_alice" ] &&
			[ "$(uids "$new")" = "$(owner_of alice) $(owner_of alice) $(owner_of alice) $(owner_of alice)" ]
	}
	poll 30 reloaded || fail "alice's runtime $rt_alice did not start a new payload: $(describe $(sut_pids))"
	log "alice reloaded: runtime $rt_alice, payload $pl_alice -> $new"
	pl_alice=$new

	# A config owned by root is refused: nothing runs it, the log names the file.
	printf '%s\n' '[uwsgi]' 'unprivileged-binary-patch-arg = /bin/sleep 4242' > /tmp/root.ini
	mv /tmp/root.ini "$DIR/root.ini"
	refused_root() { grep -q "$DIR/root.ini: refused" "$SUT_LOG"; }
	poll 30 refused_root || fail "no log line refusing $DIR/root.ini"
	log "emperor: $(grep "$DIR/root.ini: refused" "$SUT_LOG")"
	for pid in $(sut_pids sleep); do
		grep -q 4242 "/proc/$pid/cmdline" && fail "root's config runs: $(describe "$pid")"
	done
	stats "$STATS" > /tmp/stats.json || fail "no stats after root.ini"
	[ -z "$(vassal_field /tmp/stats.json "$DIR/root.ini" pid)" ] ||
		fail "root.ini has a vassal: $(vassal_field /tmp/stats.json "$DIR/root.ini" state)"

	# carol's config is given to bob: carol's vassal stops and stays refused; alice's and bob's
	# keep their processes.
	chown 2002:2002 "$DIR/carol.ini"
	log "chown bob: $DIR/carol.ini"
	carol_gone() {
		grep -q "$DIR/carol.ini: owner changed from 2003:2003 to 2002:2002" "$SUT_LOG" &&
			[ ! -e "/proc/$rt_carol" ] && [ ! -e "/proc/$pl_carol" ]
	}
	if ! poll 30 carol_gone; then
		show_sut
		fail "carol's vassal (runtime $rt_carol, payload $pl_carol) not refused and stopped 30 s after the chown"
	fi
	log "emperor: $(grep "$DIR/carol.ini: owner changed" "$SUT_LOG")"
	stats "$STATS" > /tmp/stats.json || fail "no stats after the chown"
	for t in alice bob; do
		eval "rt=\$rt_$t pl=\$pl_$t"
		assert_eq "$rt" "$(vassal_field /tmp/stats.json "$DIR/$t.ini" pid)" "$t's runtime after the chown"
		assert_eq "$pl" "$(children "$rt")" "$t's payload after the chown"
	done
	carol_pid=$(vassal_field /tmp/stats.json "$DIR/carol.ini" pid)
	[ -z "$carol_pid" ] || [ "$carol_pid" = -1 ] || fail "carol's config runs again, as pid $carol_pid"
	for pid in $(sut_pids); do
		[ "$(stat -c %u "/proc/$pid")" = 2002 ] || continue
		[ "$pid" = "$rt_bob" ] || [ "$pid" = "$pl_bob" ] || fail "a process of bob's besides his vassal: $(describe "$pid")"
	done

	end_sut TERM 30
	show_sut_log
}
