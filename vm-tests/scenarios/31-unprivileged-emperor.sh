# The three-tenant story of 30-tyrant-tenants with the emperor dropped to uid 10000, keeping
# only CAP_SETUID and CAP_SETGID (0xc0). --vassal-max-fd 4096 works around the bug
# 30-tyrant-tenants shows: the tenants' default max-fd ceiling (8192) is above the guest's hard
# RLIMIT_NOFILE (the kernel's 4096), which a payload in a user namespace cannot raise, so every
# tenant's payload fails with setrlimit EPERM.
. /vm/scenarios/lib.sh
. /vm/scenarios/lib-tenants.sh

check_emperor() {
	assert_eq "10000 10000 10000 10000" "$(uids "$SUT_PID")" "the emperor's uids"
	gids=$(sed -n 's/^Gid:[[:space:]]*//p' "/proc/$SUT_PID/status" | tr -s '\t ' ' ')
	assert_eq "10000 10000 10000 10000" "$gids" "the emperor's gids"
	for cap in CapInh:0000000000000000 CapPrm:00000000000000c0 CapEff:00000000000000c0 CapAmb:0000000000000000; do
		value=$(sed -n "s/^${cap%:*}:[[:space:]]*//p" "/proc/$SUT_PID/status")
		assert_eq "${cap#*:}" "$value" "the emperor's ${cap%:*}"
	done
	log "emperor $SUT_PID: $(grep -E '^(Uid|Gid|Groups|Cap...):' "/proc/$SUT_PID/status" | tr -s '\t\n' '  ')"
	assert_eq 10000 "$(sed -n 's/^  "uid": \([0-9]*\),$/\1/p' /tmp/stats.json | tail -1)" "uid in the stats"
	# The clone server that clones the tenants' runtimes runs exactly as the emperor runs.
	server=
	for child in $(children "$SUT_PID"); do
		case "$(tr '\0' ' ' <"/proc/$child/cmdline")" in
		*" clone-server"*) server=$child ;;
		esac
	done
	[ -n "$server" ] || fail "no clone server among the emperor's children: $(describe $(sut_pids))"
	assert_eq "10000 10000 10000 10000" "$(uids "$server")" "the clone server's uids"
	for cap in CapPrm:00000000000000c0 CapEff:00000000000000c0 CapAmb:0000000000000000; do
		value=$(sed -n "s/^${cap%:*}:[[:space:]]*//p" "/proc/$server/status")
		assert_eq "${cap#*:}" "$value" "the clone server's ${cap%:*}"
	done
}
tenants_story --vassal-max-fd 4096 --uid 10000 --gid 10000 --cap setuid,setgid
pass
