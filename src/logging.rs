//! Log lines go to stderr; `EMPEROR_LOG` (or `RUST_LOG`) sets the filter, `info` by default.
//! The emperor and its runtimes log the same way.

pub fn init() {
    let filter = std::env::var("EMPEROR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
