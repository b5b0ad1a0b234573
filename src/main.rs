use std::process::ExitCode;

use quire::cli::{Cli, run};

/// mimalloc gives memory back to the system where the platform allocator keeps it:
/// password hashing's 19 MiB blocks, allocated on many threads, otherwise pile up.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = match Cli::load() {
        Ok(cli) => run(cli).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
