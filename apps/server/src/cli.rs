//! The command line: `sage-server [serve | migrate | openapi | help]`.

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create a user; the password is read from standard input.
    AdminCreateUser {
        username: String,
        email: Option<String>,
        admin: bool,
    },
    /// Set a user's password (read from standard input) and end their sessions.
    AdminResetPassword { username: String },
    /// Re-encrypt every sealed value with the current secret key.
    AdminReseal,
    /// Migrate, then serve HTTP (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Run background workers only (no HTTP).
    Worker,
    /// Print the OpenAPI document and exit.
    OpenApi,
    /// Print usage.
    Help,
}

pub const USAGE: &str = "usage: sage-server [serve | migrate | openapi | admin … | help]
  serve     apply migrations, then serve HTTP (default)
  migrate   apply database migrations and exit
  worker    run background workers only (agent jobs, planner tasks), until SIGINT/SIGTERM
  openapi   print the OpenAPI 3.1 document and exit
  admin create-user --username U --password-stdin [--email E] [--role user|admin]
  admin reset-password --username U --password-stdin
  admin reseal  re-encrypt every sealed value with SAGE_SECRET_KEY (after a rotation)
Configuration comes from SAGE_* environment variables and the TOML file named by SAGE_CONFIG.";

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => Ok(Command::Serve),
        ["migrate"] => Ok(Command::Migrate),
        ["worker"] => Ok(Command::Worker),
        ["openapi"] => Ok(Command::OpenApi),
        ["help" | "--help" | "-h"] => Ok(Command::Help),
        ["admin", "reseal"] => Ok(Command::AdminReseal),
        ["admin", "create-user", rest @ ..] => {
            let flags = flags(rest)?;
            let admin = match flags.role.as_deref() {
                None | Some("user") => false,
                Some("admin") => true,
                Some(other) => {
                    return Err(format!(
                        "--role must be user or admin, not `{other}`\n{USAGE}"
                    ));
                }
            };
            Ok(Command::AdminCreateUser {
                username: flags
                    .username
                    .ok_or_else(|| format!("--username is required\n{USAGE}"))?,
                email: flags.email,
                admin,
            })
        }
        ["admin", "reset-password", rest @ ..] => {
            let flags = flags(rest)?;
            if flags.email.is_some() || flags.role.is_some() {
                return Err(format!(
                    "reset-password takes only --username and --password-stdin\n{USAGE}"
                ));
            }
            Ok(Command::AdminResetPassword {
                username: flags
                    .username
                    .ok_or_else(|| format!("--username is required\n{USAGE}"))?,
            })
        }
        other => Err(format!("unknown arguments: {}\n{USAGE}", other.join(" "))),
    }
}

#[derive(Default)]
struct AdminFlags {
    username: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

/// Parses `--username U --password-stdin [--email E] [--role R]`; the password never comes
/// from the command line, where other users could read it.
fn flags(args: &[&str]) -> Result<AdminFlags, String> {
    let mut flags = AdminFlags::default();
    let mut stdin = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .map(|v| (*v).to_owned())
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match *arg {
            "--username" => flags.username = Some(value()?),
            "--email" => flags.email = Some(value()?),
            "--role" => flags.role = Some(value()?),
            "--password-stdin" => stdin = true,
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if !stdin {
        return Err(format!("--password-stdin is required\n{USAGE}"));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command, String> {
        parse(words.iter().map(|w| (*w).to_owned()))
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_words(&[]), Ok(Command::Serve));
        assert_eq!(parse_words(&["serve"]), Ok(Command::Serve));
        assert_eq!(parse_words(&["migrate"]), Ok(Command::Migrate));
        assert_eq!(parse_words(&["openapi"]), Ok(Command::OpenApi));
        assert_eq!(parse_words(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_words(&["admin", "reseal"]), Ok(Command::AdminReseal));
        assert!(
            parse_words(&["serve", "--bogus"])
                .unwrap_err()
                .contains("usage")
        );
    }
}
