//! Creating accounts: `register` (which also signs the new user in) and the
//! administrator's `create-user`.

use uuid::Uuid;

use super::{Auth, Authenticated, ClientInfo, password, validate};
use crate::{
    db::{
        self, AsConn, is_unique_violation,
        users::{self, NewUser, Role, UserRow},
    },
    error::{AppError, AppResult},
};

/// The fields of a new account, as the client sent them.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    /// The email address, untrimmed; validation trims and checks it.
    pub email: &'a str,
    /// The username exactly as it will be stored, once validated.
    pub username: &'a str,
    /// The password in plain text, checked against the policy and then hashed.
    pub password: &'a str,
}

impl Auth {
    /// Creates a USER account and starts its first session.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        account: NewAccount<'_>,
        client: &ClientInfo,
    ) -> AppResult<Authenticated> {
        let user = self.prepare_account(account, Role::User).await?;
        let mut tx = self.db.begin().await?;
        insert(&mut tx, &user).await?;
        let signed_in = self.start_session(&mut tx, user, client).await?;
        tx.commit().await?;
        tracing::info!(user_id = %signed_in.user.id, "account registered");
        Ok(signed_in)
    }

    /// Creates an account with the given role and no session (the CLI's `create-user`).
    #[tracing::instrument(skip_all, fields(role = role.as_str()))]
    pub async fn create_user(&self, account: NewAccount<'_>, role: Role) -> AppResult<UserRow> {
        let user = self.prepare_account(account, role).await?;
        let mut conn = self.db.acquire().await?;
        insert(&mut conn, &user).await?;
        tracing::info!(user_id = %user.id, "account created");
        Ok(user)
    }

    /// Validates, checks availability and hashes, in that order: cheap checks first, so a
    /// taken email never costs a password hash. Runs outside any transaction so that no
    /// lock is held while the password is hashed.
    async fn prepare_account(&self, account: NewAccount<'_>, role: Role) -> AppResult<UserRow> {
        let email = validate::email("email", account.email)?;
        let username_key = validate::username("username", account.username)?;
        password::check_policy("password", account.password)?;

        let taken = {
            let mut conn = self.db.acquire().await?;
            users::taken(&mut conn, &email.key, &username_key).await?
        };
        if taken.email {
            return Err(AppError::conflict(
                "email",
                "this email is already registered",
            ));
        }
        if taken.username {
            return Err(AppError::conflict(
                "username",
                "this username is already taken",
            ));
        }

        Ok(UserRow {
            id: Uuid::now_v7(),
            username: account.username.to_owned(),
            email: email.address,
            password_hash: self.passwords.hash(account.password).await?,
            role,
            created_at: db::now(),
            deactivated_at: None,
        })
    }
}

/// Inserts a prepared account; a race lost on the unique keys is a CONFLICT.
async fn insert(conn: impl AsConn, user: &UserRow) -> AppResult<()> {
    let new = NewUser {
        id: user.id,
        username: &user.username,
        username_key: &user.username.to_ascii_lowercase(),
        email: &user.email,
        email_key: &validate::email_key(&user.email),
        password_hash: &user.password_hash,
        role: user.role,
        now: user.created_at,
    };
    match users::insert(conn, &new).await {
        Ok(()) => Ok(()),
        // Another request took the email or username since the check.
        Err(e) if is_unique_violation(&e) => Err(AppError::Conflict {
            field: None,
            message: "this email or username was just taken".to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}
