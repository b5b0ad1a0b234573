//! Transactions and requests that go away: a client that disconnects, or a request that
//! times out, while its transaction is beginning must not leave that transaction open on
//! a pooled connection, where every later user of the connection would run inside it and
//! hold its locks for ever.

use std::time::Duration;

use crate::helpers::TestDb;

crate::on_both_databases!(a_transaction_abandoned_while_it_begins_is_never_left_open);

/// Whether the pool's connection is inside a transaction that nobody holds.
async fn left_open(pool: &quire::db::Db, postgres: bool) -> bool {
    let mut conn = pool.acquire().await.expect("a connection");
    if postgres {
        // A savepoint can only be made inside a transaction block.
        quire::execute!(&mut conn, sqlx::query("SAVEPOINT probe")).is_ok()
    } else {
        // SQLite refuses to begin inside a transaction.
        let began = quire::execute!(&mut conn, sqlx::query("BEGIN")).is_ok();
        if began {
            quire::execute!(&mut conn, sqlx::query("ROLLBACK")).expect("a rollback");
        }
        !began
    }
}

async fn a_transaction_abandoned_while_it_begins_is_never_left_open(db: TestDb) {
    drop(db.spawn().await);
    let url = quire::config::DatabaseUrl::parse(&db.url).expect("a database URL");
    // One connection, so that every step below uses the one an abandoned BEGIN touched.
    let pool = quire::db::Db::connect(&url, 1).await.expect("a pool");
    let postgres = db.backend_name() == "postgres";
    for attempt in 0..200u32 {
        // Give up on the transaction as soon as it waits, or a moment later.
        let patience = Duration::from_micros(u64::from(attempt % 20) * 25);
        let _ = tokio::time::timeout(patience, pool.begin()).await;
        // Whatever became of that transaction, give it a moment to be rolled back.
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            !left_open(&pool, postgres).await,
            "attempt {attempt}: a transaction was left open on the pooled connection"
        );
    }
    pool.close().await;
}
