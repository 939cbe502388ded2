//! `mp3converter`: see the library's documentation for what each part does.

use mp3converter::sandbox::zygote;

fn main() -> std::process::ExitCode {
    // The FFmpeg zygote forks workers, which must be single-threaded: before any runtime.
    if std::env::args_os().nth(1).is_some_and(|command| command == zygote::COMMAND) {
        return zygote::main();
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(mp3converter::cli::main()),
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
