//! The `redsnap` command line: `serve` runs the standalone server; `backup` takes
//! an RDB file (Redis's dump format, the interchange format) from a running server;
//! `restore`, `inspect` and `verify` work on RDB files, backups and redsnap data
//! directories; `health` asks a running server.

mod backup;
mod client;
mod health;
mod inspect;
mod logging;
mod manifest;
mod restore;
mod serve;
mod verify;

use anyhow::Result;
use clap::{Parser, Subcommand};
use logging::LogSetup;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "redsnap",
    version,
    about = "A Redis-compatible server with real durability, and tools for it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the standalone server.
    ///
    /// Directives are named like redis-server's: `redsnap serve --port 6380
    /// --requirepass secret --dir ./data --save "900 1 300 10"`. A config file in
    /// redis.conf syntax may come first; flags override it. `--import dump.rdb`
    /// fills an empty data directory from a Redis dump before the first start.
    Serve {
        /// An optional config file in redis.conf syntax, then directives as
        /// `--name value [value...]`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "[FILE] --DIRECTIVE VALUE"
        )]
        args: Vec<String>,
    },
    /// Back up a running server (redsnap or Redis) into an RDB file and its
    /// manifest.
    ///
    /// Through the replication handshake (SYNC: one point in time), or, from a
    /// server that refuses SYNC, through SCAN + DUMP + PTTL (not one point in time).
    /// Into a directory, files are named by UTC time and `--keep N` keeps the newest
    /// N; into a file, the manifest is FILE.manifest.json.
    Backup {
        /// `redis://[[user]:password@]host:port` (from the environment, the
        /// password stays out of the process list and the crontab).
        #[arg(long, env = "REDSNAP_BACKUP_FROM", hide_env_values = true)]
        from: String,
        /// A directory (existing, ending in `/`, or with --keep) or a file.
        #[arg(long)]
        to: PathBuf,
        /// Keep the newest N backups of the directory, deleting older ones once
        /// the new one is in place.
        #[arg(long)]
        keep: Option<usize>,
        #[arg(long, value_enum, default_value = "rdb")]
        format: backup::Format,
        /// `sync` (point in time), `scan` (for servers that refuse SYNC), or `auto`:
        /// sync, falling back to scan when SYNC is refused.
        #[arg(long, value_enum, default_value = "auto")]
        method: backup::Method,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore an RDB file into a running server (redsnap or Redis) or a data
    /// directory. The whole file is verified first (and its size and SHA-256
    /// against its manifest, when it has one); nothing is written from a damaged
    /// one.
    Restore {
        /// The RDB file (a Redis dump.rdb or a backup), a backup's manifest, or a
        /// backup directory (its newest backup).
        file: PathBuf,
        /// `redis://[:password@]host:port` (pipelined RESTORE ... ABSTTL), or a
        /// redsnap data directory (written as its snapshot for the next start).
        #[arg(long)]
        to: String,
        /// Overwrite keys that exist in the server, or the data directory's data.
        #[arg(long)]
        replace: bool,
        /// Restore only this database of the file.
        #[arg(long)]
        db: Option<u64>,
        /// Skip (and count) what redsnap does not hold: streams, module values,
        /// function libraries it cannot load.
        #[arg(long)]
        skip_unsupported: bool,
        /// Databases of the data directory (the `databases` directive).
        #[arg(long, default_value_t = 16)]
        databases: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what an RDB file or a data directory holds: keys per db and type, sizes,
    /// biggest keys, TTL spread; for a data directory, its snapshot and log
    /// generations; for a backup directory, its backups.
    Inspect {
        target: PathBuf,
        #[arg(long)]
        json: bool,
        /// Databases of the data directory (the `databases` directive).
        #[arg(long, default_value_t = 16)]
        databases: usize,
    },
    /// Is a server (redsnap or Redis) healthy? Connects, PINGs, reads INFO
    /// persistence and prints what `/health` serves: healthy (answers and accepts
    /// writes), latency, whether writes are refused and why, snapshot and append
    /// log status. Exits 0 when healthy, 1 when not, 2 on a usage error.
    Health {
        /// `redis://[[user]:password@]host:port` (default: $REDIS_URL, else
        /// redis://127.0.0.1:6379).
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        url: String,
        /// Print the JSON document (as `/health`) instead of text.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for the connection and for each reply.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Check every checksum of an RDB file (CRC-64 and structure, and size and
    /// SHA-256 against its manifest), of every backup of a backup directory, or of a
    /// data directory (snapshot entries, log frames). Exits 1 naming what is
    /// damaged.
    Verify {
        target: PathBuf,
        #[arg(long)]
        json: bool,
        /// Databases of the data directory (the `databases` directive).
        #[arg(long, default_value_t = 16)]
        databases: usize,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve { args } => {
            // Logging starts once the configuration is read (logfile, log-format).
            serve::run(args)?;
        }
        Command::Backup {
            from,
            to,
            keep,
            format: backup::Format::Rdb,
            method,
            json,
        } => {
            logging::init(&LogSetup::tool(), false)?;
            let outcome = backup::run(&backup::BackupOpts {
                from,
                to,
                keep,
                method,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome.manifest)?);
            } else {
                backup::print_outcome(&outcome);
            }
        }
        Command::Restore {
            file,
            to,
            replace,
            db,
            skip_unsupported,
            databases,
            json,
        } => {
            // The tools print their own output; the persistence crate's logs only
            // when asked (REDSNAP_LOG).
            logging::init(&LogSetup::tool(), false)?;
            let (resolved, manifest) = manifest::resolve(&file)?;
            if resolved != file {
                eprintln!("restoring {}", resolved.display());
            }
            let file = resolved;
            if let Some(m) = &manifest {
                manifest::check_before_restore(&file, m)?;
            }
            let opts = restore::RestoreOpts {
                replace,
                db,
                skip_unsupported,
            };
            let report = if to.starts_with("redis://") || to.starts_with("rediss://") {
                restore::to_server(&file, &to, &opts)?
            } else {
                let dir = PathBuf::from(&to);
                restore::to_dir(
                    &file,
                    &restore::DirImport {
                        dir: &dir,
                        databases,
                        replace,
                    },
                    &opts,
                )?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                restore::print_report(&report, &to);
            }
        }
        Command::Inspect {
            target,
            json,
            databases,
        } => {
            logging::init(&LogSetup::tool(), false)?;
            inspect::run(&target, json, databases)?;
        }
        Command::Health { url, json, timeout } => {
            logging::init(&LogSetup::tool(), false)?;
            // Usage errors exit 2 (as clap's own), an unhealthy server 1.
            if let Err(e) = client::Target::parse(&url) {
                eprintln!("Error: {e:#}");
                return Ok(ExitCode::from(2));
            }
            if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
                eprintln!("Error: --timeout must be a number of seconds between 0 and 3600");
                return Ok(ExitCode::from(2));
            }
            let healthy = health::run(&url, json, std::time::Duration::from_secs_f64(timeout))?;
            return Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Verify {
            target,
            json,
            databases,
        } => {
            logging::init(&LogSetup::tool(), false)?;
            if !verify::run(&target, json, databases)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Counts allocated bytes for `used_memory` and `maxmemory`.
#[global_allocator]
static GLOBAL: redsnap_server::CountingAlloc = redsnap_server::CountingAlloc;
