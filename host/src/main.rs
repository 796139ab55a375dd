//! The `promax` command line.

use std::process::ExitCode;

/// Counts allocations so that `promax bench` can report peak memory as measured.
#[global_allocator]
static ALLOC: promax::alloc::Counting = promax::alloc::Counting;

fn main() -> ExitCode {
    // `promax plugins | head` ends quietly, as other command-line tools do, instead of a
    // panic of println! on the closed pipe: the default SIGPIPE action, which Rust's
    // runtime replaces by "ignore".
    // SAFETY: called first, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = promax::cli::main(std::env::args_os());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
