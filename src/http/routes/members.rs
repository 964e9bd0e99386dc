//! Membership: invitations by email (sent, listed, revoked, accepted, declined), role changes,
//! removal and leaving.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::email::Email;
use crate::accounts::invitations::{self, Invitation, Offer};
use crate::accounts::workspaces::{self, Member};
use crate::accounts::{users, workspaces::Workspace as WorkspaceRow};
use crate::audit_log::{self, Entry};
use crate::auth::caller::Workspace;
use crate::auth::{Access, Caller, CanAdminister, CanRead, Role};
use crate::error::Error;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::notify::mail::{self, OutgoingMail};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, invite))
        .routes(routes!(list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(show_invitation))
        .routes(routes!(accept))
        .routes(routes!(decline))
}

/// Members of the workspace with their roles.
#[utoipa::path(get, path = "/workspaces/{ws}/members", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), PageParams),
    responses((status = 200, body = Page<Member>), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Member>>> {
    Ok(Json(
        workspaces::list_members(&state.db, access.workspace_id, &page).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteMember {
    /// Where the invitation is mailed; the person joins by accepting it with this address.
    pub email: String,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct Invited {
    pub invitation_id: Uuid,
}

/// Invites a person by email. The answer is the same whether or not an account uses the
/// address; the person becomes a member only by accepting the mailed link (valid 7 days).
/// Nobody grants a role above their own.
#[utoipa::path(post, path = "/workspaces/{ws}/members", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = InviteMember,
    responses((status = 202, body = Invited), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn invite(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiJson(req): ApiJson<InviteMember>,
) -> ApiResult<(StatusCode, Json<Invited>)> {
    if !access.role.may_grant(req.role) {
        return Err(Error::Forbidden("you cannot grant a role above your own").into());
    }
    let email = Email::parse(&req.email)?;
    let inviter = match access.caller.user_id() {
        Some(id) => users::get(&state.db, id).await?.map(|u| u.name),
        None => None,
    };
    let workspace: WorkspaceRow = workspaces::get(&state.db, access.workspace_id)
        .await?
        .ok_or(Error::NotFound("workspace"))?;
    let mut tx = state.db.begin().await?;
    let created = invitations::create(
        &mut tx,
        access.workspace_id,
        &email,
        req.role,
        access.caller.user_id(),
    )
    .await?;
    let link = format!(
        "{}/invitations?token={}",
        state.settings.public_base_url(),
        created.token
    );
    let who = inviter.as_deref().unwrap_or("A member");
    let text = format!(
        "{who} invited you to the workspace \"{ws}\" on catalogd, as {role}.\n\n\
         Accept or decline: {link}\n\n\
         The link works once, until {expires} (UTC). If you have no catalogd account, sign up \
         with this address from the link. If you did not expect this, ignore this message.\n",
        ws = workspace.name,
        role = req.role.as_str(),
        expires = created.expires_at.format("%Y-%m-%d %H:%M"),
    );
    let expires = created.expires_at.format("%Y-%m-%d %H:%M").to_string();
    let html = maud::html! {
        p { (who) " invited you to the workspace " strong { (workspace.name) } " on catalogd, as " (req.role.as_str()) "." }
        p { a href=(link) { "Accept or decline the invitation" } }
        p {
            "The link works once, until " (expires) " (UTC). If you have no catalogd account, sign up "
            "with this address from the link. If you did not expect this, ignore this message."
        }
    }
    .into_string();
    mail::enqueue(
        &mut tx,
        OutgoingMail {
            to: email.as_str().to_string(),
            subject: format!("Invitation to {} on catalogd", workspace.name),
            text,
            html: Some(html),
            idempotency_key: format!("invitation:{}", created.id),
        },
    )
    .await
    .map_err(|e| Error::Internal(e.into()))?;
    crate::notify::events::record(
        &mut tx,
        crate::notify::events::NewEvent {
            kind: crate::notify::events::EventKind::MemberInvited,
            workspace_id: access.workspace_id,
            store_id: None,
            job_id: None,
            summary: format!("{who} invited {} as {}", email.as_str(), req.role.as_str()),
            data: serde_json::json!({
                "invitation_id": created.id,
                "email": email.as_str(),
                "role": req.role,
                "expires_at": created.expires_at,
            }),
        },
    )
    .await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "member.invited")
            .target("invitation", created.id)
            .details(serde_json::json!({"role": req.role})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Invited {
            invitation_id: created.id,
        }),
    ))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<Invitation>,
}

/// Pending invitations of the workspace, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/invitations", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")),
    responses((status = 200, body = InvitationList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_invitations(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
) -> ApiResult<Json<InvitationList>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(InvitationList {
        items: invitations::list_pending(&mut conn, access.workspace_id).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    pub id: Uuid,
    pub email: String,
}

/// Revokes a pending invitation: its link stops working.
#[utoipa::path(delete, path = "/workspaces/{ws}/invitations/{invitation_id}", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), ("invitation_id" = Uuid, Path, description = "invitation id")),
    responses((status = 200, body = Revoked), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_invitation(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Revoked>> {
    let id = Uuid::parse_str(&ids.1).map_err(|_| Error::NotFound("invitation"))?;
    let mut tx = state.db.begin().await?;
    let email = invitations::revoke(&mut tx, access.workspace_id, id).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(
            &access.caller,
            access.workspace_id,
            "member.invitation_revoked",
        )
        .target("invitation", id)
        .details(serde_json::json!({"email": email})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Revoked { id, email }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

/// The member `user_id` of the path, with the caller's right over them checked: nobody
/// changes or removes a member whose role is above their own.
fn member_id(ids: &(String, String)) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&ids.1)
        .map_err(|_| Error::NotFound("member"))
        .map_err(Into::into)
}

/// Changes a member's role. Nobody grants a role above their own or changes a member ranked
/// above them; the last owner stays an owner.
#[utoipa::path(patch, path = "/workspaces/{ws}/members/{user_id}", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), ("user_id" = Uuid, Path, description = "the member's user id")),
    request_body = ChangeRole,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn change_role(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    Path(ids): Path<(String, String)>,
    ApiJson(req): ApiJson<ChangeRole>,
) -> ApiResult<Json<Member>> {
    let user_id = member_id(&ids)?;
    let mut tx = state.db.begin().await?;
    let current = workspaces::member_role(&mut tx, access.workspace_id, user_id)
        .await?
        .ok_or(Error::NotFound("member"))?;
    if !access.role.may_grant(req.role) || !access.role.may_grant(current) {
        return Err(
            Error::Forbidden("you cannot change a role above your own, or grant one").into(),
        );
    }
    if current == Role::Owner && req.role != Role::Owner {
        workspaces::keep_an_owner(&mut tx, access.workspace_id, user_id).await?;
    }
    let member = workspaces::set_role(&mut tx, access.workspace_id, user_id, req.role).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "member.role_changed")
            .target("user", user_id)
            .details(serde_json::json!({"from": current, "to": req.role})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(member))
}

#[derive(Serialize, ToSchema)]
pub struct Removed {
    pub user_id: Uuid,
    pub role: Role,
}

/// Removes a member (owners and admins, for roles not above their own), or the caller leaves
/// (any member, themselves). The last owner cannot leave: make another member owner first.
#[utoipa::path(delete, path = "/workspaces/{ws}/members/{user_id}", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), ("user_id" = Uuid, Path, description = "the member's user id")),
    responses((status = 200, body = Removed), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Removed>> {
    let user_id = member_id(&ids)?;
    let leaving = access.caller.user_id() == Some(user_id);
    let mut tx = state.db.begin().await?;
    let role = workspaces::member_role(&mut tx, access.workspace_id, user_id)
        .await?
        .ok_or(Error::NotFound("member"))?;
    if !leaving && !access.role.may_grant(role) {
        return Err(Error::Forbidden(
            "only owners and admins remove members, and none ranked above them",
        )
        .into());
    }
    if role == Role::Owner {
        workspaces::keep_an_owner(&mut tx, access.workspace_id, user_id).await?;
    }
    workspaces::remove_member(&mut tx, access.workspace_id, user_id).await?;
    let action = if leaving {
        "member.left"
    } else {
        "member.removed"
    };
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, action)
            .target("user", user_id)
            .details(serde_json::json!({"role": role})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Removed { user_id, role }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationToken {
    /// The `token` of the mailed link.
    pub token: String,
}

/// What an invitation link offers (workspace, role, inviter), for the page behind the link.
/// Needs only the link's token.
#[utoipa::path(post, path = "/invitations/lookup", tag = "workspaces", request_body = InvitationToken,
    responses((status = 200, body = Offer), (status = 404, body = ErrorBody)))]
async fn show_invitation(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<InvitationToken>,
) -> ApiResult<Json<Offer>> {
    let mut tx = state.db.begin().await?;
    let offer = invitations::offer(&mut tx, &req.token).await?;
    tx.commit().await?;
    Ok(Json(offer))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub role: Role,
}

/// Accepts an invitation: the signed-in person, whose address must be the invited one,
/// becomes a member with the invited role.
#[utoipa::path(post, path = "/invitations/accept", tag = "workspaces", security(("bearer" = [])),
    request_body = InvitationToken,
    responses((status = 200, body = Accepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<InvitationToken>,
) -> ApiResult<Json<Accepted>> {
    let user_id = caller.require_user()?;
    let user = users::get(&state.db, user_id)
        .await?
        .ok_or(Error::Unauthenticated("account no longer exists"))?;
    let mut tx = state.db.begin().await?;
    let (offer, _member) = invitations::accept(&mut tx, &req.token, user_id, &user.email).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&caller, offer.workspace_id, "member.added")
            .target("user", user_id)
            .details(serde_json::json!({"role": offer.role, "invitation_id": offer.invitation_id})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Accepted {
        workspace_id: offer.workspace_id,
        workspace_name: offer.workspace_name,
        role: offer.role,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Declined {
    pub invitation_id: Uuid,
}

/// Declines an invitation: its link stops working. Needs only the link's token, so a person
/// without an account can say no.
#[utoipa::path(post, path = "/invitations/decline", tag = "workspaces", request_body = InvitationToken,
    responses((status = 200, body = Declined), (status = 404, body = ErrorBody)))]
async fn decline(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<InvitationToken>,
) -> ApiResult<Json<Declined>> {
    let mut tx = state.db.begin().await?;
    let offer = invitations::decline(&mut tx, &req.token).await?;
    let mut entry =
        Entry::new("member.invitation_declined").target("invitation", offer.invitation_id);
    entry.workspace_id = Some(offer.workspace_id);
    audit_log::record(&mut *tx, entry).await?;
    tx.commit().await?;
    Ok(Json(Declined {
        invitation_id: offer.invitation_id,
    }))
}
