//! What a thief or a race could keep once the owner acts: sessions started with an old
//! password, a password guessed through a stolen session, keys that outlive the password,
//! a key taking its owner's other keys away, two spellings of one address, and a refresh
//! that fails halfway.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Gql, PASSWORD, Remote, TestApp, TestDb, Tokens};

crate::on_both_databases!(
    sign_ins_racing_a_password_change_keep_no_session,
    sign_ins_racing_a_deactivation_do_not_come_back,
    a_stolen_session_cannot_guess_the_password,
    password_checks_sent_at_once_guess_no_more,
    checks_cut_off_by_their_client_still_settle,
    keys_made_while_the_password_changes_do_not_outlive_it,
    keys_need_the_password_and_end_with_it,
    a_key_cannot_take_its_owners_other_keys_away,
    composed_and_decomposed_addresses_are_one_account,
    a_refresh_that_fails_halfway_keeps_its_token,
    no_log_level_prints_a_secret,
);

const NEW_PASSWORD: &str = "a much newer passphrase";
const CHANGE: &str = "mutation($c: String!, $n: String!, $k: Boolean) { \
    changePassword(currentPassword: $c, newPassword: $n, keepApiKeys: $k) }";
const CREATE_KEY: &str =
    "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id } } }";
const REVOKE_KEY: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }";

/// `count` sign-ins of `email` with `password`, started `spacing` apart and run at once.
async fn staggered_logins(
    app: &TestApp,
    email: &str,
    password: &str,
    count: u64,
    spacing: Duration,
) -> Vec<Gql> {
    join_all((0..count).map(|i| async move {
        tokio::time::sleep(spacing * u32::try_from(i).unwrap()).await;
        app.login(email, password).await
    }))
    .await
}

/// The access tokens of the sign-ins that succeeded; every other one must have been
/// refused as a failed sign-in, never failed otherwise (a deadlock, say).
fn signed_in(results: &[Gql]) -> Vec<String> {
    for r in results {
        if r.body.get("errors").is_some() {
            assert_eq!(r.code(), "UNAUTHENTICATED", "{}", r.body);
        }
    }
    results
        .iter()
        .filter(|r| r.body.get("errors").is_none())
        .map(|r| r.data("login.accessToken").as_str().unwrap().to_owned())
        .collect()
}

async fn sign_ins_racing_a_password_change_keep_no_session(db: TestDb) {
    let app = db.spawn().await;
    let owner = app.signed_up("ada").await;
    // An old hash: the racing sign-ins also rewrite it, the other write that must not
    // put the old password back over the new one.
    app.give_an_old_hash("ada@example.com").await;

    let mut started = 0;
    // A few rounds, each with sign-ins spread over the whole change; one round is
    // usually enough to make sign-ins straddle it.
    for round in 0..3 {
        let (current, next) = if round % 2 == 0 {
            (PASSWORD, NEW_PASSWORD)
        } else {
            (NEW_PASSWORD, PASSWORD)
        };
        let owner_now = if round == 0 {
            owner.clone()
        } else {
            Tokens::from_login(&app.login("ada@example.com", current).await.ok())
        };
        let logins = staggered_logins(
            &app,
            "ada@example.com",
            current,
            16,
            Duration::from_millis(6),
        );
        let change = async {
            tokio::time::sleep(Duration::from_millis(15)).await;
            app.gql(
                Some(&owner_now.access),
                CHANGE,
                json!({ "c": current, "n": next }),
            )
            .await
        };
        let (logins, change) = tokio::join!(logins, change);
        change.ok();
        let tokens = signed_in(&logins);
        started += tokens.len();
        // Every session started with the old password has ended, whenever it started.
        for access in &tokens {
            assert_eq!(
                app.me(access).await.code(),
                "UNAUTHENTICATED",
                "round {round}"
            );
        }
        let sessions = app
            .gql(
                Some(&owner_now.access),
                "{ sessions { current } }",
                json!({}),
            )
            .await
            .ok();
        assert_eq!(
            sessions.data("sessions"),
            &json!([{ "current": true }]),
            "round {round}: only the session that changed the password is left"
        );
        // The new password is the one, whatever the sign-ins wrote meanwhile.
        assert_eq!(
            app.login("ada@example.com", current).await.code(),
            "UNAUTHENTICATED"
        );
        app.login("ada@example.com", next).await.ok();
    }
    assert!(started > 0, "some sign-ins finished before the changes");
}

async fn sign_ins_racing_a_deactivation_do_not_come_back(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    app.signed_up("ada").await;
    let ada_id = app.user_id(&app.signed_in("ada").await.access).await;
    let set_active = |active: bool| {
        let (name, root) = (
            if active {
                "reactivateUser"
            } else {
                "deactivateUser"
            },
            root.access.clone(),
        );
        let app = &app;
        let id = ada_id.clone();
        async move {
            app.gql(
                Some(&root),
                &format!("mutation($id: ID!) {{ {name}(id: $id) {{ id }} }}"),
                json!({ "id": id }),
            )
            .await
            .ok();
        }
    };

    for round in 0..3 {
        let logins = staggered_logins(
            &app,
            "ada@example.com",
            PASSWORD,
            16,
            Duration::from_millis(6),
        );
        let deactivate = async {
            tokio::time::sleep(Duration::from_millis(15)).await;
            set_active(false).await;
        };
        let (logins, ()) = tokio::join!(logins, deactivate);
        let tokens = signed_in(&logins);
        set_active(true).await;
        // Reactivation lets the owner sign in again; it revives no session from before.
        for access in &tokens {
            assert_eq!(
                app.me(access).await.code(),
                "UNAUTHENTICATED",
                "round {round}"
            );
        }
        let fresh = Tokens::from_login(&app.login("ada@example.com", PASSWORD).await.ok());
        let sessions = app
            .gql(Some(&fresh.access), "{ sessions { current } }", json!({}))
            .await
            .ok();
        assert_eq!(
            sessions.data("sessions"),
            &json!([{ "current": true }]),
            "round {round}"
        );
    }
}

/// An application counting failed sign-ins, with a budget of credential operations large
/// enough to stay out of the way.
async fn counting_failures(db: &TestDb) -> TestApp {
    db.spawn_with(|s| {
        s.serving.throttle.enabled = true;
        s.serving.throttle.per_minute = 1000;
        s.serving.throttle.burst = 1000;
    })
    .await
}

async fn a_stolen_session_cannot_guess_the_password(db: TestDb) {
    let app = counting_failures(&db).await;
    let owner = app.signed_up("ada").await;
    let stolen = app.signed_in("ada").await;
    let guess = |access: &str, password: &'static str| {
        let access = access.to_owned();
        let app = &app;
        async move {
            app.gql(
                Some(&access),
                CHANGE,
                json!({ "c": password, "n": NEW_PASSWORD }),
            )
            .await
        }
    };
    // Two wrong guesses are told as such, naming the argument.
    for wrong in ["guess one is wrong", "guess two is wrong"] {
        let res = guess(&stolen.access, wrong).await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{}", res.body);
        assert_eq!(res.error()["extensions"]["field"], "currentPassword");
    }
    // They count with failed sign-ins from the same address.
    for wrong in ["guess three", "guess four"] {
        assert_eq!(
            app.login("ada@example.com", wrong).await.code(),
            "UNAUTHENTICATED"
        );
    }
    // The session's third wrong guess ends it: the thief is out, the password stands.
    let res = guess(&stolen.access, "guess five is wrong").await;
    assert_eq!(res.code(), "UNAUTHENTICATED", "{}", res.body);
    assert!(res.message().contains("session has ended"), "{}", res.body);
    assert_eq!(app.me(&stolen.access).await.code(), "UNAUTHENTICATED");
    assert_eq!(app.refresh(&stolen.refresh).await.code(), "UNAUTHENTICATED");
    let res = guess(&stolen.access, PASSWORD).await;
    assert_eq!(
        res.code(),
        "UNAUTHENTICATED",
        "a right guess on the ended session changes nothing"
    );

    // Five failures from this address, of either kind: it waits, for sign-ins and for
    // password checks alike, even with the right password.
    let res = guess(&owner.access, PASSWORD).await;
    assert_eq!(res.code(), "RATE_LIMITED", "{}", res.body);
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.code(),
        "RATE_LIMITED"
    );
    // Once the wait is over, the owner's right password works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    guess(&owner.access, PASSWORD).await.ok();
    app.login("ada@example.com", NEW_PASSWORD).await.ok();
}

async fn password_checks_sent_at_once_guess_no_more(db: TestDb) {
    let app = counting_failures(&db).await;
    app.signed_up("ada").await;
    let stolen = app.signed_in("ada").await;
    // Twelve wrong guesses at once, through both operations that check the password.
    let guesses = join_all((0..12).map(|i| {
        let access = stolen.access.clone();
        let app = &app;
        async move {
            if i % 2 == 0 {
                app.gql(
                    Some(&access),
                    CHANGE,
                    json!({ "c": format!("wrong guess {i}"), "n": NEW_PASSWORD }),
                )
                .await
            } else {
                app.gql(
                    Some(&access),
                    CREATE_KEY,
                    json!({ "i": { "name": "k", "scopes": ["READ"], "currentPassword": format!("wrong guess {i}") } }),
                )
                .await
            }
        }
    }))
    .await;
    // A guess was judged if its answer says whether the password was right: wrong (or
    // wrong for the last time, ending the session). The others were refused unjudged.
    let mut judged = 0;
    for res in &guesses {
        match res.code() {
            "BAD_USER_INPUT" => judged += 1,
            "UNAUTHENTICATED" if res.message().contains("too many wrong passwords") => judged += 1,
            "UNAUTHENTICATED" | "RATE_LIMITED" => {}
            other => panic!("{other}: {}", res.body),
        }
    }
    assert!(judged <= 3, "{judged} guesses were judged: {guesses:#?}");
    assert_eq!(app.me(&stolen.access).await.code(), "UNAUTHENTICATED");
}

async fn checks_cut_off_by_their_client_still_settle(db: TestDb) {
    let app = counting_failures(&db).await;
    app.signed_up("ada").await;
    let ada = app.signed_in("ada").await;
    // Requests with the right password, each abandoned by its client a little later
    // than the one before: some while the password is being checked. A count taken for
    // a check must be settled even when nobody waits for the answer.
    let impatient = reqwest::Client::new();
    for wait_ms in (0..12).map(|i| 4 * i) {
        let cut_off = impatient
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&ada.access)
            .timeout(Duration::from_millis(wait_ms))
            .json(&json!({ "query": CREATE_KEY, "variables": { "i": {
                "name": "k", "scopes": ["READ"], "currentPassword": PASSWORD } } }))
            .send()
            .await;
        match cut_off {
            Ok(res) => {
                // Answered in time: the key was made.
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                assert!(status == 200 && body.contains("secret"), "{status} {body}");
            }
            // Time for an abandoned check to finish before the next one starts.
            // (A second is ample even on a busy machine: a check takes tens of
            // milliseconds.)
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    // The session keeps all its checks, and the address has no failures against it: two
    // wrong passwords are told as wrong, and the right one still works.
    for wrong in ["wrong guess one", "wrong guess two"] {
        let res = app
            .gql(
                Some(&ada.access),
                CHANGE,
                json!({ "c": wrong, "n": NEW_PASSWORD }),
            )
            .await;
        assert_eq!(res.code(), "BAD_USER_INPUT", "{}", res.body);
    }
    app.gql(
        Some(&ada.access),
        CHANGE,
        json!({ "c": PASSWORD, "n": NEW_PASSWORD, "k": true }),
    )
    .await
    .ok();
}

async fn keys_made_while_the_password_changes_do_not_outlive_it(db: TestDb) {
    let app = db.spawn().await;
    let owner = app.signed_up("ada").await;
    let thief = app.signed_in("ada").await;
    // The thief, who knows the old password, makes keys as fast as they can while the
    // owner changes it: no key may outlive the change, whenever it was made.
    let keys = join_all((0..12u32).map(|i| {
        let access = thief.access.clone();
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(6) * i).await;
            make_key(app, &access, PASSWORD, &["WRITE"]).await
        }
    }));
    let owner_acts = async {
        tokio::time::sleep(Duration::from_millis(15)).await;
        app.gql(
            Some(&owner.access),
            CHANGE,
            json!({ "c": PASSWORD, "n": NEW_PASSWORD }),
        )
        .await
        .ok();
    };
    let (keys, ()) = tokio::join!(keys, owner_acts);
    let mut made = 0;
    for key in keys {
        match key {
            Ok((_, secret)) => {
                made += 1;
                assert_eq!(posts_as(&app, &secret).await, "UNAUTHENTICATED");
            }
            // Refused: the session ended, or more checks of its password were in flight
            // than a session may have.
            Err(res) => assert!(
                matches!(res.code(), "UNAUTHENTICATED" | "RATE_LIMITED"),
                "{}",
                res.body
            ),
        }
    }
    assert!(made > 0, "some keys were made before the change");
    let fresh = Tokens::from_login(&app.login("ada@example.com", NEW_PASSWORD).await.ok());
    let listed = app
        .gql(Some(&fresh.access), "{ apiKeys { revokedAt } }", json!({}))
        .await
        .ok();
    let keys = listed.data("apiKeys").as_array().unwrap();
    assert_eq!(keys.len(), made);
    assert!(
        keys.iter().all(|k| k["revokedAt"].is_string()),
        "{}",
        listed.body
    );
}

/// Makes a key as `access` with `password`; returns (id, secret) or the refusal.
async fn make_key(
    app: &TestApp,
    access: &str,
    password: &str,
    scopes: &[&str],
) -> Result<(String, String), Gql> {
    let res = app
        .gql(
            Some(access),
            CREATE_KEY,
            json!({ "i": { "name": "script", "scopes": scopes, "currentPassword": password } }),
        )
        .await;
    if res.body.get("errors").is_some() {
        return Err(res);
    }
    Ok((
        res.data("createApiKey.apiKey.id")
            .as_str()
            .unwrap()
            .to_owned(),
        res.data("createApiKey.secret").as_str().unwrap().to_owned(),
    ))
}

async fn posts_as(app: &TestApp, secret: &str) -> &'static str {
    let res = app
        .gql(
            Some(secret),
            "mutation { createPost(input: { title: \"as the owner\", body: \"b\" }) { id } }",
            json!({}),
        )
        .await;
    match res.body.get("errors") {
        None => "ok",
        Some(_) if res.code() == "UNAUTHENTICATED" => "UNAUTHENTICATED",
        Some(_) => panic!("{}", res.body),
    }
}

async fn keys_need_the_password_and_end_with_it(db: TestDb) {
    let app = db.spawn().await;
    let owner = app.signed_up("ada").await;
    let thief = app.signed_in("ada").await;

    // A stolen session alone makes no key.
    let refused = make_key(&app, &thief.access, "not the password", &["WRITE"])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.error()["extensions"]["field"], "currentPassword");
    assert!(
        app.gql(Some(&owner.access), "{ apiKeys { id } }", json!({}))
            .await
            .ok()
            .data("apiKeys")
            .as_array()
            .unwrap()
            .is_empty()
    );

    // With the password it does; a password change ends it, and says so in the docs.
    let (_, first) = make_key(&app, &thief.access, PASSWORD, &["WRITE"])
        .await
        .unwrap();
    assert_eq!(posts_as(&app, &first).await, "ok");
    app.gql(
        Some(&owner.access),
        CHANGE,
        json!({ "c": PASSWORD, "n": NEW_PASSWORD }),
    )
    .await
    .ok();
    assert_eq!(posts_as(&app, &first).await, "UNAUTHENTICATED");
    let listed = app
        .gql(Some(&owner.access), "{ apiKeys { revokedAt } }", json!({}))
        .await
        .ok();
    assert!(
        listed.data("apiKeys")[0]["revokedAt"].is_string(),
        "{}",
        listed.body
    );

    // Kept on request.
    let (_, kept) = make_key(&app, &owner.access, NEW_PASSWORD, &["WRITE"])
        .await
        .unwrap();
    app.gql(
        Some(&owner.access),
        CHANGE,
        json!({ "c": NEW_PASSWORD, "n": PASSWORD, "k": true }),
    )
    .await
    .ok();
    assert_eq!(posts_as(&app, &kept).await, "ok");

    // Signing out everywhere keeps keys unless asked; asked, it ends them too.
    let spare = app.signed_in("ada").await;
    let n = app
        .gql(Some(&owner.access), "mutation { logoutAll }", json!({}))
        .await
        .ok();
    assert_eq!(n.data("logoutAll"), &json!(2));
    assert_eq!(posts_as(&app, &kept).await, "ok");
    assert_eq!(app.me(&spare.access).await.code(), "UNAUTHENTICATED");
    let last = app.signed_in("ada").await;
    app.gql(
        Some(&last.access),
        "mutation { logoutAll(revokeApiKeys: true) }",
        json!({}),
    )
    .await
    .ok();
    assert_eq!(posts_as(&app, &kept).await, "UNAUTHENTICATED");
    assert_eq!(app.me(&last.access).await.code(), "UNAUTHENTICATED");
}

async fn a_key_cannot_take_its_owners_other_keys_away(db: TestDb) {
    let app = db.spawn().await;
    let root = app.admin("root").await;
    let ada = app.signed_up("ada").await;
    let (_, writer) = make_key(&app, &ada.access, PASSWORD, &["READ", "WRITE"])
        .await
        .unwrap();
    let (other_id, other) = make_key(&app, &ada.access, PASSWORD, &["READ"])
        .await
        .unwrap();
    let revoke = |credential: String, id: String| {
        let app = &app;
        async move {
            app.gql(Some(&credential), REVOKE_KEY, json!({ "id": id }))
                .await
        }
    };

    // A WRITE key is for posts and votes: its owner's other keys are not its to end.
    let res = revoke(writer.clone(), other_id.clone()).await;
    assert_eq!(res.code(), "FORBIDDEN", "{}", res.body);
    assert!(res.message().contains("session"), "{}", res.body);
    app.gql(Some(&other), "{ me { username } }", json!({}))
        .await
        .ok();

    // An administrator's ADMIN key ends other users' keys, but not its owner's own.
    let (_, admin_key) = make_key(&app, &root.access, PASSWORD, &["ADMIN"])
        .await
        .unwrap();
    let (root_other_id, _) = make_key(&app, &root.access, PASSWORD, &["READ"])
        .await
        .unwrap();
    assert_eq!(
        revoke(admin_key.clone(), root_other_id).await.code(),
        "FORBIDDEN"
    );
    revoke(admin_key.clone(), other_id).await.ok();
    assert_eq!(
        app.gql(Some(&other), "{ me { username } }", json!({}))
            .await
            .code(),
        "UNAUTHENTICATED"
    );

    // A key may still end itself, and a session its owner's keys.
    let (writer_id, _) = {
        let listed = app
            .gql(Some(&ada.access), "{ apiKeys { id revokedAt } }", json!({}))
            .await
            .ok();
        let live: Vec<&Value> = listed
            .data("apiKeys")
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["revokedAt"].is_null())
            .collect();
        assert_eq!(live.len(), 1);
        (live[0]["id"].as_str().unwrap().to_owned(), ())
    };
    revoke(writer.clone(), writer_id.clone()).await.ok();
    assert_eq!(posts_as(&app, &writer).await, "UNAUTHENTICATED");
    let (third_id, _) = make_key(&app, &ada.access, PASSWORD, &["READ"])
        .await
        .unwrap();
    revoke(ada.access.clone(), third_id).await.ok();
}

async fn composed_and_decomposed_addresses_are_one_account(db: TestDb) {
    let app = db.spawn().await;
    let decomposed = "Zoe\u{0301}@example.com";
    let composed = "zo\u{00e9}@EXAMPLE.com";
    let res = app.register(decomposed, "zoe", PASSWORD).await.ok();
    // Kept in the composed form.
    assert_eq!(res.data("register.user.email"), "Zo\u{00e9}@example.com");
    let taken = app.register(composed, "zoe_again", PASSWORD).await;
    assert_eq!(taken.code(), "CONFLICT", "{}", taken.body);
    assert_eq!(taken.error()["extensions"]["field"], "email");
    // Either spelling, in any case, signs in to the one account.
    let a = app.login(composed, PASSWORD).await.ok();
    let b = app.login(decomposed, PASSWORD).await.ok();
    assert_eq!(a.data("login.user.id"), b.data("login.user.id"));

    // An account made before addresses were composed, its key the decomposed spelling
    // lower-cased: the next start brings it to the composed form.
    let legacy = "Rene\u{0301}@example.com";
    {
        use quire::db::users::{self, NewUser, Role};
        let hash = app.app.auth.passwords.hash(PASSWORD).await.unwrap();
        let mut conn = app.app.db.acquire().await.unwrap();
        users::insert(
            &mut conn,
            &NewUser {
                id: uuid::Uuid::now_v7(),
                username: "rene",
                username_key: "rene",
                email: legacy,
                email_key: &legacy.to_lowercase(),
                password_hash: &hash,
                role: Role::User,
                now: quire::db::now(),
            },
        )
        .await
        .unwrap();
    }
    let restarted = db.spawn().await;
    let signed_in = restarted
        .login("REN\u{00c9}@example.com", PASSWORD)
        .await
        .ok();
    assert_eq!(
        signed_in.data("login.user.email"),
        "Ren\u{00e9}@example.com"
    );
    restarted.login(legacy, PASSWORD).await.ok();
    let taken = restarted
        .register("ren\u{00e9}@example.com", "rene_two", PASSWORD)
        .await;
    assert_eq!(taken.code(), "CONFLICT", "{}", taken.body);
}

async fn a_refresh_that_fails_halfway_keeps_its_token(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.auth.refresh_reuse_grace = std::time::Duration::from_secs(1))
        .await;
    let ada = app.signed_up("ada").await;
    // The database fails every read of the users table for a while, as an overloaded
    // or failing-over database would: sessions are still read and written.
    let rename = |from: &'static str, to: &'static str| {
        let db = app.app.db.clone();
        async move {
            let mut conn = db.acquire().await.unwrap();
            let sql = format!("ALTER TABLE users RENAME COLUMN {from} TO {to}");
            quire::execute!(&mut conn, sqlx::query(sqlx::AssertSqlSafe(sql))).unwrap();
        }
    };
    rename("role", "role_away").await;
    let failed = app.refresh(&ada.refresh).await;
    assert_eq!(failed.code(), "INTERNAL_SERVER_ERROR", "{}", failed.body);
    assert!(
        !failed.message().contains("role_away"),
        "no SQL reaches the client"
    );
    rename("role_away", "role").await;

    // A retry after the grace window, as a client backing off would send it, is not
    // taken for a stolen token: the token was never used.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let retried = app.refresh(&ada.refresh).await.ok();
    let next = Remote::tokens(&retried);
    app.me(&next.access).await.ok();
}

async fn no_log_level_prints_a_secret(db: TestDb) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let server = db.serve_process_logged(&[("QUIRE_LOG", "trace")]).await;
    let client = reqwest::Client::new();
    let gql = |token: Option<String>, query: &'static str, variables: Value| {
        let request = client
            .post(format!("{}/graphql", server.base))
            .json(&json!({ "query": query, "variables": variables }));
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            assert!(
                body.get("errors").is_none() || query.contains("wrong"),
                "{body}"
            );
            body
        }
    };
    let first_password = "first secret passphrase of ada";
    let second_password = "second secret passphrase of ada";
    let registered = gql(
        None,
        "mutation($e: String!, $p: String!) { register(input: { email: $e, username: \"ada\", \
         password: $p }) { accessToken refreshToken } }",
        json!({ "e": "ada@example.com", "p": first_password }),
    )
    .await;
    let access = registered["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_refresh = registered["data"]["register"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshed = gql(
        None,
        "mutation($t: String) { refresh(refreshToken: $t) { accessToken refreshToken } }",
        json!({ "t": first_refresh }),
    )
    .await;
    let second_refresh = refreshed["data"]["refresh"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = gql(
        Some(access.clone()),
        "mutation($p: String!) { createApiKey(input: { name: \"k\", scopes: [READ], \
         currentPassword: $p }) { secret } }",
        json!({ "p": first_password }),
    )
    .await["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    gql(Some(key.clone()), "{ me { username } }", json!({})).await;
    gql(
        None,
        "mutation($p: String!) { wrong: login(input: { email: \"ada@example.com\", password: $p }) { accessToken } }",
        json!({ "p": "a wrong guess at the secret" }),
    )
    .await;

    // A socket that signs in with the access token in `connection_init`.
    let mut request = format!("{}/graphql", server.base.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {access}") } });
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack:?}");
    drop(ws);

    gql(
        Some(access.clone()),
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
        json!({ "c": first_password, "n": second_password }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let logs = server.logs();
    assert!(
        logs.iter().filter(|l| l.contains("DEBUG")).count() > 10,
        "the server logged below info: {} lines",
        logs.len()
    );
    // The signature of a JWT is its last part; a refresh token or key is secret whole.
    let signature = access.rsplit('.').next().unwrap();
    for secret in [
        first_password,
        second_password,
        "a wrong guess at the secret",
        signature,
        &first_refresh,
        &second_refresh,
        &key,
    ] {
        let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "a secret reached the log: {leaks:#?}");
    }
}
