//! The `sage-server` binary: parse the command and configuration, initialise tracing, then
//! build and run the application. Every start failure is one line on stderr and exit code 1.

use std::process::ExitCode;

use platform::{Config, StartError};
use server::cli::{self, Command};
use server::{Application, openapi};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("sage-server: {message}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::OpenApi => {
            println!("{}", openapi::document_json());
            return ExitCode::SUCCESS;
        }
        Command::Serve | Command::Migrate => {}
    }
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sage-server: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> Result<(), StartError> {
    let config = Config::load().map_err(|e| StartError::new(e.to_string()))?;
    platform::telemetry::init(&config)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::new(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match command {
            Command::Migrate => {
                let db = platform::db::connect(&config).await?;
                server::run_migrations(&db).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            _ => {
                let host = config.host.clone();
                let app = Application::build(config).await?;
                tracing::info!("Sage Server listening on http://{host}:{}", app.port());
                app.run_until_stopped()
                    .await
                    .map_err(|e| StartError::new(format!("the HTTP server failed: {e}")))?;
                tracing::info!("stopped");
                Ok(())
            }
        }
    })
}
