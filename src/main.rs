#[tokio::main]
async fn main() -> std::process::ExitCode {
    match catalogd::cli::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("catalogd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
