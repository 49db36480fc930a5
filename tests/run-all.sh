#!/usr/bin/env bash
# Every test of the project, on a fresh machine: installs what the tests need (as root, through
# apt, only when missing), checks formatting and lints, then runs the three tiers:
#   1. unit tests (cargo test, next to the code)
#   2. host integration tests (tests/: the real binary, real namespaces; root for the jail ones)
#   3. VM scenarios (vm-tests/: QEMU boots Debian's kernel with the binary, busybox and nginx;
#      one with the host's systemd as the guest's PID 1)
# and builds the Debian package (cargo-deb, installed with cargo when missing), installs it with
# dpkg into a clean directory root and checks what it installed (packaging/check-deb.sh).
# The pg://, amqp:// and zmq:// tests start their own PostgreSQL cluster and RabbitMQ node
# (temp dirs, free ports) and stop them; the packages only have to be installed.
# CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# Debian packages the tests use, with a file that proves each is installed.
packages=(
  "qemu-system-x86:/usr/bin/qemu-system-x86_64"
  "linux-image-amd64:/boot/vmlinuz-*"
  "busybox-static:/bin/busybox"
  "nginx:/usr/sbin/nginx"
  "util-linux:/usr/bin/nsenter"
  "curl:/usr/bin/curl"
  "wrk:/usr/bin/wrk"
  "python3:/usr/bin/python3"
  # systemd-analyze verifies the shipped unit file; VM scenario 70-systemd boots systemd
  # (with journald, systemctl and journalctl) as the guest's PID 1.
  "systemd:/usr/bin/systemd-analyze"
  # The network monitors' tests: each starts a throwaway server of its own (never the
  # system's) and drives it with a real client.
  "postgresql:/usr/lib/postgresql/*/bin/initdb"
  "rabbitmq-server:/usr/lib/rabbitmq/bin/rabbitmq-server"
  "python3-pika:/usr/lib/python3/dist-packages/pika"
  "python3-zmq:/usr/lib/python3/dist-packages/zmq"
  # Real uWSGI vassals (tests/uwsgi_vassals.rs): the uWSGI binary, its python3 plugin, and
  # seed 004's werkzeug test app.
  "uwsgi-core:/usr/bin/uwsgi"
  "uwsgi-plugin-python3:/usr/lib/uwsgi/plugins/python3_plugin.so"
  "python3-werkzeug:/usr/lib/python3/dist-packages/werkzeug/testapp.py"
  # A second language: a Perl PSGI app.
  "uwsgi-plugin-psgi:/usr/lib/uwsgi/plugins/psgi_plugin.so"
  # tests/metrics.rs: a real Prometheus scrapes --emperor-metrics; promtool checks the format.
  "prometheus:/usr/bin/prometheus"
  # tests/top.rs: `emperor top` in a real terminal, typed at and read.
  "tmux:/usr/bin/tmux"
)

install_missing() {
  local missing=() entry name probe
  for entry in "${packages[@]}"; do
    name=${entry%%:*}
    probe=${entry#*:}
    # shellcheck disable=SC2086 # the probe may be a glob
    compgen -G $probe >/dev/null || missing+=("$name")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "not root: cannot install ${missing[*]}; the tests that need them will say so and skip"
    return 0
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_missing

# The toolchain rust-toolchain.toml pins (with rustfmt and clippy), or a clear message.
check_toolchain() {
  local wanted
  wanted=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
  if ! rustc --version 2>/dev/null | grep -q "^rustc $wanted "; then
    echo "this project builds with Rust $wanted (rust-toolchain.toml); found: $(rustc --version 2>&1 | head -1)"
    echo "install it with: rustup toolchain install $wanted --component rustfmt,clippy"
    exit 1
  fi
  for tool in "cargo fmt" "cargo clippy"; do
    if ! $tool --version >/dev/null 2>&1; then
      echo "Rust $wanted lacks ${tool#cargo }: rustup component add --toolchain $wanted ${tool#cargo }"
      exit 1
    fi
  done
}
check_toolchain

say "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# emperor-keeper is a package of its own (no std, panic = abort; built by jail/build.rs).
cargo fmt --manifest-path jail/keeper/Cargo.toml -- --check
cargo clippy --manifest-path jail/keeper/Cargo.toml --target-dir target/keeper-lint -- \
  -D warnings -W clippy::undocumented_unsafe_blocks

say "tests: unit, host integration (tests/), VM scenarios (vm-tests/)"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt

say "package: the .deb (cargo-deb), installed with dpkg into a clean root and checked"
if ! command -v cargo-deb >/dev/null; then
  say "installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked --quiet
fi
bash packaging/build-deb.sh
bash packaging/check-deb.sh target/debian/emperor_*.deb
