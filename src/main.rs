//! `mp3converter`: see the library's documentation for what each part does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mp3converter::cli::main().await
}
