//! This instance among the others serving from the same PostgreSQL database: it joins
//! only if the keys agree, says every few seconds that it is alive, watches its clock
//! against the database's, and leaves when it stops.
//!
//! Keys: every instance must accept the tokens every other one signs, or a load balancer
//! would get 401 for half of the requests. An instance refuses to start when a live one
//! (seen in the last [`LIVE_WITHIN`]) signs with a key it does not accept, or does not
//! accept the key it signs with. Keys change without signing anyone out in two restarts
//! of every instance: first with the new key as `QUIRE_JWT_PREVIOUS_SECRET` (accepted,
//! not yet used), then with the new key as `QUIRE_JWT_SECRET` and the old one as
//! `QUIRE_JWT_PREVIOUS_SECRET`; see `docs/several-instances.md`.
//!
//! Clocks: tokens carry times, checked with a small leeway; an instance whose clock is
//! far from the others' would refuse their tokens as not yet valid or expired. Each
//! instance exports its clock's offset from the database's (`clock_offset_seconds`) and
//! warns when it nears the leeway.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::instances;

/// How often an instance says it is alive.
const PRESENCE: Duration = Duration::from_secs(10);
/// How recently an instance must have been seen to count as running.
pub const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// The ids of the keys this instance signs with and also accepts.
#[derive(Debug, Clone)]
pub struct KeyIds {
    /// The key it signs with.
    pub signing: String,
    /// The other key it accepts, if any.
    pub previous: Option<String>,
}

impl KeyIds {
    fn accepts(&self, key_id: &str) -> bool {
        self.signing == key_id || self.previous.as_deref() == Some(key_id)
    }
}

/// Why this instance may not join the others.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Another running instance uses keys this one cannot work with.
    #[error("{0}")]
    Keys(String),
    /// The database could not be asked.
    #[error("cannot register this instance in the database: {0}")]
    Database(String),
}

/// This instance's membership; dropping it stops saying it is alive.
pub struct Fleet {
    pool: PgPool,
    id: Uuid,
    presence: tokio::task::JoinHandle<()>,
    _stop: watch::Sender<()>,
}

impl Fleet {
    /// Joins the instances on `pool`'s database with `keys`, unless a running one
    /// disagrees on them; then says it is alive every few seconds. `leeway`: how far
    /// clocks may drift before tokens are refused.
    pub async fn join(pool: PgPool, keys: KeyIds, leeway: Duration) -> Result<Self, JoinError> {
        let failed = |e: sqlx::Error| JoinError::Database(crate::error::chain(&e));
        let id = Uuid::new_v4();
        let mut tx = pool.begin().await.map_err(failed)?;
        instances::lock(&mut tx).await.map_err(failed)?;
        let others = instances::live(&mut tx, id, LIVE_WITHIN.as_secs_f64())
            .await
            .map_err(failed)?;
        if let Some(why) = disagreement(&keys, &others) {
            return Err(JoinError::Keys(why));
        }
        let offset = measure(&mut tx, id, &keys, 0).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        report(offset, leeway);
        tracing::info!(
            instance = %id,
            others = others.len(),
            key_id = keys.signing,
            "joined the instances serving from this database"
        );
        let (stop, stopped) = watch::channel(());
        let presence = tokio::spawn(stay(pool.clone(), id, keys, leeway, offset, stopped));
        Ok(Self {
            pool,
            id,
            presence,
            _stop: stop,
        })
    }

    /// Leaves: the others stop counting this instance at once, and a replacement with
    /// other keys may start without waiting.
    pub async fn leave(self) {
        let Self {
            pool,
            id,
            presence,
            _stop,
        } = self;
        // Stopped first, so that a last word of presence cannot bring the row back.
        presence.abort();
        let _ = presence.await;
        let left = async {
            let mut conn = pool.acquire().await?;
            instances::leave(&mut conn, id).await
        };
        if let Err(e) = left.await {
            tracing::warn!(error = %crate::error::chain(&e), "could not deregister this instance");
        }
    }
}

/// Why `keys` cannot work alongside `others`, if they cannot.
fn disagreement(keys: &KeyIds, others: &[instances::InstanceRow]) -> Option<String> {
    let unaccepted = others.iter().find(|o| !keys.accepts(&o.signing_key_id));
    if let Some(other) = unaccepted {
        return Some(format!(
            "QUIRE_JWT_SECRET differs from the key another instance serving from this \
             database signs with (key id {}, seen {:.0} s ago; this instance's is {}): each \
             would refuse the other's tokens. Give every instance the same QUIRE_JWT_SECRET, \
             or change keys in two steps (docs/several-instances.md)",
            other.signing_key_id, other.seen_secs_ago, keys.signing
        ));
    }
    let refusing = others.iter().find(|o| {
        o.signing_key_id != keys.signing && o.previous_key_id.as_deref() != Some(&keys.signing)
    });
    refusing.map(|other| {
        format!(
            "another instance serving from this database (key id {}, seen {:.0} s ago) does \
             not accept this instance's key ({}): restart the others first with \
             QUIRE_JWT_PREVIOUS_SECRET set to the new key (docs/several-instances.md)",
            other.signing_key_id, other.seen_secs_ago, keys.signing
        )
    })
}

/// Says this instance is alive, and measures its clock's offset from the database's, in
/// milliseconds (the database's time minus this one's at the middle of the round trip).
async fn measure(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    keys: &KeyIds,
    last_offset_ms: i64,
) -> Result<i64, sqlx::Error> {
    let before = Utc::now();
    let theirs = instances::seen(
        conn,
        id,
        &keys.signing,
        keys.previous.as_deref(),
        last_offset_ms,
    )
    .await?;
    let after = Utc::now();
    let middle = before + (after - before) / 2;
    Ok((theirs - middle).num_milliseconds())
}

/// Exports the offset, and warns when it nears the leeway.
fn report(offset_ms: i64, leeway: Duration) {
    ::metrics::gauge!("clock_offset_seconds").set(offset_ms as f64 / 1000.0);
    let half = i64::try_from(leeway.as_millis() / 2).unwrap_or(i64::MAX);
    if offset_ms.abs() >= half {
        tracing::warn!(
            offset_ms,
            leeway_s = leeway.as_secs(),
            "this machine's clock is far from the database's: other instances may refuse \
             its tokens as not yet valid or expired. Synchronise the clocks (NTP)"
        );
    }
}

/// Says this instance is alive every [`PRESENCE`] until `stop` ends.
async fn stay(
    pool: PgPool,
    id: Uuid,
    keys: KeyIds,
    leeway: Duration,
    mut offset_ms: i64,
    mut stop: watch::Receiver<()>,
) {
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + PRESENCE, PRESENCE);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        let measured = async {
            let mut conn = pool.acquire().await?;
            measure(&mut conn, id, &keys, offset_ms).await
        };
        match measured.await {
            Ok(measured) => {
                offset_ms = measured;
                report(offset_ms, leeway);
            }
            Err(e) => tracing::warn!(
                error = %crate::error::chain(&e),
                "could not say this instance is alive: after 30 s the others stop counting it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(signing: &str, previous: Option<&str>) -> instances::InstanceRow {
        instances::InstanceRow {
            id: Uuid::nil(),
            signing_key_id: signing.to_owned(),
            previous_key_id: previous.map(str::to_owned),
            seen_secs_ago: 1.0,
        }
    }

    fn keys(signing: &str, previous: Option<&str>) -> KeyIds {
        KeyIds {
            signing: signing.to_owned(),
            previous: previous.map(str::to_owned),
        }
    }

    #[test]
    fn keys_change_in_two_steps_and_never_in_one() {
        let old = [other("old", None)];
        // The same key, alone or with the next one accepted.
        assert!(disagreement(&keys("old", None), &old).is_none());
        assert!(disagreement(&keys("old", Some("new")), &old).is_none());
        // Straight to the new key: the others would refuse its tokens.
        let jump = disagreement(&keys("new", Some("old")), &old).unwrap();
        assert!(jump.contains("does not accept"), "{jump}");
        // Once they accept it, it may sign with it, and the rest may follow.
        let ready = [other("old", Some("new"))];
        assert!(disagreement(&keys("new", Some("old")), &ready).is_none());
        let switched = [other("new", Some("old")), other("old", Some("new"))];
        assert!(disagreement(&keys("new", Some("old")), &switched).is_none());
        assert!(disagreement(&keys("new", None), &[other("new", Some("old"))]).is_none());
        // A key nobody shares.
        let stranger = disagreement(&keys("other", None), &old).unwrap();
        assert!(stranger.contains("QUIRE_JWT_SECRET differs"), "{stranger}");
    }
}
