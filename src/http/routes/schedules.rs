//! A store's schedule: cron, time zone, pipeline.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit_log::{self, Entry};
use crate::auth::{Access, CanAdminister, CanRead};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::schedules::{self, CronSpec, Schedule, ScheduleInput, Step};
use crate::state::AppState;
use crate::stores::Store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_schedule, put_schedule, delete_schedule))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Five cron fields, e.g. `0 2 * * *` for 02:00 every day.
    pub cron: String,
    /// IANA time zone the cron is read in (default `UTC`).
    pub timezone: Option<String>,
    /// Steps run in order. Left out, the stored pipeline stays (`["sync"]` for a new schedule).
    pub pipeline: Option<Vec<String>>,
    /// `false` pauses the schedule. Left out, it stays as it was (a new schedule is enabled).
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleResponse {
    pub store_id: Uuid,
    pub cron: String,
    pub timezone: String,
    pub pipeline: Vec<Step>,
    pub enabled: bool,
    pub next_run_at: DateTime<Utc>,
    /// The next five runs, for people to check the expression.
    pub next_runs: Vec<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
}

impl From<Schedule> for ScheduleResponse {
    fn from(s: Schedule) -> Self {
        let next_runs = CronSpec::parse(&s.cron, &s.timezone)
            .map(|spec| spec.upcoming(Utc::now(), 5))
            .unwrap_or_default();
        ScheduleResponse {
            store_id: s.store_id,
            cron: s.cron,
            timezone: s.timezone,
            pipeline: s.pipeline.0,
            enabled: s.enabled,
            next_run_at: s.next_run_at,
            next_runs,
            last_run_at: s.last_run_at,
            last_job_id: s.last_job_id,
        }
    }
}

/// The store's schedule.
#[utoipa::path(get, path = "/stores/{id}/schedule", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")),
    responses((status = 200, body = ScheduleResponse), (status = 404, body = ErrorBody)))]
async fn get_schedule(
    State(state): State<AppState>,
    access: Access<Store, CanRead>,
) -> ApiResult<Json<ScheduleResponse>> {
    let schedule = schedules::get(&state.db, access.id)
        .await?
        .ok_or(Error::NotFound("schedule"))?;
    Ok(Json(schedule.into()))
}

/// Sets the store's schedule. Cron and time zone are replaced; a pipeline or enabled flag left
/// out keeps its stored value.
#[utoipa::path(put, path = "/stores/{id}/schedule", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = ScheduleRequest,
    responses((status = 200, body = ScheduleResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_schedule(
    State(state): State<AppState>,
    access: Access<Store, CanAdminister>,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> ApiResult<Json<ScheduleResponse>> {
    let timezone = req.timezone.unwrap_or_else(|| "UTC".to_string());
    let spec = CronSpec::parse(&req.cron, &timezone)?;
    let pipeline = req
        .pipeline
        .as_deref()
        .map(schedules::parse_pipeline)
        .transpose()?;
    let next_run_at = spec
        .next_after(Utc::now())
        .ok_or_else(|| Error::invalid("cron", "cron expression never fires"))?;
    let mut tx = state.db.begin().await?;
    let schedule = schedules::upsert(
        &mut tx,
        ScheduleInput {
            store_id: access.id,
            workspace_id: access.workspace_id,
            cron: req.cron.trim(),
            timezone: &timezone,
            pipeline,
            enabled: req.enabled,
            next_run_at,
            created_by: access.caller.user_id(),
        },
    )
    .await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "schedule.updated")
            .target("store", access.id)
            .details(
                serde_json::json!({"cron": schedule.cron, "timezone": schedule.timezone,
                "pipeline": schedule.pipeline.0, "enabled": schedule.enabled}),
            ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(schedule.into()))
}

/// Removes the store's schedule.
#[utoipa::path(delete, path = "/stores/{id}/schedule", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_schedule(
    State(state): State<AppState>,
    access: Access<Store, CanAdminister>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    if !schedules::delete(&mut tx, access.id).await? {
        return Err(Error::NotFound("schedule").into());
    }
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "schedule.deleted")
            .target("store", access.id),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
