//! The `sage-server` binary: parse the command and configuration, initialise tracing, then
//! build and run the application. Every start failure is one line on stderr and exit code 1.

use std::process::ExitCode;

use identity::Identity;
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
        _ => {}
    }
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sage-server: {e}");
            ExitCode::from(1)
        }
    }
}

/// The first line of standard input, without its line ending.
fn read_password() -> Result<String, StartError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| StartError::new(format!("cannot read the password from stdin: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(StartError::new("no password on stdin"));
    }
    Ok(password)
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
            Command::AdminCreateUser {
                username,
                email,
                admin,
            } => {
                let password = read_password()?;
                let services = server::Services::connect(&config, true).await?;
                let role = if admin {
                    identity::Role::Admin
                } else {
                    identity::Role::User
                };
                let id = services
                    .identity
                    .create_user_unchecked(identity::NewUser {
                        username: username.clone(),
                        password,
                        email,
                        phonenum: None,
                        nickname: None,
                        role,
                    })
                    .await
                    .map_err(|e| StartError::new(format!("cannot create {username}: {e}")))?;
                println!("{id}");
                Ok(())
            }
            Command::Worker => {
                let services = server::Services::connect(&config, config.migrate_on_start).await?;
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let worker = services.run_workers(&config, stopped);
                tracing::info!("Sage Server worker running");
                server::shutdown_signal().await;
                let _ = stop.send(true);
                let _ = worker.await;
                tracing::info!("worker stopped");
                Ok(())
            }
            Command::AdminResetPassword { username } => {
                let password = read_password()?;
                let services = server::Services::connect(&config, true).await?;
                services
                    .identity
                    .reset_password_unchecked(&username, &password)
                    .await
                    .map_err(|e| {
                        StartError::new(format!("cannot reset the password of {username}: {e}"))
                    })?;
                Ok(())
            }
            Command::AdminReseal => {
                let services = server::Services::connect(&config, true).await?;
                let mut report = services
                    .providers
                    .reseal()
                    .await
                    .map_err(|e| StartError::new(format!("cannot reseal: {e}")))?;
                report.add(
                    services
                        .mcp
                        .reseal()
                        .await
                        .map_err(|e| StartError::new(format!("cannot reseal: {e}")))?,
                );
                report.add(
                    services
                        .oauth
                        .reseal()
                        .await
                        .map_err(|e| StartError::new(format!("cannot reseal: {e}")))?,
                );
                println!(
                    "resealed {} of {} sealed values with the current key",
                    report.changed, report.total
                );
                if report.unreadable > 0 {
                    return Err(StartError::new(format!(
                        "{} sealed values open with no configured key (SAGE_SECRET_KEY, SAGE_SECRET_KEY_PREVIOUS); they were left as they are",
                        report.unreadable
                    )));
                }
                Ok(())
            }
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
