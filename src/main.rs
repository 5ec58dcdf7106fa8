//! The `vestibule` binary: parse flags, start logging, hand over to `app::run`.

use clap::Parser;

// A proxy allocates and frees small buffers all day; mimalloc does that faster than glibc's
// malloc and returns memory to the system more readily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// Hands back to the system memory that a full build or a rescan of the manifest tree freed:
/// mimalloc returns freed pages only when it is next busy, so an idle controller would
/// otherwise hold the peak of its last full build (a fifth more than it needs at 10k apps).
fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; any thread may call it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
use vestibule::config::{Cli, Command};

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and each first touch of one then zeroes 2 MiB: reading a 100k-app tree spent more time in
/// the kernel zeroing pages (8.4 s of system time) than in parsing, against 2.6 s without.
fn no_transparent_huge_pages() {
    // SAFETY: `prctl` with PR_SET_THP_DISABLE reads no memory; it sets a flag of the process.
    let failed = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
    if failed {
        eprintln!(
            "warning: transparent huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate(args)) => {
            let options = args.model.options();
            match vestibule::validate::validate(&args.paths, &options, &mut std::io::stdout()) {
                Ok(found) => {
                    eprintln!("{} errors, {} warnings", found.errors, found.warnings);
                    let failed = found.errors > 0 || (args.strict && found.warnings > 0);
                    ExitCode::from(u8::from(failed))
                }
                Err(e) => {
                    eprintln!("vestibule validate: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => {
            let config = match cli.run.validate() {
                Ok(c) => vestibule::config::Config {
                    release_memory: release_freed_memory,
                    ..c
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let telemetry = vestibule::telemetry::init(
                cli.run.log_format,
                &cli.run.log_level,
                cli.run.otlp_endpoint.as_deref(),
            );
            let _telemetry = match telemetry {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let workers = cli
                .run
                .worker_threads
                .or_else(|| std::thread::available_parallelism().ok())
                .map_or(1, |n| n.get());
            let runtime = if workers == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
            };
            let runtime = match runtime {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let running = runtime.block_on(async {
                let shutdown = vestibule::app::shutdown_signal();
                vestibule::app::run(config, shutdown).await
            });
            match running {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
