//! How a message leaves: an SMTP server (`[email] smtp_url`) or, without one, an `.eml` file
//! under `<data_dir>/mail` so nothing is lost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{EmailSettings, Settings};

/// Where `smtp_url` points, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    /// `smtps://`: TLS from the first byte; otherwise STARTTLS.
    pub implicit_tls: bool,
}

/// Parses `smtp://host[:port]` (STARTTLS, port 587 by default) or `smtps://host[:port]`
/// (port 465). A login belongs in `email.username`/`email.password`, never in the URL, which
/// is not secret.
pub fn parse_smtp_url(raw: &str) -> Result<SmtpTarget, String> {
    let url =
        url::Url::parse(raw.trim()).map_err(|e| format!("email.smtp_url is not a URL ({e})"))?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(format!(
                "email.smtp_url must start with smtp:// or smtps://, not {other}://"
            ));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "email.smtp_url must not carry a login: set email.username and email.password".into(),
        );
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("email.smtp_url names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err("email.smtp_url takes a host and a port only".into());
    }
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    Ok(SmtpTarget {
        host,
        port,
        implicit_tls,
    })
}

/// Start-up checks of `[email]`, naming the bad key.
pub fn validate(settings: &EmailSettings) -> Result<(), String> {
    if !settings.smtp_url.trim().is_empty() {
        parse_smtp_url(&settings.smtp_url)?;
    }
    settings
        .from
        .parse::<Mailbox>()
        .map_err(|e| format!("email.from is not a mail address ({e})"))?;
    if settings.username.expose_secret().is_empty() != settings.password.expose_secret().is_empty()
    {
        return Err("email.username and email.password go together".into());
    }
    if settings.timeout_secs == 0 || settings.max_attempts == 0 || settings.concurrency == 0 {
        return Err(
            "email.timeout_secs, email.max_attempts and email.concurrency must be positive".into(),
        );
    }
    if !settings.ca_file.trim().is_empty() {
        extra_roots(&settings.ca_file)?;
    }
    if settings.digest_hour_utc > 23 {
        return Err("email.digest_hour_utc must be between 0 and 23".into());
    }
    Ok(())
}

/// The certificates of `email.ca_file`.
fn extra_roots(path: &str) -> Result<Vec<Certificate>, String> {
    let pem = std::fs::read(path.trim())
        .map_err(|e| format!("email.ca_file {path:?} cannot be read ({e})"))?;
    let text = String::from_utf8_lossy(&pem);
    let blocks: Vec<String> = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(str::to_string)
        .collect();
    if blocks.is_empty() {
        return Err(format!("email.ca_file {path:?} holds no PEM certificate"));
    }
    blocks
        .iter()
        .map(|b| {
            Certificate::from_pem(b.as_bytes())
                .map_err(|e| format!("email.ca_file {path:?}: a certificate does not parse ({e})"))
        })
        .collect()
}

/// A message as queued.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Queued {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// Why a message did not leave.
#[derive(Debug)]
pub struct SendError {
    /// Retrying cannot help (the server refused the recipient or the message for good).
    pub permanent: bool,
    pub message: String,
}

impl SendError {
    fn transient(message: impl Into<String>) -> SendError {
        SendError {
            permanent: false,
            message: message.into(),
        }
    }
    fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            permanent: true,
            message: message.into(),
        }
    }
}

#[derive(Clone)]
pub enum Transport {
    Smtp {
        mailer: Arc<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        /// `smtp://host:port` for the record of where a message went.
        name: String,
    },
    Files {
        dir: PathBuf,
        from: Mailbox,
    },
    /// The settings could not be turned into a transport (reported at start): every attempt
    /// fails with the reason, and the messages wait.
    Unusable(String),
}

impl Transport {
    pub fn from_settings(settings: &Settings) -> Transport {
        match Self::build(settings) {
            Ok(transport) => transport,
            Err(reason) => {
                tracing::error!(%reason, "mail cannot be sent");
                Transport::Unusable(reason)
            }
        }
    }

    fn build(settings: &Settings) -> Result<Transport, String> {
        let email = &settings.email;
        let from: Mailbox = email
            .from
            .parse()
            .map_err(|e| format!("email.from is not a mail address ({e})"))?;
        if email.smtp_url.trim().is_empty() {
            return Ok(Transport::Files {
                dir: settings.data_dir.join("mail"),
                from,
            });
        }
        let target = parse_smtp_url(&email.smtp_url)?;
        let mut tls = TlsParameters::builder(target.host.clone());
        if !email.ca_file.trim().is_empty() {
            for root in extra_roots(&email.ca_file)? {
                tls = tls.add_root_certificate(root);
            }
        }
        let params = tls
            .build_rustls()
            .map_err(|e| format!("TLS for {}: {e}", target.host))?;
        let login = !email.username.expose_secret().is_empty();
        let tls = if target.implicit_tls {
            Tls::Wrapper(params)
        } else if login {
            // The password never crosses in clear: a server without STARTTLS is refused.
            Tls::Required(params)
        } else {
            Tls::Opportunistic(params)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(email.timeout_secs)));
        if login {
            builder = builder.credentials(Credentials::new(
                email.username.expose_secret().to_string(),
                email.password.expose_secret().to_string(),
            ));
        }
        let scheme = if target.implicit_tls { "smtps" } else { "smtp" };
        Ok(Transport::Smtp {
            mailer: Arc::new(builder.build()),
            from,
            name: format!("{scheme}://{}:{}", target.host, target.port),
        })
    }

    /// Sends one message; returns where it went.
    pub async fn send(&self, mail: &Queued) -> Result<String, SendError> {
        match self {
            Transport::Unusable(reason) => Err(SendError::transient(reason.clone())),
            Transport::Smtp { mailer, from, name } => {
                let message = build_message(from, mail)?;
                match mailer.send(message).await {
                    Ok(_) => Ok(name.clone()),
                    Err(e) if e.is_permanent() => Err(SendError::permanent(format!(
                        "the mail server refused the message: {e}"
                    ))),
                    Err(e) => Err(SendError::transient(format!("{name}: {e}"))),
                }
            }
            Transport::Files { dir, from } => {
                let message = build_message(from, mail)?;
                write_file(dir, mail, &message.formatted())
                    .await
                    .map_err(|e| SendError::transient(format!("writing {}: {e}", dir.display())))
            }
        }
    }
}

/// The file a message is written to: sortable by time, unique by message.
pub fn file_name(mail: &Queued) -> String {
    format!(
        "{}-{}.eml",
        mail.created_at.format("%Y%m%dT%H%M%S"),
        mail.id.simple()
    )
}

async fn write_file(dir: &std::path::Path, mail: &Queued, bytes: &[u8]) -> std::io::Result<String> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(file_name(mail));
    // Written aside and renamed, so a reader never sees half a message.
    let partial = dir.join(format!(".{}.partial", mail.id.simple()));
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::rename(&partial, &path).await?;
    Ok(path.display().to_string())
}

fn build_message(from: &Mailbox, mail: &Queued) -> Result<Message, SendError> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|e| SendError::permanent(format!("the recipient is not a mail address ({e})")))?;
    let domain = from.email.domain().to_string();
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .date(mail.created_at.into())
        // The same id on every attempt: a server that got the message twice can tell.
        .message_id(Some(format!("<{}@{domain}>", mail.id.simple())))
        .user_agent(concat!("catalogd/", env!("CARGO_PKG_VERSION")).to_string());
    if let Some(url) = &mail.unsubscribe_url {
        // RFC 2369 and RFC 8058: mail clients offer a one-click unsubscribe.
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body_text.clone());
    let built = match &mail.body_html {
        Some(html) => builder.multipart(
            MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
        ),
        None => builder.singlepart(text),
    };
    built.map_err(|e| SendError::permanent(format!("the message cannot be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_host_port_and_tls() {
        assert_eq!(
            parse_smtp_url("smtp://mail.example.com:2525").unwrap(),
            SmtpTarget {
                host: "mail.example.com".into(),
                port: 2525,
                implicit_tls: false
            }
        );
        assert_eq!(parse_smtp_url("smtp://mail.example.com").unwrap().port, 587);
        let smtps = parse_smtp_url("smtps://mail.example.com").unwrap();
        assert_eq!((smtps.port, smtps.implicit_tls), (465, true));
        assert_eq!(parse_smtp_url("smtp://[::1]:25").unwrap().host, "::1");
        for (bad, named) in [
            ("http://mail.example.com", "smtp://"),
            ("smtp://user:secret@mail.example.com", "email.username"),
            ("mail.example.com", "not a URL"),
            ("smtp://mail.example.com/path", "host and a port"),
        ] {
            let err = parse_smtp_url(bad).unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn messages_carry_both_parts_a_stable_id_and_the_unsubscribe_headers() {
        let mail = Queued {
            id: Uuid::now_v7(),
            recipient: "reviewer@example.com".into(),
            subject: "3 proposals wait for review — Démo".into(),
            body_text: "Review them at https://catalogd.example/w/1".into(),
            body_html: Some("<p>Review them</p>".into()),
            unsubscribe_url: Some("https://catalogd.example/unsubscribe?token=abc".into()),
            created_at: Utc::now(),
            attempts: 0,
        };
        let from: Mailbox = "catalogd <catalogd@shop.example>".parse().unwrap();
        let text = String::from_utf8(build_message(&from, &mail).unwrap().formatted()).unwrap();
        assert!(
            text.contains(&format!("Message-ID: <{}@shop.example>", mail.id.simple())),
            "{text}"
        );
        assert!(
            text.contains("List-Unsubscribe: <https://catalogd.example/unsubscribe?token=abc>")
        );
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("text/plain") && text.contains("text/html"));
        let bad = Queued {
            recipient: "not an address".into(),
            ..mail
        };
        let err = build_message(&from, &bad).unwrap_err();
        assert!(err.permanent, "{}", err.message);
    }
}
