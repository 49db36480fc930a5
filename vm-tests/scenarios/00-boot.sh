# The guest has what every other scenario relies on: the emperor runs, cgroup v2 is mounted,
# namespaces can be made, the tenants exist with private homes, su works, and nginx (with all its
# libraries) serves on loopback, and uWSGI runs with its python3 plugin.
. /vm/scenarios/lib.sh

version=$(emperor --version 2>&1) || fail "emperor --version failed: $version"
[ -n "$version" ] || fail "emperor --version printed nothing"
log "emperor --version: $version"

grep -q '^cgroup2 /sys/fs/cgroup cgroup2 ' /proc/mounts || fail "cgroup2 not mounted on /sys/fs/cgroup"
read -r controllers < /sys/fs/cgroup/cgroup.controllers
log "cgroup controllers: $controllers"
unshare --user --pid --net --uts --ipc --mount --fork true || fail "cannot create namespaces"

for tenant in alice:2001 bob:2002 carol:2003; do
	name=${tenant%:*} id=${tenant#*:}
	assert_eq "$id" "$(id -u "$name")" "uid of $name"
	assert_eq "$id $id 700" "$(stat -c '%u %g %a' "/home/$name")" "owner and mode of /home/$name"
	assert_eq "$id" "$(as_user "$name" id -u)" "id -u run as $name"
	grep -q "^$name:[0-9]*:65536\$" /etc/subuid || fail "no subuid range for $name"
	grep -q "^$name:[0-9]*:65536\$" /etc/subgid || fail "no subgid range for $name"
done

nginx_version=$(nginx -v 2>&1) || fail "nginx -v failed: $nginx_version"
log "$nginx_version"
nginx || fail "nginx did not start"
served() { wget -q -O /tmp/index.html http://127.0.0.1:8080/; }
wait_until 20 served
assert_eq "hello from the guest" "$(cat /tmp/index.html)" "page served by nginx"
nginx -s quit

uwsgi_version=$(uwsgi --version 2>&1) || fail "uwsgi --version failed: $uwsgi_version"
log "uwsgi --version: $uwsgi_version"
# The python3 plugin loads and its Python starts from the packed stdlib: with no app, uWSGI
# then stops with need-app's status 22 (a Python that cannot start is a fatal error instead).
python=$(uwsgi --plugins python3 --http-socket 127.0.0.1:0 --need-app 2>&1)
rc=$?
echo "$python" | grep -q '^Python main interpreter initialized' && [ "$rc" = 22 ] ||
	fail "uWSGI's python3 plugin did not start Python (status $rc): $python"
log "uWSGI's $(echo "$python" | grep '^Python version:')"

pass
