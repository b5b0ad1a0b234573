//! Password hashing (argon2id) and the password policy.
//!
//! Hashing is slow on purpose, so it runs on the blocking thread pool, never on the async
//! workers, and a semaphore sized to the CPU count bounds how many hashes run at once: a
//! flood of logins queues instead of stalling other requests or exhausting memory
//! (each hash holds 19 MiB).

use std::{collections::HashSet, sync::Arc, sync::LazyLock};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::{OnceCell, Semaphore};

use crate::error::{AppError, AppResult};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters; longer ones are refused, never truncated.
pub const MAX_LEN: usize = 128;

/// Memory cost in KiB, iterations and lanes: OWASP's recommended argon2id settings.
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Checks a new password against the policy: 8 to 128 characters, no composition
/// rules, and not one of the most common passwords (compared case-insensitively).
pub fn check_policy(field: &'static str, password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at least {MIN_LEN} characters long"),
        ));
    }
    if len > MAX_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at most {MAX_LEN} characters long"),
        ));
    }
    if COMMON.contains(password.to_lowercase().as_str()) {
        return Err(AppError::bad_input(
            field,
            "this password is one of the most commonly used and easily guessed; \
             choose another, for example a few unrelated words",
        ));
    }
    Ok(())
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password.
    No,
    /// Right password, and the hash uses the current parameters.
    Yes,
    /// Right password, but the hash should be recomputed with the current parameters.
    YesButRehash,
}

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: Arc<OnceCell<String>>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    /// A hasher that runs at most one hash per available CPU at a time.
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cpus)),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let password = password.to_owned();
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            hasher()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AppError::internal(e.to_string()))
        })
        .await
    }

    /// Checks a password against a stored PHC string.
    pub async fn verify(&self, password: &str, phc: &str) -> AppResult<Verified> {
        let password = password.to_owned();
        let phc = phc.to_owned();
        self.blocking(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| AppError::internal(e.to_string()))?;
            let ok = match parsed.algorithm.as_str() {
                "argon2id" | "argon2i" | "argon2d" => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                other => {
                    return Err(AppError::internal(format!(
                        "unsupported password hash algorithm {other}"
                    )));
                }
            };
            Ok(match (ok, is_current(&parsed)) {
                (false, _) => Verified::No,
                (true, true) => Verified::Yes,
                (true, false) => Verified::YesButRehash,
            })
        })
        .await
    }

    /// Computes the dummy hash ahead of the first login with an unknown email, which
    /// would otherwise pay for it and take measurably longer than a wrong password.
    pub async fn warm_up(&self) -> AppResult<()> {
        self.dummy_hash().await.map(|_| ())
    }

    async fn dummy_hash(&self) -> AppResult<&String> {
        self.dummy
            .get_or_try_init(|| async {
                let random: [u8; 16] = rand::random();
                self.hash(&format!("{random:x?}")).await
            })
            .await
    }

    /// Spends the same time as [`Passwords::verify`] on a hash that matches nothing, so
    /// that an unknown email takes as long to refuse as a wrong password.
    pub async fn verify_dummy(&self, password: &str) -> AppResult<()> {
        let dummy = self.dummy_hash().await?.clone();
        self.verify(password, &dummy).await.map(|_| ())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        // The permit moves into the blocking task: were the request cancelled (a client
        // that disconnects), the hash would still run, and so must still hold its permit.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AppError::internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AppError::internal(e.to_string()))?
    }
}

fn params() -> Params {
    Params::new(M_COST, T_COST, P_COST, None).expect("argon2 parameters are valid constants")
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Whether a stored hash already uses argon2id with the current parameters.
fn is_current(hash: &PasswordHash<'_>) -> bool {
    let current = params();
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == current.m_cost()
                && p.t_cost() == current.t_cost()
                && p.p_cost() == current.p_cost()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for pw in [
            "password123",
            "qwerty123",
            "Password123",
            "QWERTY123",
            "iloveyou1",
        ] {
            let err = check_policy("password", pw).unwrap_err();
            assert!(err.to_string().contains("commonly used"), "{pw}: {err}");
        }
        assert!(check_policy("password", "correct horse battery staple").is_ok());
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert!(check_policy("password", "ünïcødé").is_err()); // 7 characters
        assert!(check_policy("password", "ünïcødéz").is_ok()); // 8 characters, 12 bytes
        assert!(check_policy("password", &"é".repeat(128)).is_ok());
        assert!(check_policy("password", &"é".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let passwords = Passwords::new();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"a long passphrase", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert_eq!(
            passwords.verify("a long passphrase", &weak).await.unwrap(),
            Verified::YesButRehash
        );
        assert_eq!(
            passwords.verify("wrong passphrase", &weak).await.unwrap(),
            Verified::No
        );
        let current = passwords.hash("a long passphrase").await.unwrap();
        assert!(current.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            passwords
                .verify("a long passphrase", &current)
                .await
                .unwrap(),
            Verified::Yes
        );
    }
}
