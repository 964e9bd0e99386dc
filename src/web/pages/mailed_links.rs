//! The pages behind links catalogd mails: an invitation (accept or decline) and a password
//! reset (forgot password, then set a new one).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::html;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use super::account::anonymous_page;
use crate::accounts::invitations::Offer;
use crate::http::routes::auth::PasswordResetQueued;
use crate::http::routes::me::MeResponse;
use crate::http::routes::members::Accepted;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::layout::{self, csrf_field, page};
use crate::web::session::{ToLogin, WebUser};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/invitations", get(invitation_page))
        .route("/invitations/accept", post(accept))
        .route("/invitations/decline", post(decline))
        .route("/forgot-password", get(forgot_page).post(forgot))
        .route("/reset-password", get(reset_page).post(reset))
}

/// A query parameter's value, encoded.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[derive(Deserialize, Default)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// What the invitation offers, and what the visitor can do about it: accept when signed in
/// with the invited address, sign in or sign up otherwise, decline in any case.
async fn invitation_page(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    user: Result<WebUser, ToLogin>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let answer = match super::post_anonymous::<Offer>(
        &api,
        &parts,
        "/invitations/lookup",
        json!({"token": query.token}),
    )
    .await
    {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    let Ok(offer) = answer.body else {
        return layout::error_page(
            StatusCode::NOT_FOUND,
            "This invitation link is unknown, used, revoked or expired: ask for a new invitation.",
        );
    };
    let invited = offer.email.clone();
    let here = format!("/invitations?token={}", encode(&query.token));
    let signed_in_as = match &user {
        Ok(user) => api
            .call::<MeResponse>(Some(&user.caller), &user.origin, Method::GET, "/me", None)
            .await
            .ok()
            .and_then(|me| me.body.ok())
            .map(|me| me.email),
        Err(_) => None,
    };
    let describe = html! {
        p {
            @if let Some(by) = &offer.invited_by { (by) } @else { "A member" }
            " invited " strong { (invited) } " to the workspace " strong { (offer.workspace_name) }
            " as " (offer.role.as_str()) "."
        }
        p { "The link works until " (layout::when(offer.expires_at)) "." }
    };
    match (&user, signed_in_as) {
        (Ok(user), Some(email)) => {
            let same = email.eq_ignore_ascii_case(&invited);
            layout::render(page(
                "Invitation",
                None,
                html! {
                    (describe)
                    @if same {
                        form.card method="post" action="/invitations/accept" {
                            (csrf_field(&user.csrf))
                            input type="hidden" name="token" value=(query.token);
                            button type="submit" { "Accept and join" }
                        }
                    } @else {
                        p.error role="alert" {
                            "You are signed in as " (email) ". Log out and sign in (or sign up) as "
                            (invited) " to accept."
                        }
                    }
                    form method="post" action="/invitations/decline" {
                        (csrf_field(&user.csrf))
                        input type="hidden" name="token" value=(query.token);
                        button.secondary type="submit" { "Decline" }
                    }
                },
            ))
        }
        _ => {
            let next = encode(&here);
            let signup = format!("/signup?email={}&next={next}", encode(&invited));
            anonymous_page(&state, &headers, StatusCode::OK, |token| {
                page(
                    "Invitation",
                    None,
                    html! {
                        (describe)
                        p {
                            a href=(format!("/login?next={next}")) { "Log in" } " as " (invited)
                            " to accept, or " a href=(signup) { "sign up" } " with this address."
                        }
                        form method="post" action="/invitations/decline" {
                            (csrf_field(token))
                            input type="hidden" name="token" value=(query.token);
                            button.secondary type="submit" { "Decline" }
                        }
                    },
                )
            })
        }
    }
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

async fn accept(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Form(form): Form<TokenForm>,
) -> Response {
    match super::call::<Accepted>(
        &api,
        &user,
        Method::POST,
        "/invitations/accept",
        Some(json!({"token": form.token})),
    )
    .await
    {
        Ok(joined) => layout::see_other(&format!("/w/{}/stores", joined.workspace_id)),
        Err(response) => response,
    }
}

async fn decline(
    Extension(api): Extension<InternalApi>,
    parts: axum::http::request::Parts,
    Form(form): Form<TokenForm>,
) -> Response {
    match super::post_anonymous::<IgnoredAny>(
        &api,
        &parts,
        "/invitations/decline",
        json!({"token": form.token}),
    )
    .await
    {
        Ok(answer) if answer.ok() => layout::render(page(
            "Invitation declined",
            None,
            html! { p role="status" { "You declined the invitation; nobody joined the workspace." } },
        )),
        Ok(answer) => layout::error_page(answer.status, &answer.message()),
        Err(page) => page,
    }
}

async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    anonymous_page(&state, &headers, StatusCode::OK, |token| {
        page(
            "Forgot password",
            None,
            html! {
                form.card method="post" action="/forgot-password" {
                    (csrf_field(token))
                    label for="email" { "Your account's email" }
                    input #email type="email" name="email" autocomplete="username" required;
                    button type="submit" { "Mail me a link" }
                }
                p { a href="/login" { "Back to log in" } }
            },
        )
    })
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

async fn forgot(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    Form(form): Form<ForgotForm>,
) -> Response {
    let answer = match super::post_anonymous::<PasswordResetQueued>(
        &api,
        &parts,
        "/auth/password-reset",
        json!({"email": form.email}),
    )
    .await
    {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    let message = match &answer.body {
        Ok(queued) => queued.message.clone(),
        Err(_) => answer.message(),
    };
    anonymous_page(&state, &headers, answer.status, |_| {
        page(
            "Forgot password",
            None,
            html! {
                p role="status" { (message) }
                p { a href="/login" { "Back to log in" } }
            },
        )
    })
}

fn reset_form(token: &str, link_token: &str, error: Option<&str>) -> maud::Markup {
    page(
        "Set a new password",
        None,
        html! {
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form.card method="post" action="/reset-password" {
                (csrf_field(token))
                input type="hidden" name="token" value=(link_token);
                label for="password" { "New password" }
                input #password type="password" name="password" autocomplete="new-password" required minlength="10";
                button type="submit" { "Set password" }
            }
        },
    )
}

async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    anonymous_page(&state, &headers, StatusCode::OK, |token| {
        reset_form(token, &query.token, None)
    })
}

#[derive(Deserialize)]
struct ResetForm {
    token: String,
    password: String,
}

async fn reset(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    Form(form): Form<ResetForm>,
) -> Response {
    let answer = match super::post_anonymous::<IgnoredAny>(
        &api,
        &parts,
        "/auth/password-reset/confirm",
        json!({"token": form.token, "password": form.password}),
    )
    .await
    {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    if answer.ok() {
        return layout::render(page(
            "Password set",
            None,
            html! {
                p role="status" { "Your new password is set, and every session of your account has ended." }
                p { a href="/login" { "Log in" } }
            },
        ));
    }
    let message = answer.message();
    anonymous_page(&state, &headers, answer.status, |token| {
        reset_form(token, &form.token, Some(&message))
    })
}
