# guest-init: systemd
# The shipped unit under the real systemd as PID 1 (see guest/init.sh): installed by hand as
# docs/systemd.md says, with the shipped /etc/emperor/emperor.ini and two of the README's example
# vassals. `systemctl start` waits for READY=1 and the vassals run in the cgroup delegated to
# emperor.service; each payload's lines are in the journal under VASSAL=<its name>;
# `systemctl status` shows the emperor's STATUS=; `systemctl reload` gives every vassal a new
# payload; `systemctl stop` leaves no process of it and no cgroup.
. /vm/scenarios/lib.sh

STATS=/run/emperor/stats.sock
VASSALS=/etc/emperor/vassals
UNIT_CGROUP=/sys/fs/cgroup/system.slice/emperor.service

# journal_of FIELD=VALUE: the messages journald holds with that field.
journal_of() {
	journalctl --no-pager -o cat "$1" 2>/dev/null
}
# has_line FIELD=VALUE TEXT: journald holds a message with that field that contains TEXT.
has_line() {
	journal_of "$1" | grep -q "$2"
}
# On failure, what systemd and the emperor said.
show_journal() {
	log "--- journal ---"
	journalctl --no-pager -o short-monotonic | tail -80
	log "--- end of journal ---"
}

[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
log "PID 1 is systemd: $(systemctl --version | head -1)"

mkdir -p "$VASSALS"
cp /vm/packaging/emperor.service /etc/systemd/system/emperor.service
cp /vm/packaging/emperor.ini /etc/emperor/emperor.ini
cp /vm/packaging/vassals/clock.ini /vm/packaging/vassals/worker.yml "$VASSALS/"
systemctl daemon-reload || fail "systemctl daemon-reload failed"

# Type=notify: systemctl start returns once the emperor said READY=1.
log "systemctl start emperor"
systemctl start emperor || { show_journal; fail "systemctl start emperor failed"; }
state=$(systemctl is-active emperor)
[ "$state" = active ] || { show_journal; fail "emperor is $state after systemctl start"; }
log "active: $(systemctl show -p MainPID -p StatusText emperor | tr '\n' ' ')"
main=$(systemctl show -p MainPID --value emperor)
assert_eq "0::/system.slice/emperor.service/.emperor" "$(cat /proc/$main/cgroup)" \
	"the emperor's cgroup (Delegate=yes, emperor-cgroup = self)"

# Every vassal runs in the delegated cgroup, below emperor.service.
for config in clock.ini worker.yml; do
	poll 60 payload_of "$STATS" "$VASSALS/$config" || { show_journal; fail "no payload for $config"; }
	cgroup=$(cat /proc/$payload/cgroup)
	case $cgroup in
	0::/system.slice/emperor.service/tenant-*/payload) ;;
	*) fail "$config's payload $payload is in $cgroup, not below emperor.service" ;;
	esac
	eval "before_${config%.*}=$payload"
	log "$config: payload $payload in $cgroup"
done

# systemctl status shows the emperor's STATUS= line.
poll 10 sh -c 'systemctl status emperor --no-pager | grep -q "Status: \"2 vassals: 2 running"' ||
	fail "systemctl status shows no STATUS= with 2 running: $(systemctl status emperor --no-pager | head -8)"
log "$(systemctl status emperor --no-pager | grep 'Status:')"

# Each payload's lines reach the journal as records a journalctl filter selects.
poll 30 has_line VASSAL=clock.ini "hello from clock" ||
	{ show_journal; fail "journalctl VASSAL=clock.ini has no payload line"; }
poll 30 has_line VASSAL=worker.yml "worker waiting for jobs" ||
	{ show_journal; fail "journalctl VASSAL=worker.yml has no payload line"; }
has_line VASSAL=worker.yml "hello from clock" && fail "journalctl VASSAL=worker.yml shows clock's line"
has_line _SYSTEMD_UNIT=emperor.service "payload: hello from clock" ||
	fail "the payload's line is not attributed to emperor.service"
log "journalctl VASSAL=clock.ini: $(journal_of VASSAL=clock.ini | grep 'hello from clock' | head -1)"
log "journalctl VASSAL=worker.yml: $(journal_of VASSAL=worker.yml | grep 'waiting' | head -1)"

# systemctl reload: SIGHUP, RELOADING=1, every vassal reloaded, READY=1.
log "systemctl reload emperor"
systemctl reload emperor || { show_journal; fail "systemctl reload emperor failed"; }
for config in clock.ini worker.yml; do
	eval "old=\$before_${config%.*}"
	new_payload() { payload_of "$STATS" "$VASSALS/$config" && [ "$payload" != "$old" ]; }
	poll 60 new_payload || { show_journal; fail "$config kept payload $old after the reload"; }
	log "$config: payload $old -> $payload"
done
has_line _SYSTEMD_UNIT=emperor.service "reloading" || fail "the emperor logged no reload"
journalctl --no-pager -o cat _PID=1 | grep -q "Reloaded emperor" ||
	{ show_journal; fail "systemd did not see the reload finish (READY=1 after RELOADING=1)"; }
state=$(systemctl is-active emperor)
assert_eq active "$state" "the emperor's state after the reload"

# systemctl stop: every vassal stopped, then the emperor; nothing of it is left.
cgroup_pids=$(cat $(find "$UNIT_CGROUP" -name cgroup.procs) | tr '\n' ' ')
log "systemctl stop emperor (the unit's cgroup holds $cgroup_pids)"
systemctl stop emperor || { show_journal; fail "systemctl stop emperor failed"; }
state=$(systemctl is-active emperor)
[ "$state" = inactive ] || fail "emperor is $state after systemctl stop"
for pid in $cgroup_pids; do
	[ -d "/proc/$pid" ] && fail "process $pid of the unit is left: $(describe "$pid")"
done
[ ! -d "$UNIT_CGROUP" ] || {
	for procs in $(find "$UNIT_CGROUP" -name cgroup.procs); do
		[ -s "$procs" ] && fail "$procs still lists $(cat "$procs" | tr '\n' ' ')"
	done
}
journalctl --no-pager -o cat _PID=1 | grep -q "Stopped emperor" || fail "systemd did not log the stop"
log "stopped: $(journalctl --no-pager -o cat _PID=1 | grep 'emperor' | tail -2 | tr '\n' ' ')"
pass
