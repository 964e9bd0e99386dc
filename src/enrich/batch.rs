//! Scheduled enrichment through a provider's batch API (`batch = true` in its config).
//!
//! The job plans a chunk of products, submits all their requests as one batch, and keeps the
//! batch's handle in its checkpoint, so a restarted daemon polls the same batch instead of
//! submitting another. When the batch has ended, each product is planned again from its live
//! content, the results are matched by custom id (`<product>_<scope index>_t` for the text
//! fields, `…_a<entry id>` for an alt text), an answer that is not the JSON asked for gets
//! one direct repair request, and the product is written exactly as a direct run writes it,
//! the checkpoint recording how far the writing got.

use std::collections::BTreeMap;
use std::time::Duration;

use ai::{AiError, BatchHandle, BatchPoll, Generation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Checkpoint, Generated, Halt, ItemKey, Job, estimate, flagged_fields, halted, next_page,
    plan_product, usage, write_product,
};
use crate::jobs::context::{JobError, Outcome};

/// Products per batch.
const CHUNK: i64 = 1000;

/// A submitted batch, kept in the job's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingBatch {
    pub handle: BatchHandle,
    /// The last product the batch covers (the checkpoint moves there once it is written).
    pub last: Uuid,
    /// Products the batch covers.
    pub products: i64,
    /// Products up to this one are written.
    #[serde(default)]
    pub written_through: Option<Uuid>,
    /// The daily budget ran out while planning: the job ends after this batch.
    #[serde(default)]
    pub budget_reached: bool,
}

fn custom_id(product_id: Uuid, scope_index: usize, key: ItemKey) -> String {
    match key {
        ItemKey::Text => format!("{}_{scope_index}_t", product_id.simple()),
        ItemKey::Alt(entry) => format!("{}_{scope_index}_a{entry}", product_id.simple()),
    }
}

fn parse_custom_id(id: &str) -> Option<(Uuid, usize, ItemKey)> {
    let mut parts = id.splitn(3, '_');
    let product = Uuid::parse_str(parts.next()?).ok()?;
    let scope = parts.next()?.parse().ok()?;
    let key = match parts.next()? {
        "t" => ItemKey::Text,
        alt => ItemKey::Alt(alt.strip_prefix('a')?.parse().ok()?),
    };
    Some((product, scope, key))
}

pub(crate) async fn run(
    job: &Job<'_>,
    mut checkpoint: Checkpoint,
    daily_budget: Option<u64>,
    poll_every: Duration,
) -> Result<Outcome, JobError> {
    let ctx = job.ctx;
    let db = &ctx.state.db;
    loop {
        if let Some(mut pending) = checkpoint.batch.clone() {
            let results = loop {
                match job.provider.poll_batch(&pending.handle).await {
                    Ok(BatchPoll::Done(results)) => break results,
                    Ok(BatchPoll::Pending { status }) => {
                        tracing::debug!(batch = %pending.handle.id, %status, "batch still running");
                        if let Some(stop) = ctx.sleep(poll_every).await {
                            return Ok(Outcome::Stopped(stop));
                        }
                    }
                    Err(e) if e.is_terminal() => return Err(JobError::Fatal(e.to_string())),
                    Err(e) => {
                        return Err(JobError::Transient(format!(
                            "batch {}: {e}",
                            pending.handle.id
                        )));
                    }
                }
            };
            let mut by_product: BTreeMap<Uuid, BTreeMap<(usize, ItemKey), _>> = BTreeMap::new();
            for (id, result) in results {
                if let Some((product, scope, key)) = parse_custom_id(&id) {
                    by_product
                        .entry(product)
                        .or_default()
                        .insert((scope, key), result);
                }
            }
            let mut halt: Option<Halt> = None;
            for (product_id, mut results) in by_product {
                if pending.written_through.is_some_and(|w| product_id <= w) {
                    continue;
                }
                if let Some(stop) = ctx.should_stop().await {
                    return Ok(Outcome::Stopped(stop));
                }
                let flagged = flagged_fields(ctx, &job.params, product_id).await?;
                let plan = plan_product(job, product_id, &flagged).await?;
                let mut generated = Generated {
                    results: plan.scopes.iter().map(|_| Vec::new()).collect(),
                    plan,
                    halt: None,
                };
                for (i, scope) in generated.plan.scopes.iter().enumerate() {
                    for (key, request) in &scope.requests {
                        let Some(result) = results.remove(&(scope.scope_index, *key)) else {
                            continue;
                        };
                        let result: Result<Generation, AiError> = match result {
                            Err(AiError::InvalidOutput { usage, .. }) => {
                                // The one repair: ask again, directly; both attempts count.
                                match job.provider.generate(request).await {
                                    Ok(mut g) => {
                                        g.usage = g.usage + usage;
                                        Ok(g)
                                    }
                                    Err(AiError::InvalidOutput {
                                        message,
                                        usage: more,
                                    }) => Err(AiError::InvalidOutput {
                                        message,
                                        usage: usage + more,
                                    }),
                                    Err(e) => Err(e),
                                }
                            }
                            other => other,
                        };
                        if let Err(AiError::SpendLimit(message)) = &result {
                            halt = Some(Halt::SpendLimit(message.clone()));
                            break;
                        }
                        generated.results[i].push((*key, result));
                    }
                }
                let mut tx = db.begin().await?;
                write_product(job, &mut tx, &generated).await?;
                pending.written_through = Some(product_id);
                checkpoint.batch = Some(pending.clone());
                ctx.save(&mut tx, &checkpoint).await?;
                tx.commit().await?;
                if halt.is_some() {
                    break;
                }
            }
            if let Some(halt) = halt {
                return halted(ctx, halt).await;
            }
            ctx.advance(pending.products);
            checkpoint.after = Some(pending.last);
            checkpoint.batch = None;
            let mut tx = db.begin().await?;
            ctx.save(&mut tx, &checkpoint).await?;
            tx.commit().await?;
            if pending.budget_reached {
                return halted(ctx, Halt::Budget).await;
            }
            continue;
        }

        let ids = next_page(job, checkpoint.after, CHUNK).await?;
        if ids.is_empty() {
            return Ok(Outcome::Done);
        }
        let mut left = {
            let mut conn = db.acquire().await?;
            usage::budget_left(&mut conn, job.store.workspace_id, daily_budget).await?
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut products = 0i64;
        let mut budget_reached = false;
        for id in ids {
            let flagged = flagged_fields(ctx, &job.params, id).await?;
            let plan = plan_product(job, id, &flagged).await?;
            let tokens: u64 = plan
                .scopes
                .iter()
                .flat_map(|s| s.requests.iter())
                .map(|(_, r)| estimate(job, r))
                .sum();
            if let Some(l) = left.as_mut() {
                if tokens > *l {
                    budget_reached = true;
                    break;
                }
                *l -= tokens;
            }
            for scope in &plan.scopes {
                for (key, request) in &scope.requests {
                    items.push((custom_id(id, scope.scope_index, *key), request.clone()));
                }
            }
            last = Some(id);
            products += 1;
        }
        let Some(last) = last else {
            return halted(ctx, Halt::Budget).await;
        };
        if items.is_empty() {
            checkpoint.after = Some(last);
            ctx.advance(products);
            let mut tx = db.begin().await?;
            ctx.save(&mut tx, &checkpoint).await?;
            tx.commit().await?;
            if budget_reached {
                return halted(ctx, Halt::Budget).await;
            }
            continue;
        }
        let handle = job
            .provider
            .submit_batch(&items)
            .await
            .map_err(|e| match e {
                e if e.is_terminal() => JobError::Fatal(e.to_string()),
                AiError::Refused { .. } | AiError::Unsupported(_) => JobError::Fatal(e.to_string()),
                e => JobError::Transient(e.to_string()),
            })?;
        ctx.add("batches", 1);
        ctx.log(
            "info",
            format!(
                "batch {} submitted: {} requests for {products} products",
                handle.id,
                items.len()
            ),
        )
        .await;
        checkpoint.batch = Some(PendingBatch {
            handle,
            last,
            products,
            written_through: None,
            budget_reached,
        });
        let mut tx = db.begin().await?;
        ctx.save(&mut tx, &checkpoint).await?;
        tx.commit().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_fit_both_apis_and_read_back() {
        let product = Uuid::now_v7();
        for key in [ItemKey::Text, ItemKey::Alt(123456)] {
            let id = custom_id(product, 3, key);
            assert!(id.len() <= 64);
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            );
            assert_eq!(parse_custom_id(&id), Some((product, 3, key)));
        }
        assert_eq!(parse_custom_id("nonsense"), None);
    }
}
