//! Connections held open to starve the server: half-sent requests, responses never read,
//! and one address opening connection after connection. Each is cut off, and everyone
//! else is still served.
//!
//! Clients bind to other loopback addresses (127.0.0.2, 127.0.0.3, …) to stand for
//! different machines.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::Instant,
};

use crate::helpers::{TestApp, TestDb};

crate::on_both_databases!(
    a_request_whose_headers_never_finish_is_cut_off,
    a_client_that_stops_reading_is_cut_off,
    one_address_cannot_take_every_connection,
    the_connection_bound_holds_others_in_the_queue,
);

fn address(app: &TestApp) -> SocketAddr {
    app.base
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// A connection to `app` from the loopback address `from`, with a small receive buffer
/// when `receive_buffer` is given.
async fn connect_from(app: &TestApp, from: [u8; 4], receive_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("a loopback address to connect from");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket
        .connect(address(app))
        .await
        .expect("the server accepts")
}

/// Whether the server closes `stream` within `within`, reading (and dropping) whatever
/// it sends meanwhile; how many bytes came first.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

/// `GET /healthz` from the loopback address `from`.
async fn healthy_from(app: &TestApp, from: [u8; 4]) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("the health check is answered")
        .status()
        .as_u16()
}

async fn a_request_whose_headers_never_finish_is_cut_off(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.connections.header_timeout = std::time::Duration::from_secs(1))
        .await;
    let mut stream = connect_from(&app, [127, 0, 0, 1], None).await;
    // A slow client: a header line now and then, never the blank line that ends them.
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: quire\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The server may already have hung up; then this write fails, as it should.
        let _ = stream
            .write_all(format!("X-Slow-{i}: yes\r\n").as_bytes())
            .await;
    }
    let answered = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        answered.is_some(),
        "the connection was still open {:?} after it started",
        started.elapsed()
    );
    // An idle connection that never sends a byte goes the same way.
    let mut silent = connect_from(&app, [127, 0, 0, 1], None).await;
    assert_eq!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        Some(0)
    );
    // Everyone else is served as ever.
    assert_eq!(healthy_from(&app, [127, 0, 0, 1]).await, 200);
}

async fn a_client_that_stops_reading_is_cut_off(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.connections.idle_timeout = std::time::Duration::from_secs(1))
        .await;
    let t = app.signed_up("ada").await;
    // A response of a few hundred kilobytes, asked for many times over on one connection
    // (pipelined) by a client that then reads nothing: the server's writes stall.
    let body = serde_json::json!({
        "query": "{ __schema { types { name description fields { name description type { name } } } } }"
    })
    .to_string();
    let one = app
        .gql(
            Some(&t.access),
            "{ __schema { types { name description fields { name description type { name } } } } }",
            serde_json::json!({}),
        )
        .await
        .ok();
    let size = one.body.to_string().len();
    let requests = 200;
    let mut stream = connect_from(&app, [127, 0, 0, 4], Some(4096)).await;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: quire\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.repeat(requests).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Reading again, the client gets what was already on its way, then the end: the
    // server gave up on it rather than wait for ever.
    let received = closed_within(&mut stream, Duration::from_secs(10))
        .await
        .expect("the server closed the connection of a client that stopped reading");
    assert!(
        received < requests * size,
        "all {requests} responses arrived ({received} bytes): the server waited for the reader"
    );
    assert_eq!(healthy_from(&app, [127, 0, 0, 1]).await, 200);
}

async fn one_address_cannot_take_every_connection(db: TestDb) {
    let app = db
        .spawn_with(|s| s.serving.connections.per_address = 20)
        .await;
    // 200 half-sent requests from one address.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut stream = connect_from(&app, [127, 0, 0, 2], None).await;
        let _ = stream.write_all(b"POST /graphql HTTP/1.1\r\n").await;
        held.push(stream);
    }
    // All but twenty are closed at once.
    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(200))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 180, "of 200 connections from one address");
    // Another address is served meanwhile.
    assert_eq!(healthy_from(&app, [127, 0, 0, 3]).await, 200);
    // And the crowded address gets a place back as its connections close.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(healthy_from(&app, [127, 0, 0, 2]).await, 200);
}

async fn the_connection_bound_holds_others_in_the_queue(db: TestDb) {
    let app = db.spawn_with(|s| s.serving.connections.max = 5).await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(connect_from(&app, [127, 0, 0, 10 + i], None).await);
    }
    // A sixth is queued, not served, while five are open.
    let waiting = tokio::spawn(healthy_from_slowly(address(&app)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a sixth connection was served");
    // One closing lets it in.
    drop(held.pop());
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a place was free")
        .unwrap();
    assert_eq!(status, 200);
}

/// `GET /healthz` over a fresh connection, waiting as long as it takes.
async fn healthy_from_slowly(address: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: quire\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
