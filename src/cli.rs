//! The command line: `serve` (the default), `migrate`, `create-user`, `print-schema`.
//! Every setting can also come from the environment or a `.env` file.

use std::io::{BufRead, IsTerminal};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::{
    app::{self, StartError},
    auth::{Auth, register::NewAccount},
    config::{self, Common, Config, Serving, Settings},
    db::{Db, users::Role},
    error::chain,
    graphql, telemetry,
};

/// quire: a GraphQL API server for user accounts and posts, with authentication done
/// properly.
#[derive(Parser)]
#[command(name = "quire", version, about, long_about = None)]
pub struct Cli {
    /// Settings every command reads
    #[command(flatten)]
    pub common: Common,
    /// The server's settings
    #[command(flatten)]
    pub serving: Serving,
    /// The command to run; serve when none is given
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Reads the command line, the environment and the defaults. A bad value is reported
    /// as one line naming its setting; help, version and usage errors end the process as
    /// clap does.
    ///
    /// Every command reads the server's settings, so that a bad value stops it before it
    /// touches the database, and takes their flags before or after its name; only `serve`
    /// (and `quire` alone) lists them in its help.
    pub fn load() -> Result<Self, CliError> {
        let serving: Vec<clap::Arg> = Serving::augment_args(clap::Command::new("quire"))
            .get_arguments()
            .map(|arg| arg.clone().global(true))
            .collect();
        let serving_ids: Vec<&str> = serving.iter().map(|a| a.get_id().as_str()).collect();
        // A global argument reaches every command; one a command already has (here a
        // hidden copy) is not added again.
        let cmd = Self::command()
            .mut_args(|arg| match serving_ids.contains(&arg.get_id().as_str()) {
                true => arg.global(true),
                false => arg,
            })
            .mut_subcommands(|sub| match sub.get_name() {
                "serve" => sub,
                _ => sub.args(serving.iter().map(|arg| arg.clone().hide(true))),
            });
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let given: Vec<String> = args
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // Errors name a setting by its variable, which settling may have taken off.
        let named = cmd.clone();
        let matches = config::settle_env(cmd, &given)
            .try_get_matches_from(&args)
            .map_err(|e| match config::explain(&named, &e) {
                Some(bad) => CliError::from(bad),
                None => e.exit(),
            })?;
        Self::from_arg_matches(&matches).map_err(|e| e.exit())
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
    let common = cli.common;
    telemetry::init(&common.log, common.json_logs())
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let config = Config::new(Settings {
        common,
        serving: cli.serving,
    })?;
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
    let db = Db::connect(&config.database_url, config.pool_size)
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
