//! Tracing initialisation: human-readable lines by default, JSON lines for production
//! (`SAGE_LOG_FORMAT=json`), filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::StartError;
use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Call once, after the configuration is read.
pub fn init(config: &Config) -> Result<(), StartError> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| StartError::new(format!("invalid configuration: RUST_LOG: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| StartError::new(format!("cannot initialise logging: {e}")))
}
