//! `--help` shows each setting's default. The settings stay optional in the parser (a flag
//! given beats the TOML file, which beats the default: [`crate::config`]), so the defaults are
//! not clap defaults: they are read from [`Config::defaults`] and written into the help.

use clap::{Arg, Command};

use crate::config::Config;

/// `command` with `[default: ...]` after the help of every setting that has a default (unless
/// the help says it already).
pub fn shown_in_help(command: Command) -> Command {
    annotate(command, &Config::defaults())
}

fn annotate(command: Command, defaults: &toml::Table) -> Command {
    command
        .mut_args(|arg| match defaults.get(arg.get_id().as_str()) {
            // Some help says the default in words ("the number of cores").
            Some(value) if !arg.get_help().is_some_and(|help| help.to_string().contains("(default:")) => {
                with_default(arg, &shown(value))
            }
            _ => arg,
        })
        .mut_subcommands(|sub| annotate(sub, defaults))
}

fn with_default(arg: Arg, default: &str) -> Arg {
    let help = arg.get_help().map(|help| format!("{help} [default: {default}]"));
    let long_help = arg.get_long_help().map(|help| format!("{help}\n\n[default: {default}]"));
    let arg = match help {
        Some(help) => arg.help(help),
        None => arg,
    };
    match long_help {
        Some(help) => arg.long_help(help),
        None => arg,
    }
}

/// A default as one would type it on the command line.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(","),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn the_help_of_up_shows_the_defaults_of_the_configuration() {
        let mut command = shown_in_help(Cli::command());
        let up = command.find_subcommand_mut("up").unwrap();
        let help = up.render_help().to_string();
        assert!(help.contains("[default: 127.0.0.1:8080]"), "{help}");
        assert!(help.contains("[default: 2147483648]"), "{help}");
        assert!(!help.contains("(default: all four) [default"), "a default said in words is not said twice");
        assert!(help.contains("[default: 192]"), "{help}");
        assert!(!help.contains("mysql://user:password@host:port/db). [default"), "no default for an optional URL");
    }
}
