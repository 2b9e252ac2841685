//! The command line: `sage-server [serve | migrate | openapi | help]`.

/// What the binary was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Migrate, then serve HTTP (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Print the OpenAPI document and exit.
    OpenApi,
    /// Print usage.
    Help,
}

pub const USAGE: &str = "usage: sage-server [serve | migrate | openapi | help]
  serve     apply migrations, then serve HTTP (default)
  migrate   apply database migrations and exit
  openapi   print the OpenAPI 3.1 document and exit
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
        ["openapi"] => Ok(Command::OpenApi),
        ["help" | "--help" | "-h"] => Ok(Command::Help),
        other => Err(format!("unknown arguments: {}\n{USAGE}", other.join(" "))),
    }
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
        assert!(
            parse_words(&["serve", "--bogus"])
                .unwrap_err()
                .contains("usage")
        );
    }
}
