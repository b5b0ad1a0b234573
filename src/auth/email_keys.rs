//! Bringing the email keys of accounts made before addresses were composed to Unicode NFC
//! to the form they have now, so that their owners sign in with either spelling and
//! nobody registers the other one as a second account.
//!
//! SQL cannot compose Unicode, so this runs in the server, at every start (an instance of
//! an older release may still be writing the old form during a rolling upgrade), over the
//! accounts whose key is not plain ASCII: one scan of the email keys, about 40 ms for a
//! hundred thousand accounts on PostgreSQL.

use super::{Auth, validate};
use crate::{db::users, error::AppResult};

impl Auth {
    /// Recomputes the email keys and addresses of accounts from before NFC.
    #[tracing::instrument(skip_all)]
    pub async fn compose_legacy_email_keys(&self) -> AppResult<()> {
        let mut conn = self.db.acquire().await?;
        let mut changed = 0;
        for (id, email, key) in users::non_ascii_email_keys(&mut conn).await? {
            let (new_email, new_key) = (validate::composed(&email), validate::email_key(&key));
            if new_email == email && new_key == key {
                continue;
            }
            match users::set_email_key(&mut conn, id, &new_email, &new_key).await {
                Ok(()) => changed += 1,
                // Two accounts that were one address all along: both stay as they are,
                // and the older spelling keeps signing in to its own account.
                Err(e) if crate::db::is_unique_violation(&e) => {
                    tracing::warn!(user_id = %id, "email key left as it was: another account has its composed form");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if changed > 0 {
            tracing::info!(accounts = changed, "email keys composed to NFC");
        }
        Ok(())
    }
}
