//! Events across instances, measured: a writer creates posts on each of several quire
//! instances in turn, while hundreds of WebSocket subscribers spread over all of them
//! receive `postCreated`. Reports how long a post takes to reach the subscribers on the
//! other instances (from the moment its writer got the answer), the share of posts each
//! subscriber received, and how many it received twice. Then, session by session, how
//! long a session ended on one instance goes on being served by another (from the moment
//! the logout was answered to the first refusal).
//!
//! `cargo run --release --example cluster -- <base URL>… [--sockets N] [--seconds S]
//! [--rate R] [--revocations N] [--failed-writes-allowed]`, the instances sharing one PostgreSQL database,
//! with brute-force protection loose enough for the sign-ups (`bench/cluster.sh` starts
//! them so). Says `subscribed` on stderr once every subscriber listens, and prints one
//! JSON object at the end.
//!
//! With `--failed-writes-allowed` (for `.ci/postgres-restart`, which restarts the database
//! during the run), a post that could not be written is counted rather than fatal, and
//! only the posts written are expected.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

const PASSWORD: &str = "correct horse battery staple";
/// Sockets per subscribing account (quire allows 20).
const SOCKETS_PER_USER: usize = 10;

struct Options {
    bases: Vec<String>,
    sockets: usize,
    seconds: u64,
    rate: u32,
    revocations: usize,
    failed_writes_allowed: bool,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        bases: Vec::new(),
        sockets: 300,
        seconds: 15,
        rate: 20,
        revocations: 40,
        failed_writes_allowed: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--sockets" => options.sockets = value().parse().expect("a number of sockets"),
            "--seconds" => options.seconds = value().parse().expect("a number of seconds"),
            "--rate" => options.rate = value().parse().expect("posts per second"),
            "--revocations" => options.revocations = value().parse().expect("a number of sessions"),
            "--failed-writes-allowed" => options.failed_writes_allowed = true,
            base => options.bases.push(base.trim_end_matches('/').to_owned()),
        }
    }
    assert!(options.bases.len() >= 2, "at least two instances");
    options
}

/// The `data` of a GraphQL request, or why there is none.
async fn try_gql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let mut request = client
        .post(format!("{base}/graphql"))
        .timeout(Duration::from_secs(10))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    match body.get("errors") {
        Some(errors) => Err(errors.to_string()),
        None => Ok(body["data"].clone()),
    }
}

async fn gql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    try_gql(client, base, token, query, variables)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// How long, in ms, a session signed in and ended on one instance goes on being served by
/// the next, which knew it to be live: from the logout's answer to the first refusal, each
/// of `rounds` sessions of `name`'s account. `None` for a session still served after 10 s.
async fn revocations(
    client: &reqwest::Client,
    bases: &[String],
    name: &str,
    rounds: usize,
) -> Vec<Option<f64>> {
    let me = "{ me { id } }";
    let mut lags = Vec::new();
    for r in 0..rounds {
        let (here, there) = (&bases[r % bases.len()], &bases[(r + 1) % bases.len()]);
        let data = gql(
            client,
            here,
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": format!("{name}@example.com"), "password": PASSWORD } }),
        )
        .await;
        let token = data["login"]["accessToken"].as_str().expect("a token");
        for _ in 0..3 {
            gql(client, there, Some(token), me, json!({})).await;
        }
        gql(client, here, Some(token), "mutation { logout }", json!({})).await;
        let ended = Instant::now();
        let mut lag = None;
        while ended.elapsed() < Duration::from_secs(10) {
            match try_gql(client, there, Some(token), me, json!({})).await {
                Ok(_) => {}
                Err(e) if e.contains("UNAUTHENTICATED") => {
                    lag = Some(ended.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                Err(e) => panic!("{me}: {e}"),
            }
        }
        lags.push(lag);
    }
    lags
}

async fn sign_up(client: &reqwest::Client, base: &str, name: &str) -> String {
    let data = gql(
        client,
        base,
        None,
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
        json!({ "i": { "email": format!("{name}@example.com"), "username": name, "password": PASSWORD } }),
    )
    .await;
    data["register"]["accessToken"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// What one subscriber received: post ids with the moment each arrived.
type Received = Arc<Mutex<Vec<(String, Instant)>>>;

/// Opens a socket on `base`, subscribes to `postCreated`, and records what arrives until
/// `stop`; returns once the subscription is running.
async fn subscribe(
    base: &str,
    token: &str,
    received: Received,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!("{}/graphql", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a WebSocket request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade is accepted");
    let send = |v: Value| Message::Text(v.to_string().into());
    socket
        .send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })))
        .await
        .unwrap();
    socket
        .send(send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { postCreated { id } }" } })))
        .await
        .unwrap();
    // The pong comes after the subscription has started.
    socket.send(send(json!({ "type": "ping" }))).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("the socket closed before the subscription ran");
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "pong" {
            break;
        }
    }
    tokio::spawn(async move {
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let at = Instant::now();
                        let message: Value = serde_json::from_str(&text).unwrap_or_default();
                        if let Some(id) = message["payload"]["data"]["postCreated"]["id"].as_str() {
                            received.lock().unwrap().push((id.to_owned(), at));
                        }
                    }
                    Some(Ok(Message::Ping(p))) => { let _ = socket.send(Message::Pong(p)).await; }
                    Some(Ok(_)) => {}
                    _ => panic!("a subscriber's socket closed during the run"),
                }
            }
        }
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let options = options();
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let writer = sign_up(&client, &options.bases[0], &format!("w{run}")).await;
    let users = options.sockets.div_ceil(SOCKETS_PER_USER);
    let mut tokens = Vec::new();
    for u in 0..users {
        let base = &options.bases[u % options.bases.len()];
        tokens.push(sign_up(&client, base, &format!("r{run}{u}")).await);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::new();
    for s in 0..options.sockets {
        let instance = s % options.bases.len();
        let received = Received::default();
        subscribe(
            &options.bases[instance],
            &tokens[s / SOCKETS_PER_USER],
            received.clone(),
            stopped.clone(),
        )
        .await;
        subscribers.push((instance, received));
    }
    eprintln!("subscribed");
    // Posts: id → (the instance written on, when its writer got the answer).
    let mut written: HashMap<String, (usize, Instant)> = HashMap::new();
    let every = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
    let mut tick = tokio::time::interval(every);
    let until = Instant::now() + Duration::from_secs(options.seconds);
    let mut n = 0usize;
    let mut failed_writes = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let instance = n % options.bases.len();
        n += 1;
        let written_now = try_gql(
            &client,
            &options.bases[instance],
            Some(&writer),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({ "i": { "title": format!("post {n}"), "body": "measured" } }),
        )
        .await;
        let at = Instant::now();
        let data = match written_now {
            Ok(data) => data,
            Err(e) if options.failed_writes_allowed => {
                failed_writes += 1;
                eprintln!("a write failed: {e}");
                continue;
            }
            Err(e) => panic!("a write failed: {e}"),
        };
        let id = data["createPost"]["id"].as_str().expect("an id").to_owned();
        written.insert(id, (instance, at));
    }
    // Time for the last posts to arrive (and, after an outage, for the catch-up).
    tokio::time::sleep(Duration::from_secs(if options.failed_writes_allowed {
        12
    } else {
        2
    }))
    .await;
    let _ = stop.send(true);

    let mut cross = Vec::new();
    let mut same = Vec::new();
    let (mut delivered, mut duplicates, mut stray) = (0usize, 0usize, 0usize);
    for (instance, received) in &subscribers {
        let received = received.lock().unwrap();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (id, at) in received.iter() {
            let Some((written_on, acked)) = written.get(id) else {
                stray += 1;
                continue;
            };
            let count = seen.entry(id).or_default();
            *count += 1;
            if *count > 1 {
                duplicates += 1;
                continue;
            }
            delivered += 1;
            // Signed: a subscriber may hear of a post before its writer hears the answer.
            let ms = if *at >= *acked {
                at.duration_since(*acked).as_secs_f64() * 1000.0
            } else {
                -(acked.duration_since(*at).as_secs_f64() * 1000.0)
            };
            if written_on == instance {
                same.push(ms)
            } else {
                cross.push(ms)
            }
        }
    }
    cross.sort_by(f64::total_cmp);
    same.sort_by(f64::total_cmp);
    let lags = revocations(
        &client,
        &options.bases,
        &format!("w{run}"),
        options.revocations,
    )
    .await;
    let never = lags.iter().filter(|l| l.is_none()).count();
    let mut lags: Vec<f64> = lags.into_iter().flatten().collect();
    lags.sort_by(f64::total_cmp);
    let expected = written.len() * subscribers.len();
    let summary = json!({
        "instances": options.bases.len(),
        "sockets": subscribers.len(),
        "posts": written.len(),
        "failed_writes": failed_writes,
        "expected_deliveries": expected,
        "delivered": delivered,
        "delivered_share": delivered as f64 / expected.max(1) as f64,
        "duplicates": duplicates,
        "unknown_posts": stray,
        "cross_instance_ms": {
            "p50": percentile(&cross, 50.0),
            "p99": percentile(&cross, 99.0),
            "max": cross.last().copied().unwrap_or(f64::NAN),
        },
        "same_instance_ms": {
            "p50": percentile(&same, 50.0),
            "p99": percentile(&same, 99.0),
            "max": same.last().copied().unwrap_or(f64::NAN),
        },
        "revocations": lags.len() + never,
        "revocations_still_served": never,
        "revocation_ms": {
            "p50": percentile(&lags, 50.0),
            "p99": percentile(&lags, 99.0),
            "max": lags.last().copied().unwrap_or(f64::NAN),
        },
    });
    println!("{summary}");
}
