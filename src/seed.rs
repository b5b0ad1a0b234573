//! Demo data: `quire seed` fills the database with deterministic, realistic-looking users,
//! posts (some of them drafts) and votes, for GraphiQL users to look at and for benchmarks.
//!
//! The same `--seed` always produces the same rows, ids and times included (times are
//! spread over the year before 2026-01-01). Rows are written with multi-row INSERTs in
//! one transaction.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use uuid::Uuid;

use crate::{
    auth::Passwords,
    db::{Db, posts, posts::PostRow, users, users::Role, users::UserRow, votes},
    error::{AppError, AppResult},
};

/// The password of every seeded account.
pub const PASSWORD: &str = "quire-demo-password";

/// How much to make.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Accounts to create.
    pub users: usize,
    /// Posts to write, spread over the accounts.
    pub posts: usize,
    /// Votes to cast, each by a random account on a random post.
    pub votes: usize,
    /// Makes the data; the same seed makes the same data.
    pub seed: u64,
}

/// What was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Accounts created.
    pub users: usize,
    /// Posts written.
    pub posts: usize,
    /// Of which drafts.
    pub drafts: usize,
    /// Distinct votes cast.
    pub votes: usize,
}

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "clever", "crimson", "curious", "dapper", "eager", "fancy", "gentle",
    "golden", "happy", "honest", "jolly", "keen", "lively", "lucky", "merry", "misty", "nimble",
    "proud", "quiet", "rapid", "rusty", "silent", "sunny", "swift", "tidy", "velvet", "witty",
];
const NOUNS: &[&str] = &[
    "badger", "beacon", "canyon", "cedar", "comet", "falcon", "fern", "harbor", "heron", "island",
    "lantern", "maple", "meadow", "otter", "pebble", "pine", "quill", "raven", "river", "sparrow",
    "summit", "thistle", "tiger", "walrus", "willow", "wren",
];
const TOPICS: &[&str] = &[
    "GraphQL pagination",
    "password hashing",
    "refresh tokens",
    "SQLite in production",
    "PostgreSQL indexes",
    "async Rust",
    "rate limiting",
    "API design",
    "code review",
    "sourdough bread",
    "trail running",
    "film photography",
    "home espresso",
    "container gardening",
    "mechanical keyboards",
    "learning Italian",
    "board games",
    "bird watching",
    "night skies",
    "old maps",
];
const OPENERS: &[&str] = &[
    "Notes on",
    "Thoughts about",
    "A beginner's guide to",
    "What I learned from",
    "Ten small lessons in",
    "Why I changed my mind on",
    "A week of",
    "Revisiting",
];
const SENTENCES: &[&str] = &[
    "It started as a small experiment and grew from there.",
    "The first attempt did not go well, and that was useful.",
    "Most of the difficulty was in the details nobody writes down.",
    "A colleague suggested a simpler approach, which turned out to be right.",
    "Measuring before changing anything saved a lot of time.",
    "There is more than one good answer, depending on what you value.",
    "The documentation covers the basics but skips the interesting parts.",
    "After a month, the routine feels natural.",
    "I would do it again, with fewer shortcuts.",
    "Questions and corrections are welcome.",
];

/// Anchor for generated times, so that they are the same on every run.
fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid()
}

fn pick<'a>(rng: &mut StdRng, words: &[&'a str]) -> &'a str {
    words.choose(rng).copied().unwrap_or_default()
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// Fills the database according to `plan`.
#[tracing::instrument(skip_all, fields(users = plan.users, posts = plan.posts, votes = plan.votes, seed = plan.seed))]
pub async fn seed(db: &Db, passwords: &Passwords, plan: Plan) -> AppResult<Report> {
    if plan.users == 0 && (plan.posts > 0 || plan.votes > 0) {
        return Err(AppError::bad_input(
            "users",
            "posts and votes need at least one user",
        ));
    }
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let password_hash = passwords.hash(PASSWORD).await?;
    let year = Duration::days(365);
    let start = anchor() - year;

    let users: Vec<UserRow> = (0..plan.users)
        .map(|i| {
            // Unique for every (index, seed): nouns end in letters, the index follows the
            // noun and the seed (base 36) comes after the last underscore.
            let adjective = pick(&mut rng, ADJECTIVES);
            let noun = pick(&mut rng, NOUNS);
            let tail = format!("{noun}{i}_{}", base36(plan.seed));
            let username = if adjective.len() + 1 + tail.len() <= 32 {
                format!("{adjective}_{tail}")
            } else {
                tail
            };
            UserRow {
                id: uuid(&mut rng),
                email: format!("{username}@example.com"),
                username,
                password_hash: password_hash.clone(),
                role: Role::User,
                created_at: start + Duration::seconds(rng.gen_range(0..year.num_seconds() / 2)),
                deactivated_at: None,
            }
        })
        .collect();

    let mut drafts = 0;
    let posts: Vec<PostRow> = (0..plan.posts)
        .map(|_| {
            let author = &users[rng.gen_range(0..users.len())];
            let title = format!("{} {}", pick(&mut rng, OPENERS), pick(&mut rng, TOPICS));
            let body = (0..rng.gen_range(3..9))
                .map(|_| pick(&mut rng, SENTENCES))
                .collect::<Vec<_>>()
                .join(" ");
            let published = rng.gen_bool(0.9);
            drafts += usize::from(!published);
            let after = (anchor() - author.created_at)
                .num_microseconds()
                .unwrap_or(1)
                .max(1);
            let created_at = author.created_at + Duration::microseconds(rng.gen_range(0..after));
            PostRow {
                id: uuid(&mut rng),
                author_id: author.id,
                title,
                body,
                published,
                created_at,
                updated_at: created_at,
                vote_count: 0,
            }
        })
        .collect();

    // Votes go to published posts only, as through the API.
    let published: Vec<&PostRow> = posts.iter().filter(|p| p.published).collect();
    let wanted = plan.votes.min(users.len() * published.len());
    let mut cast = HashSet::with_capacity(wanted);
    let mut ballots = Vec::with_capacity(wanted);
    while ballots.len() < wanted {
        let post = published[rng.gen_range(0..published.len())];
        let user = &users[rng.gen_range(0..users.len())];
        if cast.insert((post.id, user.id)) {
            ballots.push((post.id, user.id, post.created_at + Duration::hours(1)));
        }
    }

    let mut tx = db.begin().await?;
    users::insert_many(&mut tx, &users).await.map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            AppError::Conflict {
                field: Some("seed"),
                message: format!(
                    "this database already holds users seeded with --seed {}; use another seed",
                    plan.seed
                ),
            }
        } else {
            e.into()
        }
    })?;
    posts::insert_many(&mut tx, &posts).await?;
    votes::insert_many(&mut tx, &ballots).await?;
    let voted: Vec<uuid::Uuid> = {
        let mut ids: Vec<uuid::Uuid> = ballots.iter().map(|(post, _, _)| *post).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    votes::recount(&mut tx, &voted).await?;
    tx.commit().await?;
    Ok(Report {
        users: users.len(),
        posts: posts.len(),
        drafts,
        votes: ballots.len(),
    })
}
