# Tyrant mode with a root emperor: three tenants, each vassal as its config's owner in its own
# user namespace, none able to reach another; root's config refused; a chowned config stopped.
# The story is in lib-tenants.sh.
. /vm/scenarios/lib.sh
. /vm/scenarios/lib-tenants.sh

check_emperor() {
	assert_eq "0 0 0 0" "$(uids "$SUT_PID")" "the emperor's uids"
}
tenants_story
pass
