#!/bin/sh
# PID 1 of the test guest. Mounts the API filesystems, runs the scenario named by
# emperor.scenario= on the kernel command line for at most emperor.timeout= seconds, prints
# exactly one verdict line on the serial console, and powers off.
#
# A scenario with the line `# guest-init: systemd` gets the real systemd as PID 1 instead:
# this script execs it with vm-scenario.service as the unit to start, and that service runs
# this script again as `/init scenario`, which runs the scenario and gives the verdict.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

[ "$1" = scenario ] || mount -t proc proc /proc
scenario= timeout=200
for arg in $(cat /proc/cmdline); do
	case $arg in
	emperor.scenario=*) scenario=${arg#*=} ;;
	emperor.timeout=*) timeout=${arg#*=} ;;
	esac
done
script=/vm/scenarios/$scenario.sh

if [ "$1" != scenario ] && grep -qx '# guest-init: systemd' "$script" 2>/dev/null; then
	echo "=== booting systemd for $scenario"
	exec /lib/systemd/systemd --unit=vm-scenario.service
fi
# Under systemd, it has mounted these, and the scenario runs in its service's cgroup.
if [ "$1" != scenario ]; then
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /dev/shm
	mount -t devpts devpts /dev/pts
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	mount -t tmpfs -o mode=1777 tmpfs /tmp
	mount -t tmpfs -o mode=0755 tmpfs /run
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	ip link set lo up
	hostname guest

	# The harness (this init, the scenario shell and whatever it runs itself) lives in its own
	# cgroup, so a scenario can tell its own processes from the system under test's: see sut_pids
	# in lib.sh. start_sut moves what it starts back to the root cgroup.
	mkdir /sys/fs/cgroup/harness
	echo $$ > /sys/fs/cgroup/harness/cgroup.procs
fi

verdict() {
	echo "EMPEROR-VM-VERDICT: $*"
	sync
	poweroff -f
	# Should poweroff fail, pid 1 exiting panics the kernel, and panic=-1 with -no-reboot
	# ends qemu.
	exit 1
}

[ -f "$script" ] || verdict "FAIL no scenario $script (emperor.scenario=$scenario)"

echo "=== scenario $scenario (timeout ${timeout}s)"
cd /vm || verdict "FAIL no /vm"
timeout -s KILL "$timeout" sh "$script"
rc=$?

# pass and fail (lib.sh) write the verdict to /run/verdict and exit; the first one written wins.
if [ -s /run/verdict ]; then
	read -r result < /run/verdict
	if [ "$result" = PASS ] && [ "$rc" -ne 0 ]; then
		result="FAIL scenario passed but exited with status $rc"
	fi
elif [ "$rc" -eq 137 ]; then
	result="FAIL scenario timed out after ${timeout}s"
else
	result="FAIL scenario exited with status $rc without calling pass or fail"
fi
verdict "$result"
