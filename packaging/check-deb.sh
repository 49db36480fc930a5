#!/usr/bin/env bash
# Install the .deb with dpkg into a clean directory root and check what it installed: the binaries
# run, every shipped example config passes `emperor check`, the unit passes
# `systemd-analyze verify`, the man pages and completions are where their tools look.
set -euo pipefail
deb=${1:?usage: check-deb.sh PACKAGE.deb}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# dpkg itself, into a root of its own (an empty dpkg database; libc6 is the host's).
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
out=$(dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" 2>&1) ||
  fail "dpkg -i: $out"
[ "$(dpkg --root="$root" -s emperor | sed -n 's/^Status: //p')" = "install ok installed" ] ||
  fail "dpkg did not install it"
fail() { echo "check-deb: $*" >&2; exit 1; }
for path in usr/bin/emperor usr/bin/emperor-vassal lib/systemd/system/emperor.service \
  etc/emperor/emperor.ini etc/emperor/vassals/README usr/share/man/man1/emperor.1.gz \
  usr/share/bash-completion/completions/emperor usr/share/zsh/vendor-completions/_emperor \
  usr/share/fish/vendor_completions.d/emperor.fish usr/share/doc/emperor/copyright; do
  [ -e "$root/$path" ] || fail "the package has no /$path"
done
dpkg-deb -f "$deb" Package Version Depends
"$root/usr/bin/emperor" --version
for config in "$root"/usr/share/doc/emperor/examples/vassals/*; do
  "$root/usr/bin/emperor" check --binary-path /bin/true "$config" >/dev/null ||
    fail "emperor check $config"
done
# The unit as installed, with ExecStart pointing at the installed binary (verify checks that
# it exists; the binary is not installed on this host).
unit_dir=$(mktemp -d)
sed "s#/usr/bin/emperor#$root/usr/bin/emperor#" "$root/lib/systemd/system/emperor.service" \
  > "$unit_dir/emperor.service"
systemd-analyze verify "$unit_dir/emperor.service" ||
  fail "systemd-analyze verify of the installed unit"
rm -rf "$unit_dir"
conffiles=$(dpkg-deb -I "$deb" conffiles)
grep -qx /etc/emperor/emperor.ini <<<"$conffiles" || fail "not a conffile: /etc/emperor/emperor.ini ($conffiles)"
echo "check-deb: $(basename "$deb") installs and checks"
