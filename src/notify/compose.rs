//! The words of notification mail: a plain-text part and a simple HTML part, each with a link
//! to the page of the thing (under `public_url`) and the unsubscribe link.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::EventKind;
use super::events::Event;

/// The UI page an event is about.
pub fn link(base: &str, event: &Event) -> String {
    let ws = event.workspace_id;
    let kind = EventKind::parse(&event.kind);
    match (kind, event.store_id, event.job_id) {
        (Some(EventKind::ReviewReady), Some(store), _) => {
            format!("{base}/w/{ws}/stores/{store}/review")
        }
        (Some(EventKind::JobFailed), _, Some(job)) => format!("{base}/w/{ws}/jobs/{job}"),
        (
            Some(
                EventKind::PipelineFinished
                | EventKind::StoreNeedsReauth
                | EventKind::StorePermissionMissing,
            ),
            Some(store),
            _,
        ) => format!("{base}/w/{ws}/stores/{store}"),
        (Some(EventKind::ExportReady), _, _) => format!("{base}/w/{ws}/exports"),
        (Some(EventKind::BudgetReached), _, _) => format!("{base}/w/{ws}/settings"),
        _ => event.data["url"]
            .as_str()
            .filter(|u| u.starts_with(base))
            .map_or_else(|| format!("{base}/w/{ws}"), str::to_string),
    }
}

/// The preferences page of a workspace.
pub fn preferences_url(base: &str, workspace_id: uuid::Uuid) -> String {
    format!("{base}/w/{workspace_id}/notifications/preferences")
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// What the mail says beyond the summary, line by line.
pub fn details(kind: Option<EventKind>, data: &Value) -> Vec<String> {
    let field = |name: &str| text(&data[name]);
    match kind {
        Some(EventKind::ReviewReady) => vec![format!(
            "{} proposals wait for a reviewer in {}; nothing reaches the store before someone approves them.",
            field("proposals"),
            field("store_name")
        )],
        Some(EventKind::PipelineFinished) => {
            let mut lines = vec![format!("Outcome: {}", field("status"))];
            if !data["synced"].is_null() {
                lines.push(format!("Products new or changed: {}", field("synced")));
            }
            if !data["audit_score_after"].is_null() {
                lines.push(format!(
                    "Audit score: {} → {}",
                    field("audit_score_before"),
                    field("audit_score_after")
                ));
            }
            lines.push(format!("Proposals waiting: {}", field("proposals")));
            if !data["pushed"].is_null() {
                lines.push(format!("Pushed: {}", field("pushed")));
            }
            if data["failed_step"].is_string() {
                lines.push(format!(
                    "Failed step: {} ({})",
                    field("failed_step"),
                    field("error")
                ));
            }
            lines
        }
        Some(EventKind::JobFailed) => vec![
            format!("Job: {} ({})", field("job_kind"), field("job_id")),
            format!("Error: {}", field("error")),
        ],
        Some(EventKind::StoreNeedsReauth) => vec![
            field("detail"),
            "Open the integration in Magento's admin (System › Extensions › Integrations) and click Reauthorize.".into(),
        ],
        Some(EventKind::StorePermissionMissing) => vec![format!(
            "Magento refused {} to the integration during {}: grant it in the integration's API tab, then run the step again.",
            field("resource"),
            field("step")
        )],
        Some(EventKind::ExportReady) => vec![format!(
            "Format: {}, rows: {}",
            field("format"),
            field("rows")
        )],
        Some(EventKind::BudgetReached) => vec![format!(
            "Today's budget of {} tokens is used up; enrichment resumes tomorrow (UTC) or when the budget is raised.",
            field("daily_token_budget")
        )],
        Some(EventKind::MemberInvited) | None => Vec::new(),
    }
}

/// One mail's content.
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The footer's facts: why the person gets the mail and how to stop it.
pub struct Footer<'a> {
    pub workspace_name: &'a str,
    pub unsubscribe_url: &'a str,
    pub preferences_url: &'a str,
    pub reason: &'a str,
}

/// The mail about one event.
pub fn event_mail(base: &str, name: &str, event: &Event, footer: &Footer<'_>) -> Content {
    let kind = EventKind::parse(&event.kind);
    let link = link(base, event);
    let lines = details(kind, &event.data);
    let subject = format!("[catalogd] {}", event.summary);
    let mut text = format!("Hello {name},\n\n{}\n\n", event.summary);
    for line in &lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!("\nOpen: {link}\n"));
    text.push_str(&text_footer(footer));
    let body = html! {
        p { "Hello " (name) "," }
        p { strong { (event.summary) } }
        @for line in &lines { p { (line) } }
        p { a href=(link) { "Open in catalogd" } }
    };
    Content {
        subject,
        text,
        html: page(&event.summary, body, footer).into_string(),
    }
}

/// One line of a digest.
pub struct DigestItem {
    pub workspace_name: String,
    pub summary: String,
    pub link: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The daily digest: every run that left proposals since the last one.
pub fn digest_mail(name: &str, items: &[DigestItem], footer: &Footer<'_>) -> Content {
    let subject = format!(
        "[catalogd] Daily digest: {} {} left proposals for review",
        items.len(),
        if items.len() == 1 { "run" } else { "runs" }
    );
    let mut text = format!("Hello {name},\n\nSince the last digest:\n\n");
    for item in items {
        text.push_str(&format!(
            "- {} ({}, {}): {}\n",
            item.summary,
            item.workspace_name,
            item.at.format("%Y-%m-%d %H:%M UTC"),
            item.link
        ));
    }
    text.push_str(&text_footer(footer));
    let body = html! {
        p { "Hello " (name) "," }
        p { "Since the last digest:" }
        ul {
            @for item in items {
                li {
                    a href=(item.link) { (item.summary) }
                    " (" (item.workspace_name) ", " (item.at.format("%Y-%m-%d %H:%M UTC")) ")"
                }
            }
        }
    };
    Content {
        subject: subject.clone(),
        text,
        html: page(&subject, body, footer).into_string(),
    }
}

fn text_footer(footer: &Footer<'_>) -> String {
    format!(
        "\n--\nYou get this mail from the workspace {} because {}.\nStop these mails: {}\nChoose what you get: {}\n",
        footer.workspace_name, footer.reason, footer.unsubscribe_url, footer.preferences_url
    )
}

fn page(title: &str, body: Markup, footer: &Footer<'_>) -> Markup {
    html! {
        (DOCTYPE)
        html {
            head { meta charset="utf-8"; title { (title) } }
            body style="font-family: sans-serif; line-height: 1.5; max-width: 40em" {
                (body)
                hr;
                p style="color: #555; font-size: 0.9em" {
                    "You get this mail from the workspace " (footer.workspace_name)
                    " because " (footer.reason) ". "
                    a href=(footer.unsubscribe_url) { "Stop these mails" } " · "
                    a href=(footer.preferences_url) { "Choose what you get" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn mail_links_to_the_page_and_escapes_what_it_quotes() {
        let ws = Uuid::now_v7();
        let store = Uuid::now_v7();
        let event = Event {
            id: Uuid::now_v7(),
            workspace_id: ws,
            kind: "review.ready".into(),
            store_id: Some(store),
            job_id: None,
            summary: "3 proposals wait for review in <Shop>".into(),
            data: serde_json::json!({"proposals": 3, "store_name": "<Shop>"}),
            created_at: chrono::Utc::now(),
        };
        let footer = Footer {
            workspace_name: "Acme",
            unsubscribe_url: "https://c.example/unsubscribe?token=t",
            preferences_url: "https://c.example/w/x/notifications/preferences",
            reason: "you review proposals",
        };
        let mail = event_mail("https://c.example", "Rita", &event, &footer);
        let review = format!("https://c.example/w/{ws}/stores/{store}/review");
        assert!(mail.text.contains(&review), "{}", mail.text);
        assert!(mail.text.contains("https://c.example/unsubscribe?token=t"));
        assert!(mail.html.contains(&review));
        assert!(mail.html.contains("&lt;Shop&gt;") && !mail.html.contains("<Shop>"));
        assert_eq!(
            mail.subject,
            "[catalogd] 3 proposals wait for review in <Shop>"
        );
    }
}
