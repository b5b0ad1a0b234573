//! The command line: `serve` (the default), `migrate`, `create-user`, `print-schema`.
//! Every setting can also come from the environment or a `.env` file.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    app::{self, StartError},
    auth::{Auth, register::NewAccount},
    config::{Config, Settings, defaults},
    db::{Db, users::Role},
    error::chain,
    graphql, telemetry,
};

/// quire: a GraphQL API server for user accounts and posts, with authentication done
/// properly.
#[derive(Parser)]
#[command(name = "quire", version, about, long_about = None)]
pub struct Cli {
    /// Settings shared by every command
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// The command to run; serve when none is given
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings shared by every command.
#[derive(Args)]
pub struct SettingsArgs {
    /// Database: sqlite://path/to.db (created when missing) or postgres://user@host/db
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = defaults::DATABASE_URL,
        global = true
    )]
    pub database_url: String,
    /// Address and port to serve on
    #[arg(
        long,
        env = "QUIRE_LISTEN",
        default_value = defaults::LISTEN,
        global = true
    )]
    pub listen: String,
    /// development or production
    #[arg(
        long = "env",
        env = "QUIRE_ENV",
        default_value = defaults::ENVIRONMENT,
        global = true
    )]
    pub environment: String,
    /// Key that signs access tokens, at least 32 bytes; when unset, a random key is
    /// generated on first start and kept in the database
    #[arg(long, env = "QUIRE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of access tokens (e.g. 15m)
    #[arg(
        long,
        env = "QUIRE_ACCESS_TOKEN_TTL",
        default_value = defaults::ACCESS_TOKEN_TTL,
        global = true
    )]
    pub access_token_ttl: String,
    /// Lifetime of a refresh token from its issue; each refresh issues a new one
    #[arg(
        long,
        env = "QUIRE_REFRESH_TOKEN_TTL",
        default_value = defaults::REFRESH_TOKEN_TTL,
        global = true
    )]
    pub refresh_token_ttl: String,
    /// Longest a session can last, however often it is refreshed
    #[arg(
        long,
        env = "QUIRE_SESSION_MAX_AGE",
        default_value = defaults::SESSION_MAX_AGE,
        global = true
    )]
    pub session_max_age: String,
    /// How long a just-used refresh token still returns the same new token, so that
    /// concurrent refreshes do not end the session
    #[arg(
        long,
        env = "QUIRE_REFRESH_REUSE_GRACE",
        default_value = defaults::REFRESH_REUSE_GRACE,
        global = true
    )]
    pub refresh_reuse_grace: String,
    /// How deeply a query's selections may nest
    #[arg(long, env = "QUIRE_MAX_DEPTH", default_value = defaults::MAX_DEPTH, global = true)]
    pub max_depth: String,
    /// The most a query may cost; a connection field costs its `first` times its selection
    #[arg(
        long,
        env = "QUIRE_MAX_COMPLEXITY",
        default_value = defaults::MAX_COMPLEXITY,
        global = true
    )]
    pub max_complexity: String,
    /// The most aliased fields in one operation
    #[arg(long, env = "QUIRE_MAX_ALIASES", default_value = defaults::MAX_ALIASES, global = true)]
    pub max_aliases: String,
    /// The largest request body, e.g. 1MiB, 64KiB or 4096 (bytes)
    #[arg(long, env = "QUIRE_MAX_BODY", default_value = defaults::MAX_BODY, global = true)]
    pub max_body: String,
    /// Serve schema introspection and "did you mean" hints: true or false (default: true in
    /// development, false in production)
    #[arg(long, env = "QUIRE_INTROSPECTION", global = true)]
    pub introspection: Option<String>,
    /// Serve the GraphiQL page on GET /graphql: true or false (default: true in
    /// development, false in production)
    #[arg(long, env = "QUIRE_GRAPHIQL", global = true)]
    pub graphiql: Option<String>,
    /// Log format: text or json (default: text in development, json in production)
    #[arg(long, env = "QUIRE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// The most operations in one batch (a JSON array of requests)
    #[arg(long, env = "QUIRE_MAX_BATCH", default_value = defaults::MAX_BATCH, global = true)]
    pub max_batch: String,
    /// Brute-force protection: on or off
    #[arg(long, env = "QUIRE_RATE_LIMIT", default_value = defaults::RATE_LIMIT, global = true)]
    pub rate_limit: String,
    /// Credential operations (login, register, refresh, …) allowed per minute per client IP
    #[arg(
        long,
        env = "QUIRE_RATE_LIMIT_PER_MINUTE",
        default_value = defaults::RATE_LIMIT_PER_MINUTE,
        global = true
    )]
    pub rate_limit_per_minute: String,
    /// How many of those may come at once
    #[arg(
        long,
        env = "QUIRE_RATE_LIMIT_BURST",
        default_value = defaults::RATE_LIMIT_BURST,
        global = true
    )]
    pub rate_limit_burst: String,
    /// Comma-separated IP addresses of reverse proxies whose X-Forwarded-For is believed
    #[arg(long, env = "QUIRE_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Browser sessions: keep the refresh token in an HttpOnly cookie instead of the payload
    #[arg(
        long,
        env = "QUIRE_REFRESH_COOKIE",
        default_value = "false",
        global = true
    )]
    pub refresh_cookie: String,
    /// Comma-separated web origins allowed to call with credentials, e.g.
    /// https://app.example.com
    #[arg(long, env = "QUIRE_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,
    /// Serve /metrics on this address and port instead of the main one, so that it need
    /// not be public
    #[arg(long, env = "QUIRE_METRICS_LISTEN", default_value = "", global = true)]
    pub metrics_listen: String,
    /// Log filter, e.g. info, debug or quire=debug,info
    #[arg(long, env = "QUIRE_LOG", default_value = defaults::LOG, global = true)]
    pub log: String,
}

impl SettingsArgs {
    fn settings(&self) -> Settings {
        Settings {
            database_url: self.database_url.clone(),
            listen: self.listen.clone(),
            environment: self.environment.clone(),
            jwt_secret: self.jwt_secret.clone(),
            access_token_ttl: self.access_token_ttl.clone(),
            refresh_token_ttl: self.refresh_token_ttl.clone(),
            session_max_age: self.session_max_age.clone(),
            refresh_reuse_grace: self.refresh_reuse_grace.clone(),
            max_depth: self.max_depth.clone(),
            max_complexity: self.max_complexity.clone(),
            max_aliases: self.max_aliases.clone(),
            max_body: self.max_body.clone(),
            max_batch: self.max_batch.clone(),
            introspection: self.introspection.clone(),
            graphiql: self.graphiql.clone(),
            log_format: self.log_format.clone(),
            rate_limit: self.rate_limit.clone(),
            rate_limit_per_minute: self.rate_limit_per_minute.clone(),
            rate_limit_burst: self.rate_limit_burst.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            refresh_cookie: self.refresh_cookie.clone(),
            cors_origins: self.cors_origins.clone(),
            metrics_listen: self.metrics_listen.clone(),
        }
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL over HTTP (the default)
    Serve,
    /// Apply pending database migrations, or revert the most recent one
    Migrate {
        /// Revert the most recently applied migration instead
        #[arg(long)]
        revert: bool,
    },
    /// Create an account, for example the first administrator
    CreateUser {
        /// The account's email address
        #[arg(long)]
        email: String,
        /// The account's username
        #[arg(long)]
        username: String,
        /// The account's role
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// Read the password from the first line of standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print the GraphQL schema (SDL) to standard output
    PrintSchema,
    /// Fill the database with deterministic demo data (users, posts, drafts, votes)
    Seed {
        /// How many users to create
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// How many posts to write, spread over the users
        #[arg(long, default_value_t = 1000)]
        posts: usize,
        /// How many votes to cast
        #[arg(long, default_value_t = 2000)]
        votes: usize,
        /// The same seed always makes the same data
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// A role, as given on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// An ordinary account
    User,
    /// An administrator, who may manage other accounts
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::User => Role::User,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration, database or server could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The command itself failed; holds the message to print.
    #[error("{0}")]
    Failed(String),
}

impl From<crate::error::AppError> for CliError {
    fn from(e: crate::error::AppError) -> Self {
        match e {
            crate::error::AppError::Internal(cause) => Self::Failed(chain(cause.as_ref())),
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Start(e.into())
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::PrintSchema = command {
        print!("{}", graphql::sdl());
        return Ok(());
    }
    let config = Config::from_settings(&cli.settings.settings())?;
    telemetry::init(&cli.settings.log, config.exposure.json_logs)?;
    match command {
        Command::Serve => app::run(config).await?,
        Command::Migrate { revert } => migrate(&config, revert).await?,
        Command::CreateUser {
            email,
            username,
            role,
            password_stdin,
        } => create_user(&config, &email, &username, role.into(), password_stdin).await?,
        Command::Seed {
            users,
            posts,
            votes,
            seed,
        } => {
            let plan = crate::seed::Plan {
                users,
                posts,
                votes,
                seed,
            };
            seed_database(&config, plan).await?
        }
        Command::PrintSchema => unreachable!("handled above"),
    }
    Ok(())
}

async fn migrate(config: &Config, revert: bool) -> Result<(), CliError> {
    let db = Db::connect(&config.database_url)
        .await
        .map_err(StartError::from)?;
    if revert {
        match db
            .revert_last()
            .await
            .map_err(|e| CliError::Failed(chain(&e)))?
        {
            Some((version, description)) => {
                println!("reverted migration {version} ({description})");
            }
            None => println!("no migration to revert"),
        }
    } else {
        db.migrate()
            .await
            .map_err(|e| CliError::Failed(chain(&e)))?;
        println!("database is up to date");
    }
    db.close().await;
    Ok(())
}

async fn create_user(
    config: &Config,
    email: &str,
    username: &str,
    role: Role,
    password_stdin: bool,
) -> Result<(), CliError> {
    let password = read_password(password_stdin)?;
    let app = app::App::start(config).await?;
    let auth: &Auth = &app.auth;
    let user = auth
        .create_user(
            NewAccount {
                email,
                username,
                password: &password,
            },
            role,
        )
        .await?;
    println!(
        "created {} {} <{}> with id {}",
        user.role.as_str(),
        user.username,
        user.email,
        user.id
    );
    app.db.close().await;
    Ok(())
}

async fn seed_database(config: &Config, plan: crate::seed::Plan) -> Result<(), CliError> {
    let app = app::App::start(config).await?;
    let started = std::time::Instant::now();
    let report = crate::seed::seed(&app.db, &app.auth.passwords, plan).await?;
    println!(
        "seeded {} users, {} posts ({} drafts) and {} votes in {:.1}s; every seeded user's \
         password is {}",
        report.users,
        report.posts,
        report.drafts,
        report.votes,
        started.elapsed().as_secs_f64(),
        crate::seed::PASSWORD
    );
    app.db.close().await;
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Failed(format!("cannot read the password from stdin: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Failed(
            "no terminal to ask for the password on; pass --password-stdin and pipe it in"
                .to_owned(),
        ));
    }
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| CliError::Failed(format!("cannot read the password: {e}")))?;
    let again = rpassword::prompt_password("Repeat password: ")
        .map_err(|e| CliError::Failed(format!("cannot read the password: {e}")))?;
    if first != again {
        return Err(CliError::Failed("the passwords do not match".to_owned()));
    }
    Ok(first)
}
