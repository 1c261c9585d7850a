//! Logs of every Vouch binary: `tracing` to stderr, filtered by `VOUCH_LOG`
//! (an `EnvFilter` directive such as `debug` or `vouch_log=trace`; default
//! `info`), with colour only on a terminal.

/// Installs the subscriber. Call once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
