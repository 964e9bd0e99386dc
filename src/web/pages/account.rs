//! Sign up, log in (with the two-factor code when the account has one), log out.

use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use crate::http::routes::auth::{RegisterResponse, TokenResponse};
use crate::http::routes::me::MeResponse;
use crate::http::routes::workspaces::WorkspaceItem;
use crate::state::AppState;
use crate::web::api::InternalApi;
use crate::web::csrf;
use crate::web::layout::{self, csrf_field, page};
use crate::web::session::{
    self, ACCESS_COOKIE, PRE_SESSION_COOKIE, REFRESH_COOKIE, ToLogin, WebUser, cookie,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", post(logout))
        .route(
            "/workspaces/new",
            get(new_workspace_page).post(create_workspace),
        )
}

/// The first workspace's stores for a signed-in person, the login page otherwise.
async fn home(Extension(api): Extension<InternalApi>, user: Result<WebUser, ToLogin>) -> Response {
    let Ok(user) = user else {
        return Redirect::to("/login").into_response();
    };
    match super::call::<MeResponse>(&api, &user, Method::GET, "/me", None).await {
        Ok(me) => match me.workspaces.first().map(|w| w.id) {
            Some(ws) => Redirect::to(&format!("/w/{ws}/stores")).into_response(),
            None => layout::error_page(StatusCode::NOT_FOUND, "you belong to no workspace"),
        },
        Err(response) => response,
    }
}

/// The pre-session CSRF token: the cookie's value, or a new one to set.
fn pre_session(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, PRE_SESSION_COOKIE) {
        Some(token) => (token, false),
        None => (csrf::new_pre_session_token(), true),
    }
}

pub(super) fn anonymous_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    render: impl FnOnce(&str) -> Markup,
) -> Response {
    let (token, fresh) = pre_session(headers);
    let mut response = (status, Html(render(&token).into_string())).into_response();
    if fresh {
        response.headers_mut().append(
            SET_COOKIE,
            session::set_cookie(state, PRE_SESSION_COOKIE, &token, 3600),
        );
    }
    response
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: String,
    /// Where to go once signed in (a path of this site, e.g. back to an invitation).
    #[serde(default)]
    next: String,
}

/// Where the pages before sign-in may send a person afterwards: a path of this site only, so a
/// crafted link cannot send them elsewhere.
fn local_path(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    local.then_some(next)
}

#[derive(Deserialize, Default)]
struct BeforeSignIn {
    #[serde(default)]
    next: String,
    #[serde(default)]
    email: String,
}

fn login_markup(token: &str, form: &LoginForm, error: Option<&str>, ask_totp: bool) -> Markup {
    page(
        "Log in",
        None,
        html! {
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form.card method="post" action="/login" {
                (csrf_field(token))
                @if let Some(next) = local_path(&form.next) { input type="hidden" name="next" value=(next); }
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required value=(form.email);
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                @if ask_totp {
                    label for="totp" { "Two-factor code (or a recovery code)" }
                    input #totp type="text" name="totp" inputmode="numeric" autocomplete="one-time-code" required autofocus;
                }
                button type="submit" { "Log in" }
            }
            p { "No account yet? " a href="/signup" { "Sign up" } }
            p { a href="/forgot-password" { "Forgot your password?" } }
        },
    )
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(before): Query<BeforeSignIn>,
) -> Response {
    let form = LoginForm {
        email: before.email,
        next: before.next,
        ..LoginForm::default()
    };
    anonymous_page(&state, &headers, StatusCode::OK, |token| {
        login_markup(token, &form, None, false)
    })
}

async fn login(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let mut body = json!({"email": form.email, "password": form.password});
    if !form.totp.trim().is_empty() {
        body["totp"] = json!(form.totp.trim());
    }
    let answer =
        match super::post_anonymous::<TokenResponse>(&api, &parts, "/auth/login", body).await {
            Ok(answer) => answer,
            Err(page) => return page,
        };
    if let Ok(tokens) = &answer.body {
        return signed_in(&state, tokens, local_path(&form.next).unwrap_or("/"));
    }
    let ask_totp = answer.code() == "totp_required";
    let message = if ask_totp && form.totp.trim().is_empty() {
        "Enter the code from your authenticator app.".to_string()
    } else {
        answer.message()
    };
    let status = answer.status;
    anonymous_page(&state, &headers, status, |token| {
        login_markup(token, &form, Some(&message), ask_totp)
    })
}

fn signed_in(state: &AppState, tokens: &TokenResponse, to: &str) -> Response {
    let mut response = layout::see_other(to);
    for cookie in session::session_cookies(state, tokens) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .append(SET_COOKIE, session::clear_cookie(state, PRE_SESSION_COOKIE));
    response
}

#[derive(Deserialize, Default)]
struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    workspace_name: String,
    #[serde(default)]
    next: String,
}

fn signup_markup(token: &str, form: &SignupForm, error: Option<&str>) -> Markup {
    page(
        "Sign up",
        None,
        html! {
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form.card method="post" action="/signup" {
                (csrf_field(token))
                @if let Some(next) = local_path(&form.next) { input type="hidden" name="next" value=(next); }
                label for="name" { "Your name" }
                input #name type="text" name="name" autocomplete="name" required value=(form.name);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="email" required value=(form.email);
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="new-password" required minlength="10";
                label for="workspace_name" { "Workspace name" }
                input #workspace_name type="text" name="workspace_name" required value=(form.workspace_name);
                button type="submit" { "Create account" }
            }
            p { "Already have an account? " a href="/login" { "Log in" } }
        },
    )
}

async fn signup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(before): Query<BeforeSignIn>,
) -> Response {
    let form = SignupForm {
        email: before.email,
        next: before.next,
        ..SignupForm::default()
    };
    anonymous_page(&state, &headers, StatusCode::OK, |token| {
        signup_markup(token, &form, None)
    })
}

async fn signup(
    State(state): State<AppState>,
    Extension(api): Extension<InternalApi>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    Form(form): Form<SignupForm>,
) -> Response {
    let body = json!({"email": form.email, "password": form.password, "name": form.name,
        "workspace_name": form.workspace_name});
    let answer =
        match super::post_anonymous::<RegisterResponse>(&api, &parts, "/auth/register", body).await
        {
            Ok(answer) => answer,
            Err(page) => return page,
        };
    if let Ok(registered) = &answer.body {
        let to = local_path(&form.next).map_or_else(
            || format!("/w/{}/stores", registered.workspace.id),
            str::to_string,
        );
        return signed_in(&state, &registered.tokens, &to);
    }
    let message = answer.message();
    anonymous_page(&state, &headers, answer.status, |token| {
        signup_markup(token, &form, Some(&message))
    })
}

/// Ends the session server-side (its tokens stop working at once) and clears the cookies.
async fn logout(State(state): State<AppState>, user: Result<WebUser, ToLogin>) -> Response {
    if let Ok(user) = user
        && let Err(e) = sqlx::query(
            "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(user.session_id)
        .execute(&state.db)
        .await
    {
        tracing::error!(error = ?e, "could not end the session");
        return layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let mut response = layout::see_other("/login");
    for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
        response
            .headers_mut()
            .append(SET_COOKIE, session::clear_cookie(&state, name));
    }
    response
}

async fn new_workspace_page(user: WebUser) -> Response {
    layout::render(page(
        "New workspace",
        None,
        html! {
            form.card method="post" action="/workspaces/new" {
                (csrf_field(&user.csrf))
                label for="workspace-name" { "Name" }
                input #workspace-name type="text" name="name" required;
                button type="submit" { "Create workspace" }
            }
            p { a href="/" { "Back" } }
        },
    ))
}

#[derive(Deserialize)]
struct WorkspaceForm {
    name: String,
}

/// Creates a workspace owned by the person and opens it.
async fn create_workspace(
    Extension(api): Extension<InternalApi>,
    user: WebUser,
    Form(form): Form<WorkspaceForm>,
) -> Response {
    match super::call::<WorkspaceItem>(
        &api,
        &user,
        Method::POST,
        "/workspaces",
        Some(json!({"name": form.name})),
    )
    .await
    {
        Ok(created) => layout::see_other(&format!("/w/{}/stores", created.id)),
        Err(response) => response,
    }
}
