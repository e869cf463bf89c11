//! Logging from configuration: `Logging:LogLevel` (.NET level names and
//! categories) as a `tracing` filter, and the console subscriber the host
//! installs.

use crate::config::Configuration;

/// Map a .NET log level name to a tracing level directive.
fn level_of(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "information" | "info" => "info",
        "warning" | "warn" => "warn",
        "error" | "critical" => "error",
        "none" | "off" => "off",
        _ => return None,
    })
}

/// The `tracing` filter from `Logging:LogLevel`: `Default` sets the global
/// level; other entries whose category is a Rust target (`kestrel`,
/// `kestrel::connections`, `my_app`) set that target's level. Dotted .NET
/// categories (`Microsoft.AspNetCore`) are ignored.
pub fn log_filter_from_config(config: &Configuration) -> String {
    let mut directives = vec![config
        .get("Logging:LogLevel:Default")
        .and_then(level_of)
        .unwrap_or("info")
        .to_string()];
    for (key, value) in config.section("Logging:LogLevel") {
        let category = &key["Logging:LogLevel:".len()..];
        if category.eq_ignore_ascii_case("default") || category.contains('.') {
            continue;
        }
        if let Some(level) = level_of(value) {
            directives.push(format!("{category}={level}"));
        }
    }
    directives.join(",")
}

/// Console logging (tracing-subscriber `fmt`): `RUST_LOG` when set, else
/// [`log_filter_from_config`]. Does nothing if a subscriber is already set.
pub fn init_logging(config: &Configuration) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v).ok(),
        _ => None,
    }
    .unwrap_or_else(|| {
        EnvFilter::try_new(log_filter_from_config(config))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // The filter is reloadable: a configuration reload changes the levels.
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
        .try_init();
    if installed.is_ok() {
        crate::reload::set_log_filter_handle(handle);
    }
}
