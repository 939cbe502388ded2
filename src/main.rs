//! `mp3converter`: see the library's documentation for what each part does.

use mp3converter::sandbox::worker;

fn main() -> std::process::ExitCode {
    // The sandboxed FFmpeg worker locks itself down while it is one thread: before any runtime.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|command| command == worker::COMMAND) {
        return worker::main(&args[2..]);
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(mp3converter::cli::main()),
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
