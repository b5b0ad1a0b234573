//! Brute-force protection: per client address, per account and address, and what
//! proxies may claim.

use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::{Gql, PASSWORD, TestApp, TestDb},
    limits::post_count,
};

crate::on_both_databases!(
    each_address_has_a_budget_of_credential_operations,
    failed_sign_ins_back_off_exponentially_until_one_succeeds,
    forwarded_addresses_count_only_from_trusted_proxies,
    an_account_pauses_after_a_hundred_failures_from_anywhere,
    a_paused_account_lets_its_owner_in_from_where_they_signed_in,
    an_account_has_a_budget_of_writes_however_it_sends_them,
);

async fn an_account_has_a_budget_of_writes_however_it_sends_them(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.throttle.enabled = true;
            s.serving.throttle.writes_per_minute = 6;
            s.serving.throttle.write_burst = 10;
            s.serving.limits.max_aliases = 20;
        })
        .await;
    let ada = app.signed_up("ada").await;
    let bob = app.signed_up("bob").await;
    // Fifteen posts in one request, through aliases: ten fit the budget.
    let posts: String = (0..15)
        .map(|i| format!("p{i}: createPost(input: {{ title: \"t{i}\", body: \"b\" }}) {{ id }} "))
        .collect();
    let res = app
        .gql(
            Some(&ada.access),
            &format!("mutation {{ {posts} }}"),
            json!({}),
        )
        .await;
    assert_eq!(res.status, 200);
    for i in 0..10 {
        assert!(res.data(&format!("p{i}.id")).is_string(), "{}", res.body);
    }
    let errors = res.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 5, "{}", res.body);
    for error in errors {
        assert_eq!(error["extensions"]["code"], "RATE_LIMITED", "{error}");
        let wait = error["extensions"]["retryAfter"].as_u64().unwrap();
        assert!((1..=10).contains(&wait), "{error}");
    }
    // A batch of votes gets no further: refused as a whole, 429 with Retry-After.
    let post = res.data("p0.id").as_str().unwrap().to_owned();
    let vote = json!({
        "query": "mutation($id: ID!) { votePost(id: $id) { voteCount } }",
        "variables": { "id": post },
    });
    let batch = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&ada.access)
        .json(&json!([vote, vote, vote]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 429);
    assert!(batch.headers().contains_key("retry-after"));
    let answers: serde_json::Value = batch.json().await.unwrap();
    for answer in answers.as_array().unwrap() {
        assert_eq!(answer["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    }
    // Another account has a budget of its own, and a long post costs more of it: one
    // for the write and one for every 4 KiB, so 41,000 characters cost the whole burst.
    let long = |title: &str| json!({ "i": { "title": title, "body": "x".repeat(41_000) } });
    let write = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";
    app.gql(Some(&bob.access), write, long("first")).await.ok();
    let second = app.gql(Some(&bob.access), write, long("second")).await;
    assert_eq!(second.code(), "RATE_LIMITED");
    // Four-byte characters cost by the byte: 41,000 of them (160 KiB) cost 41, taken
    // from the full bucket of 10 with 31 owed. At 6 a minute, the debt and one more
    // token take 320 seconds to come.
    let carol = app.signed_up("carol").await;
    let wide = json!({ "i": { "title": "wide", "body": "😀".repeat(41_000) } });
    app.gql(Some(&carol.access), write, wide).await.ok();
    let short = json!({ "i": { "title": "next", "body": "short" } });
    let next = app.gql(Some(&carol.access), write, short).await;
    assert_eq!(next.code(), "RATE_LIMITED");
    let wait = next.error()["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((300..=330).contains(&wait), "{}", next.body);
    // What was refused was not written.
    assert_eq!(post_count(&app, &ada.access).await, 10);
    assert_eq!(post_count(&app, &bob.access).await, 1);
}

fn retry_after(res: &Gql) -> u64 {
    res.error()["extensions"]["retryAfter"].as_u64().unwrap()
}

async fn login_from(app: &TestApp, forwarded: Option<&str>, email: &str, password: &str) -> Gql {
    let headers: Vec<(&str, &str)> = forwarded
        .map(|f| ("x-forwarded-for", f))
        .into_iter()
        .collect();
    app.gql_with(
        None,
        &headers,
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        json!({ "i": { "email": email, "password": password } }),
    )
    .await
}

async fn each_address_has_a_budget_of_credential_operations(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.throttle.enabled = true;
            s.serving.throttle.per_minute = 1;
            s.serving.throttle.burst = 3;
        })
        .await;
    // Registering counts as much as signing in.
    app.signed_up("ada").await;
    for _ in 0..2 {
        assert_eq!(
            login_from(&app, None, "ada@example.com", "wrong password")
                .await
                .code(),
            "UNAUTHENTICATED"
        );
    }
    let refused = login_from(&app, None, "ada@example.com", PASSWORD).await;
    assert_eq!(refused.code(), "RATE_LIMITED");
    assert!(
        (1..=60).contains(&retry_after(&refused)),
        "{}",
        refused.body
    );
    // Refused as a whole: 429 with Retry-After.
    assert_eq!(refused.status, 429);
    let header: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(header, retry_after(&refused));
    // Other requests are not limited.
    app.gql(None, "{ __typename }", json!({})).await.ok();
}

async fn failed_sign_ins_back_off_exponentially_until_one_succeeds(db: TestDb) {
    // A roomy budget per address, so that only the back-off is at work.
    let app = db
        .spawn_with(|s| {
            s.serving.throttle.enabled = true;
            s.serving.throttle.per_minute = 1000;
            s.serving.throttle.burst = 100;
        })
        .await;
    app.signed_up("ada").await;
    app.signed_up("bob").await;
    for _ in 0..5 {
        assert_eq!(
            login_from(&app, None, "ada@example.com", "wrong password")
                .await
                .code(),
            "UNAUTHENTICATED"
        );
    }
    // Now even the right password must wait a second.
    let waiting = login_from(&app, None, "ada@example.com", PASSWORD).await;
    assert_eq!(waiting.code(), "RATE_LIMITED");
    assert_eq!(retry_after(&waiting), 1);
    // Other accounts are not held back.
    login_from(&app, None, "bob@example.com", PASSWORD)
        .await
        .ok();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        login_from(&app, None, "ada@example.com", "still wrong")
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    // The wait doubles.
    let longer = login_from(&app, None, "ada@example.com", PASSWORD).await;
    assert_eq!(longer.code(), "RATE_LIMITED");
    assert_eq!(retry_after(&longer), 2);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    login_from(&app, None, "ada@example.com", PASSWORD)
        .await
        .ok();
    // A success starts the count afresh.
    assert_eq!(
        login_from(&app, None, "ada@example.com", "wrong password")
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    login_from(&app, None, "ada@example.com", PASSWORD)
        .await
        .ok();
}

async fn forwarded_addresses_count_only_from_trusted_proxies(db: TestDb) {
    let limits = |s: &mut quire::config::Settings| {
        s.serving.throttle.enabled = true;
        s.serving.throttle.per_minute = 1;
        s.serving.throttle.burst = 2;
    };
    // From an untrusted peer, X-Forwarded-For is ignored: all three share one budget.
    let app = db.spawn_with(limits).await;
    for forwarded in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(
            login_from(&app, Some(forwarded), "x@example.com", "pw")
                .await
                .code(),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        login_from(&app, Some("203.0.113.3"), "x@example.com", "pw")
            .await
            .code(),
        "RATE_LIMITED"
    );

    // Behind a trusted proxy, each forwarded client has its own.
    let app = db
        .spawn_with(|s| {
            limits(s);
            s.serving.server.trusted_proxies =
                quire::config::parse::addresses("127.0.0.1").unwrap();
        })
        .await;
    for _ in 0..2 {
        assert_eq!(
            login_from(&app, Some("203.0.113.1"), "x@example.com", "pw")
                .await
                .code(),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        login_from(&app, Some("203.0.113.1"), "x@example.com", "pw")
            .await
            .code(),
        "RATE_LIMITED"
    );
    // A client cannot hide behind a made-up hop: the right-most untrusted address counts.
    assert_eq!(
        login_from(
            &app,
            Some("198.51.100.7, 203.0.113.1"),
            "x@example.com",
            "pw"
        )
        .await
        .code(),
        "RATE_LIMITED"
    );
    assert_eq!(
        login_from(&app, Some("203.0.113.2"), "x@example.com", "pw")
            .await
            .code(),
        "UNAUTHENTICATED"
    );
    // `ip:port` is read as the address.
    let code = login_from(&app, Some("203.0.113.2:5555"), "x@example.com", "pw").await;
    assert_eq!(code.code(), "UNAUTHENTICATED");
    let code = login_from(&app, Some("203.0.113.2"), "x@example.com", "pw").await;
    assert_eq!(code.code(), "RATE_LIMITED");
    // A hop that cannot be read ends the walk: the proxy's own address counts, whatever
    // the client wrote to the left of it.
    for _ in 0..2 {
        login_from(
            &app,
            Some("203.0.113.50, not-an-address"),
            "x@example.com",
            "pw",
        )
        .await;
    }
    assert_eq!(
        login_from(&app, None, "x@example.com", "pw").await.code(),
        "RATE_LIMITED"
    );
}

async fn an_account_pauses_after_a_hundred_failures_from_anywhere(db: TestDb) {
    // Behind a trusted proxy, each attempt comes from another address, so that only the
    // per-account count is at work.
    let app = db
        .spawn_with(|s| {
            s.serving.throttle.enabled = true;
            s.serving.server.trusted_proxies =
                quire::config::parse::addresses("127.0.0.1").unwrap();
        })
        .await;
    app.signed_up("ada").await;
    for i in 0..100 {
        let address = format!("198.51.{}.{}", i / 200, i % 200 + 1);
        let res = login_from(&app, Some(&address), "ada@example.com", "a wrong guess").await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "attempt {i}");
    }
    let paused = login_from(&app, Some("203.0.113.77"), "ada@example.com", PASSWORD).await;
    assert_eq!(
        paused.code(),
        "RATE_LIMITED",
        "even the right password waits"
    );
    assert!(
        (840..=900).contains(&retry_after(&paused)),
        "{}",
        paused.body
    );
    // Other accounts sign in as ever.
    app.signed_up("bob").await;
}

async fn a_paused_account_lets_its_owner_in_from_where_they_signed_in(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.throttle.enabled = true;
            s.serving.server.trusted_proxies =
                quire::config::parse::addresses("127.0.0.1").unwrap();
        })
        .await;
    app.signed_up("ada").await;
    // The owner signs in at home; an attacker then fails a hundred times from elsewhere.
    let home = "203.0.113.5";
    let session = login_from(&app, Some(home), "ada@example.com", PASSWORD)
        .await
        .ok();
    let access = session
        .data("login.accessToken")
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..100 {
        let address = format!("198.51.{}.{}", i / 200, i % 200 + 1);
        let res = login_from(&app, Some(&address), "ada@example.com", "a wrong guess").await;
        assert_eq!(res.code(), "UNAUTHENTICATED", "attempt {i}");
    }
    // A new place waits, even with the right password.
    let elsewhere = login_from(&app, Some("203.0.113.77"), "ada@example.com", PASSWORD).await;
    assert_eq!(elsewhere.code(), "RATE_LIMITED");
    // From home the owner still gets in. A wrong password there gets the pause's answer,
    // as anywhere else: the pause tells nobody that the account was used from there.
    login_from(&app, Some(home), "ada@example.com", PASSWORD)
        .await
        .ok();
    let slip = login_from(&app, Some(home), "ada@example.com", "a slip of the finger").await;
    assert_eq!(slip.code(), "RATE_LIMITED", "{}", slip.body);
    for refused in [&slip, &elsewhere] {
        assert!(
            refused
                .message()
                .starts_with("too many failed sign-ins to this account"),
            "{}",
            refused.body
        );
    }
    // A stolen session used from elsewhere cannot check passwords meanwhile; the owner's
    // own, from home, can.
    let change = "mutation { changePassword(currentPassword: \"correct horse battery staple\", \
         newPassword: \"a much newer passphrase\") }";
    let from_elsewhere = app
        .gql_with(
            Some(&access),
            &[("x-forwarded-for", "203.0.113.77")],
            change,
            json!({}),
        )
        .await;
    assert_eq!(
        from_elsewhere.code(),
        "RATE_LIMITED",
        "{}",
        from_elsewhere.body
    );
    let changed = app
        .gql_with(
            Some(&access),
            &[("x-forwarded-for", home)],
            change,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(changed.data("changePassword"), true);
    // The owner's success does not lift the pause for the attacker's places.
    let still = login_from(
        &app,
        Some("203.0.113.77"),
        "ada@example.com",
        "a much newer passphrase",
    )
    .await;
    assert_eq!(still.code(), "RATE_LIMITED", "{}", still.body);
}
