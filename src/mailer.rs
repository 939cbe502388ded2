//! Outgoing email through lettre: to an SMTP server when one is configured (pooled, with
//! STARTTLS or TLS as its URL says), else as `.eml` files into the outbox folder.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox as Address, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, Secret};

/// One email, sent with a plain-text and an HTML part (composed in [`crate::emails`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
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

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
    /// Longest one `send` may take: a claim to send an email must outlive it.
    fn timeout(&self) -> Duration;
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

pub struct LettreMailer {
    from: Address,
    transport: Transport,
}

impl LettreMailer {
    pub fn from_config(config: &Config, smtp_password: Option<Secret>) -> anyhow::Result<Self> {
        let from: Address = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail_from {:?} is not an address: {e}", config.mail_from))?;
        let transport = match &config.smtp_url {
            Some(url) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
                    .map_err(|e| anyhow::anyhow!("smtp_url is not usable: {e}"))?
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(user), Some(password)) = (&config.smtp_username, smtp_password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Transport::Smtp(builder.build())
            }
            None => {
                let outbox = config.outbox_dir();
                // Emails carry download links: readable by this user only.
                crate::security::private_files::owner_only_dir(&outbox)?;
                Transport::Outbox(AsyncFileTransport::<Tokio1Executor>::new(outbox))
            }
        };
        Ok(LettreMailer { from, transport })
    }
}

#[async_trait]
impl Mailer for LettreMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Address = email.to.parse().map_err(|_| MailError::BadAddress(email.to.clone()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(|e| MailError::BadAddress(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await.map(drop).map_err(|e| MailError::Transient(e.to_string()))
            }
            Transport::Outbox(outbox) => {
                outbox.send(message).await.map(drop).map_err(|e| MailError::Transient(e.to_string()))
            }
        }
    }

    fn timeout(&self) -> Duration {
        SMTP_TIMEOUT
    }
}
