//! E-mail delivery: SMTP (lettre) when `SAGE_SMTP_URL` is set, otherwise the message is written
//! to the log so a single-machine deployment still works.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends one plain-text message.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}

/// Writes messages to the log instead of sending them.
#[derive(Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        tracing::info!(
            to,
            subject,
            body,
            "e-mail (no SAGE_SMTP_URL configured; not sent)"
        );
        Ok(())
    }
}

/// Sends through an SMTP server (`smtp://host:port`, `smtps://…`, `?tls=required` for
/// STARTTLS; credentials in the URL's user info).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid configuration: SAGE_SMTP_URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("invalid configuration: SAGE_MAIL_FROM: {e}"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let to = to.parse::<Mailbox>().map_err(|e| e.to_string())?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body.to_owned())
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
