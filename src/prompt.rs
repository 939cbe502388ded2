//! Asking the person at the terminal: a line (an email), or a password, read without echo on a
//! terminal or as the first line of standard input with `--password-stdin`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

/// Where a password comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    /// The first line of standard input (`--password-stdin`).
    Stdin,
    /// A prompt without echo on the terminal (an error without one).
    Terminal,
}

impl PasswordSource {
    pub fn from_flag(password_stdin: bool) -> PasswordSource {
        if password_stdin { PasswordSource::Stdin } else { PasswordSource::Terminal }
    }
}

/// A password from `source`; `prompt` is shown on the terminal.
pub fn password(source: PasswordSource, prompt: &str) -> anyhow::Result<String> {
    match source {
        PasswordSource::Stdin => read_line().context("reading the password from standard input"),
        PasswordSource::Terminal => {
            anyhow::ensure!(
                std::io::stdin().is_terminal(),
                "no terminal to ask for the password on: pass it on standard input with --password-stdin"
            );
            rpassword::prompt_password(prompt).context("reading the password from the terminal")
        }
    }
}

/// One line typed at the terminal after `prompt` (on standard error); without a terminal, an
/// error that names `what` was asked for and says `how_else` to give it.
pub fn line(prompt: &str, what: &str, how_else: &str) -> anyhow::Result<String> {
    anyhow::ensure!(std::io::stdin().is_terminal(), "no terminal to ask for the {what} on: {how_else}");
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    read_line()
}

fn read_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
