//! Outgoing email through lettre: to an SMTP server when one is configured (pooled, with
//! STARTTLS or TLS as its URL says), else as `.eml` files into the outbox folder.
//!
//! An email about a job has a stable identity ([`Email::id`]): its `Message-ID`, and its file
//! name in the outbox. When a node dies after the mail went out but before the job's record
//! said so, the email is sent again (see the notifier); in the outbox the second copy replaces
//! the first, and mail clients that de-duplicate by `Message-ID` show it once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{Mailbox as Address, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Mail, Secret};
use crate::ids::Id;

/// One email, sent with a plain-text and an HTML part (composed in [`crate::emails`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// Stays the same when the email is sent again (letters, digits, `.` and `-` only); `None`
    /// for an email that is never sent twice on purpose.
    pub id: Option<String>,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient can never be mailed (not an email address): do not retry.
    #[error("not a deliverable address: {0}")]
    BadAddress(String),
    /// The server is down or refused for now: retry later.
    #[error("sending failed: {0}")]
    Transient(String),
}

/// Longest one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest writing one email into the outbox may take (a local file).
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(5);

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
    /// Longest one `send` may take: a claim to send an email must outlive it.
    fn timeout(&self) -> Duration;
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

pub struct LettreMailer {
    from: Address,
    transport: Transport,
}

impl LettreMailer {
    /// The mailer `mail` asks for: SMTP, else the `outbox` folder.
    pub fn new(mail: &Mail, outbox: PathBuf, smtp_password: Option<Secret>) -> anyhow::Result<Self> {
        let from: Address = mail
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail_from {:?} is not an address: {e}", mail.mail_from))?;
        let transport = match &mail.smtp_url {
            Some(url) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
                    .map_err(|e| anyhow::anyhow!("smtp_url is not usable: {e}"))?
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(user), Some(password)) = (&mail.smtp_username, smtp_password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Transport::Smtp(builder.build())
            }
            None => {
                // Emails carry download links: readable by this user only.
                crate::security::private_files::owner_only_dir(&outbox)?;
                Transport::Outbox(outbox)
            }
        };
        Ok(LettreMailer { from, transport })
    }
}

#[async_trait]
impl Mailer for LettreMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = self.message(email)?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await.map(drop).map_err(|e| MailError::Transient(e.to_string()))
            }
            Transport::Outbox(outbox) => {
                let name = email.id.clone().unwrap_or_else(|| Id::generate().to_string());
                let write = write_outbox_file(outbox.join(format!("{name}.eml")), message.formatted());
                match tokio::time::timeout(OUTBOX_TIMEOUT, write).await {
                    Ok(written) => written.map_err(|e| MailError::Transient(format!("{e:#}"))),
                    Err(_) => Err(MailError::Transient("writing into the outbox timed out".to_owned())),
                }
            }
        }
    }

    fn timeout(&self) -> Duration {
        match self.transport {
            Transport::Smtp(_) => SMTP_TIMEOUT,
            Transport::Outbox(_) => OUTBOX_TIMEOUT,
        }
    }
}

impl LettreMailer {
    fn message(&self, email: &Email) -> Result<Message, MailError> {
        let to: Address = email.to.parse().map_err(|_| MailError::BadAddress(email.to.clone()))?;
        let message_id = email.id.as_ref().map(|id| format!("<{id}@{}>", self.from.email.domain()));
        Message::builder()
            .message_id(message_id)
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(|e| MailError::BadAddress(e.to_string()))
    }
}

/// Writes one email whole or not at all (a temporary file renamed over its name), so that a
/// reader of the outbox never sees half an email and a resend replaces the first copy.
async fn write_outbox_file(path: PathBuf, bytes: Vec<u8>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let folder = path.parent().unwrap_or(Path::new("."));
        let mut file = tempfile::Builder::new().prefix(".writing-").tempfile_in(folder)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.as_file().sync_all()?;
        file.persist(&path)?;
        Ok::<_, anyhow::Error>(())
    })
    .await
    .context("the outbox writer stopped")?
    .context("writing into the outbox")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(id: Option<&str>, subject: &str) -> Email {
        let text = "body".to_owned();
        Email {
            id: id.map(str::to_owned),
            to: "owner@example.com".into(),
            subject: subject.into(),
            html: text.clone(),
            text,
        }
    }

    fn outbox_files(folder: &Path) -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .map(|path| {
                (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn an_email_sent_again_replaces_its_copy_in_the_outbox_and_keeps_its_message_id() {
        let data = tempfile::tempdir().unwrap();
        let outbox = data.path().join("outbox");
        let mailer = LettreMailer::new(&Mail::default(), outbox.clone(), None).unwrap();
        mailer.send(&email(Some("job-1.ready"), "first")).await.unwrap();
        mailer.send(&email(Some("job-1.ready"), "again")).await.unwrap();
        mailer.send(&email(None, "untracked")).await.unwrap();
        mailer.send(&email(None, "untracked")).await.unwrap();

        let files = outbox_files(&outbox);
        assert_eq!(files.len(), 3, "{files:?}");
        let (name, text) = &files.iter().find(|(name, _)| name == "job-1.ready.eml").unwrap();
        assert!(
            text.contains("Message-ID: <job-1.ready@localhost>") && text.contains("Subject: again"),
            "{name}: {text}"
        );
        assert!(files.iter().all(|(name, _)| name.ends_with(".eml")), "no temporary file left: {files:?}");
        assert_eq!(mailer.timeout(), OUTBOX_TIMEOUT);
    }
}
