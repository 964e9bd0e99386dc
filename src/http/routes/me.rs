//! The signed-in person.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::{users, workspaces};
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::http::error::{ApiError, ApiResult, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub workspaces: Vec<MyWorkspace>,
}

#[derive(Serialize, ToSchema)]
pub struct MyWorkspace {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// The caller's account and their workspaces with their role in each.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<MeResponse>> {
    let user_id = caller.require_user()?;
    let user = users::get(&state.db, user_id)
        .await?
        .ok_or(ApiError::Unauthorized("account no longer exists"))?;
    let workspaces = workspaces::all_for_user(&state.db, user_id)
        .await?
        .into_iter()
        .map(|w| MyWorkspace {
            id: w.id,
            name: w.name,
            role: w.role,
        })
        .collect();
    Ok(Json(MeResponse {
        id: user.id,
        email: user.email,
        name: user.name,
        workspaces,
    }))
}
