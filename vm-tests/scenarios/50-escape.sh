# A tenant's payload tries every escape a tenant would try (jail-probe): read /etc/shadow,
# write outside its home, ptrace or signal the emperor and another tenant, mount, a new user
# namespace, root through a setuid binary, /proc/1/root, the keyring, bpf, perf_event_open,
# userfaultfd, /proc/self/exe for writing, leaked fds. Every attempt must fail with the
# expected error. The same probe run as root outside any jail must escape (the control), so
# the scenario can fail.
. /vm/scenarios/lib.sh

# A setuid-root busybox the tenant can exec, and a drop box the jailed probe can write to.
cp /bin/busybox /tmp/suid-busybox
chmod 4755 /tmp/suid-busybox
mkdir -p /tmp/probe-out /srv/vassals /srv/staging
chmod 1777 /tmp/probe-out
chmod 755 /srv/vassals
# Configs are written and chowned in /srv/staging, then renamed in: same filesystem, so the
# emperor sees them whole and with their final owner.

start_sut emperor --emperor /srv/vassals --emperor-tyrant --emperor-use-clone fs,net,ipc,pid,uts \
	--emperor-stats 127.0.0.1:9191

# Bob's vassal: the other tenant the probe tries to reach.
cat > /srv/staging/bob.ini <<'INI'
[uwsgi]
unprivileged-binary-patch-arg = sleep 1000
INI
chown bob:bob /srv/staging/bob.ini
mv /srv/staging/bob.ini /srv/vassals/bob.ini
bob_payload() {
	for rt in $(sut_pids); do
		[ "$(cat /proc/$rt/comm 2>/dev/null)" = sleep ] && { echo "$rt"; return 0; }
	done
	return 1
}
wait_until 30 bob_payload
BOB=$(bob_payload)
log "bob's payload is $BOB (host pid)"

# Alice's vassal runs the probe as an in-jail user (1000, from her subuid range), not as the
# jail's root, so setuid(0) means something.
cat > /srv/staging/alice.ini <<INI
[uwsgi]
uid = 1000
gid = 1000
unprivileged-binary-patch-arg = /bin/sh -c "/usr/bin/jail-probe --emperor-pid $SUT_PID --other-pid $BOB --other-home /home/bob --setuid-binary /tmp/suid-busybox > /tmp/probe-out/jailed.txt 2>&1; echo \$? > /tmp/probe-out/jailed.rc; exec sleep 1000"
INI
chown alice:alice /srv/staging/alice.ini
mv /srv/staging/alice.ini /srv/vassals/alice.ini
probed() { [ -s /tmp/probe-out/jailed.rc ]; }
wait_until 60 probed
log "the jailed probe says:"
cat /tmp/probe-out/jailed.txt
[ "$(cat /tmp/probe-out/jailed.rc)" = 0 ] || fail "a jailed escape attempt succeeded: $(grep FAIL /tmp/probe-out/jailed.txt | tr '\n' ';')"
grep -q "^PASS signal the emperor" /tmp/probe-out/jailed.txt || fail "the probe did not try to signal the emperor"
grep -q "^PASS gain root through a setuid binary" /tmp/probe-out/jailed.txt || fail "the probe did not try the setuid binary"
grep -q "^PASS setuid(0)" /tmp/probe-out/jailed.txt || fail "setuid(0) was not judged"
kill -0 "$SUT_PID" || fail "the emperor is gone"
kill -0 "$BOB" || fail "bob's payload is gone"
[ ! -e /etc/jail-probe-was-here ] || fail "the probe wrote into /etc"
[ ! -e /home/bob/jail-probe-was-here ] || fail "the probe wrote into bob's home"

# The control: the same probe as root outside any jail must escape.
/usr/bin/jail-probe --control > /tmp/probe-out/control.txt 2>&1
rc=$?
log "the control (no jail) says:"
grep -v '^INFO' /tmp/probe-out/control.txt
[ "$rc" = 0 ] || fail "the control could not escape: the probes prove nothing"
pass
