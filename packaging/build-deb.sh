#!/usr/bin/env bash
# Build target/debian/emperor_VERSION_ARCH.deb with cargo-deb ([package.metadata.deb] in
# Cargo.toml): both binaries, the systemd unit, man pages, shell completions, /etc/emperor.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || {
  echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
cargo build --release --bins
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
target/release/emperor manpages "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1
target/release/emperor completions bash > "$assets/completions/emperor"
target/release/emperor completions zsh > "$assets/completions/_emperor"
target/release/emperor completions fish > "$assets/completions/emperor.fish"
cargo deb --no-build -p emperor
