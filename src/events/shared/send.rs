//! Carrying this instance's notices to the others: queued by publishers, sent by one
//! task with `pg_notify`, several per statement.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, watch};

use super::{BATCH, BeatSent};
use crate::events::wire::{CHANNEL, Kind, Notice};

/// Sends `notices` in one statement.
pub(super) async fn notify(pool: &PgPool, notices: &[Notice]) -> Result<(), sqlx::Error> {
    let payloads: Vec<String> = notices.iter().map(Notice::encode).collect();
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(payloads)
        .execute(pool)
        .await?;
    Ok(())
}

/// Sends queued notices until the bus is dropped, several per statement; a failed
/// statement is tried again a few times, then its notices are dropped.
pub(super) async fn send(
    pool: PgPool,
    mut outgoing: mpsc::Receiver<Notice>,
    beat_sent: BeatSent,
    mut stop: watch::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            n = outgoing.recv_many(&mut batch, BATCH) => if n == 0 { return },
        }
        let mut tries = 0;
        loop {
            let Err(e) = notify(&pool, &batch).await else {
                if batch.iter().any(|n| n.kind == Kind::Heartbeat) {
                    *beat_sent.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(tokio::time::Instant::now());
                }
                break;
            };
            tries += 1;
            if tries == 3 {
                ::metrics::counter!("events_dropped_total", "stage" => "send")
                    .increment(batch.len() as u64);
                tracing::warn!(
                    error = %crate::error::chain(&e),
                    events = batch.len(),
                    "could not tell other instances of events; dropped them"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * tries)).await;
        }
        batch.clear();
    }
}
