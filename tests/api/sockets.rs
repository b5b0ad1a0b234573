//! WebSockets under attack: many subscriptions multiplying each event's work, anonymous
//! sockets and one account trying to take every place, and a subscriber that stops
//! reading. Clients bind to other loopback addresses (127.0.0.2, …) to stand for other
//! machines.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, TestDb, statements},
    subscriptions::{POST_CREATED, WAIT, Ws, bearer},
};

crate::on_both_databases!(
    one_event_is_resolved_once_for_every_subscription_of_one_viewer,
    subscriptions_have_a_lower_complexity_limit_of_their_own,
    an_account_runs_a_bounded_number_of_subscriptions,
    anonymous_sockets_cannot_keep_signed_in_users_out,
    one_account_cannot_hold_every_socket,
    a_subscriber_that_stops_reading_is_dropped,
    long_ids_and_large_messages_end_the_connection,
);

/// A selection that reads the database for every event: the author, and their posts.
const NESTED: &str = "subscription { postCreated { id title author { username \
                      posts(first: 5) { edges { node { title voteCount } } } } } }";

async fn one_event_is_resolved_once_for_every_subscription_of_one_viewer(db: TestDb) {
    statements::install();
    let app = db
        .spawn_with(|s| s.serving.websockets.subscriptions_per_user = 1000)
        .await;
    let ada = app.signed_up("ada").await;
    let bob = app.signed_up("bob").await;
    app.post(&bob.access, "An older post", true).await;
    // Ten sockets of one account, each with a hundred subscriptions to the same thing.
    let ids: Vec<String> = (0..10)
        .map(|i| format!("fanout-{}-{i}", uuid::Uuid::new_v4().simple()))
        .collect();
    let mut sockets = Vec::new();
    for id in &ids {
        let mut ws = Ws::open_from(&app, [127, 0, 0, 1], None, &[("x-request-id", id)])
            .await
            .expect("the upgrade");
        ws.init(json!({ "Authorization": bearer(&ada.access) }))
            .await;
        ws.ack().await;
        for n in 0..100 {
            ws.subscribe(&n.to_string(), NESTED, json!({})).await;
        }
        assert_eq!(ws.round_trip().await, Vec::<Value>::new());
        sockets.push(ws);
    }
    let sent = || -> usize { ids.iter().map(|id| statements::sent_by(id).len()).sum() };
    let before = sent();

    app.post(&bob.access, "Fan out", true).await;
    for ws in &mut sockets {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let message = ws.next_json().await;
            let data = &message["payload"]["data"]["postCreated"];
            assert_eq!(data["title"], "Fan out", "{message}");
            assert_eq!(data["author"]["username"], "bob");
            assert_eq!(
                data["author"]["posts"]["edges"][1]["node"]["title"],
                "An older post"
            );
            seen.insert(message["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 100, "one message for each subscription");
    }
    // A thousand subscriptions; the event's selection was read once, in a few statements.
    let statements = sent() - before;
    assert!(
        (1..=5).contains(&statements),
        "{statements} statements for one event"
    );
}

async fn subscriptions_have_a_lower_complexity_limit_of_their_own(db: TestDb) {
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    // A page of 50 posts, each with its title and vote count: 50 × 4 and a little more,
    // over the 200 a subscription may cost, well within what a query may.
    let posts = "posts(first: 50) { edges { node { title voteCount } } }";
    app.gql(
        Some(&ada.access),
        &format!("{{ me {{ {posts} }} }}"),
        json!({}),
    )
    .await
    .ok();
    let selection = format!("author {{ {posts} }}");
    let mut ws = Ws::signed_in(&app, &ada.access).await;
    ws.subscribe(
        "costly",
        &format!("subscription {{ postCreated {{ id {selection} }} }}"),
        json!({}),
    )
    .await;
    assert_eq!(ws.failure("costly").await, ["GRAPHQL_VALIDATION_FAILED"]);
    ws.subscribe(
        "cheap",
        "subscription { postCreated { id author { posts(first: 5) { edges { node { title } } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
}

async fn an_account_runs_a_bounded_number_of_subscriptions(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.websockets.subscriptions_per_user = 150)
        .await;
    let ada = app.signed_up("ada").await;
    let mut first = Ws::signed_in(&app, &ada.access).await;
    let mut second = Ws::signed_in(&app, &ada.access).await;
    for i in 0..100 {
        first
            .subscribe(&i.to_string(), POST_CREATED, json!({}))
            .await;
    }
    assert_eq!(first.round_trip().await, Vec::<Value>::new());
    for i in 0..50 {
        second
            .subscribe(&i.to_string(), POST_CREATED, json!({}))
            .await;
    }
    assert_eq!(second.round_trip().await, Vec::<Value>::new());
    second.subscribe("151st", POST_CREATED, json!({})).await;
    assert_eq!(second.failure("151st").await, ["BAD_REQUEST"]);
    // Another account is not held to ada's count.
    let bob = app.signed_up("bob").await;
    let mut bobs = Ws::signed_in(&app, &bob.access).await;
    bobs.subscribe("1", POST_CREATED, json!({})).await;
    assert_eq!(bobs.round_trip().await, Vec::<Value>::new());
    // Ending one of ada's makes room for another, on any of her connections.
    first.stop("0").await;
    assert_eq!(first.round_trip().await, Vec::<Value>::new());
    second.subscribe("another", POST_CREATED, json!({})).await;
    assert_eq!(second.round_trip().await, Vec::<Value>::new());
}

/// Opens a socket from `from` and signs it in as `access`: its close code if the server
/// closes it instead of acknowledging, or the status if it refuses the upgrade.
async fn sign_in_from(app: &TestApp, from: [u8; 4], access: &str) -> Result<Ws, String> {
    let mut ws = Ws::open_from(app, from, None, &[])
        .await
        .map_err(|e| e.to_string())?;
    ws.init(json!({ "Authorization": bearer(access) })).await;
    match ws.try_next_json(WAIT).await {
        Some(message) if message["type"] == "connection_ack" => Ok(ws),
        Some(message) => Err(format!("unexpected {message}")),
        None => Err("no acknowledgement".to_owned()),
    }
}

async fn anonymous_sockets_cannot_keep_signed_in_users_out(db: TestDb) {
    let app = db
        .spawn_with(|s| {
            s.serving.websockets.max = 200;
            s.serving.websockets.pending = 20;
            s.serving.websockets.per_address = 10;
        })
        .await;
    let users = [
        app.signed_up("ada").await,
        app.signed_up("bob").await,
        app.signed_up("cyd").await,
    ];
    // 200 sockets from one address that never say who they are.
    let mut anonymous = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        match Ws::open_from(&app, [127, 0, 0, 2], None, &[]).await {
            Ok(ws) => anonymous.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                refused += 1;
            }
            Err(e) => panic!("the upgrade failed otherwise: {e}"),
        }
    }
    assert_eq!((anonymous.len(), refused), (10, 190));
    // A hundred more from ten other addresses: every waiting place is taken, and each
    // newcomer takes the place of the socket that has waited longest.
    for i in 0..100u8 {
        anonymous.push(
            Ws::open_from(&app, [127, 0, 4, 1 + i / 10], None, &[])
                .await
                .expect("a waiting place, taken from the longest waiting"),
        );
    }
    let mut bumped = 0;
    for ws in anonymous.iter_mut().take(80) {
        if ws.close_code(WAIT).await == Some(1013) {
            bumped += 1;
        }
    }
    assert_eq!(bumped, 80, "the 80 longest waiting gave their places up");
    // Sixty signed-in sockets from elsewhere all get in while they wait.
    let mut signed_in = Vec::new();
    for i in 0..60u8 {
        let from = [127, 0, 1, 1 + i / 10];
        let user = &users[usize::from(i) % 3];
        match sign_in_from(&app, from, &user.access).await {
            Ok(ws) => signed_in.push(ws),
            Err(why) => panic!("signed-in socket {i} was kept out: {why}"),
        }
    }
    assert_eq!(signed_in.len(), 60);
}

async fn one_account_cannot_hold_every_socket(db: TestDb) {
    let app = db.spawn_with(|s| s.serving.websockets.per_user = 5).await;
    let ada = app.signed_up("ada").await;
    let bob = app.signed_up("bob").await;
    let mut adas = Vec::new();
    for i in 0..5u8 {
        adas.push(
            sign_in_from(&app, [127, 0, 2, i + 1], &ada.access)
                .await
                .expect("within the account's share"),
        );
    }
    // A sixth is closed with 1013, try again later, however it arrives.
    let mut sixth = Ws::open_from(&app, [127, 0, 2, 9], None, &[])
        .await
        .unwrap();
    sixth
        .init(json!({ "Authorization": bearer(&ada.access) }))
        .await;
    assert_eq!(sixth.closed(WAIT).await, 1013);
    // Others are not affected.
    sign_in_from(&app, [127, 0, 2, 9], &bob.access)
        .await
        .expect("another account gets in");
    // Closing one gives ada's place back.
    drop(adas.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    sign_in_from(&app, [127, 0, 2, 9], &ada.access)
        .await
        .expect("a freed place");
}

async fn long_ids_and_large_messages_end_the_connection(db: TestDb) {
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    // Every message of a subscription repeats its id: at most 128 bytes.
    let mut ws = Ws::signed_in(&app, &ada.access).await;
    ws.subscribe(&"i".repeat(128), POST_CREATED, json!({}))
        .await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    ws.subscribe(&"i".repeat(129), POST_CREATED, json!({}))
        .await;
    assert_eq!(ws.closed(WAIT).await, 4400);
    // A subscription's document and variables, kept while it runs: at most 64 KiB.
    let mut ws = Ws::signed_in(&app, &ada.access).await;
    let padding = " ".repeat(64 * 1024);
    ws.subscribe(
        "big",
        &format!("subscription {{ postCreated {{ id }} }}{padding}"),
        json!({}),
    )
    .await;
    assert!(matches!(
        ws.read(tokio::time::Instant::now() + WAIT).await,
        Some(crate::subscriptions::Incoming::Closed(_))
    ));
}

async fn a_subscriber_that_stops_reading_is_dropped(db: TestDb) {
    let app = db.spawn().await;
    let ada = app.signed_up("ada").await;
    let bob = app.signed_up("bob").await;
    // A small receive buffer, and a subscriber that reads nothing after subscribing.
    let mut ws = Ws::open_from(&app, [127, 0, 3, 1], Some(4096), &[])
        .await
        .unwrap();
    ws.init(json!({ "Authorization": bearer(&ada.access) }))
        .await;
    ws.ack().await;
    ws.subscribe("1", "subscription { postCreated { id body } }", json!({}))
        .await;
    assert_eq!(ws.round_trip().await, Vec::<Value>::new());
    // 200 posts of 40,000 characters: 8 MB, more than the connection can hold.
    let posts = 200;
    let body = "x".repeat(40_000);
    for i in 0..posts {
        app.gql(
            Some(&bob.access),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({ "i": { "title": format!("Post {i}"), "body": body } }),
        )
        .await
        .ok();
    }
    // Past the send timeout (10 s), the server has given up on the subscriber: reading
    // again, it gets what was already on its way, then the end.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut received = 0;
    loop {
        match ws.read(deadline).await {
            Some(crate::subscriptions::Incoming::Json(message)) => {
                if message["type"] == "next" {
                    received += 1;
                }
            }
            Some(crate::subscriptions::Incoming::Closed(_)) => break,
            None => panic!("the socket of a subscriber that stopped reading is still open"),
        }
    }
    assert!(
        received < posts,
        "all {posts} posts arrived: the server waited for the subscriber"
    );
    // Its place is given back: the account may connect again.
    sign_in_from(&app, [127, 0, 3, 2], &ada.access)
        .await
        .expect("a new socket");
}
