//! The `redsnap` command line: `serve` runs the standalone server.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use redsnap_server::{Config, Server};
use std::path::PathBuf;

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
    /// redis.conf syntax may come first; flags override it.
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
}

/// Splits `--name v1 v2 --other v` into directives (values run to the next `--name`).
fn parse_directives(args: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for a in args {
        if let Some(name) = a.strip_prefix("--").filter(|n| {
            !n.is_empty()
                && !n.starts_with('-')
                && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        }) {
            out.push((name.to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(a.clone());
        } else {
            bail!("unexpected argument '{a}': directives are given as --name value (e.g. --port 6380)");
        }
    }
    Ok(out)
}

fn build_config(file: Option<PathBuf>, directives: &[String]) -> Result<Config> {
    let mut config = Config::default();
    let mut rest = directives.to_vec();
    let mut file = file;
    // `redsnap serve --port 1` puts --port into `file` position when no file is given.
    if let Some(f) = &file {
        if f.to_string_lossy().starts_with("--") {
            rest.insert(0, f.to_string_lossy().into_owned());
            file = None;
        }
    }
    if let Some(f) = &file {
        config.load_file(f)?;
    }
    for (name, values) in parse_directives(&rest)? {
        let values = if values.is_empty() {
            vec![String::new()]
        } else {
            values
        };
        config
            .set(&name, &values)
            .map_err(|e| anyhow::anyhow!("--{name}: {e}"))?;
    }
    Ok(config)
}

/// Logs to stderr. `REDSNAP_LOG` (an `EnvFilter` such as `debug` or
/// `redsnap=debug,fjall=warn`) wins when set; otherwise the level follows the
/// `loglevel` directive, at startup and after CONFIG SET.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("REDSNAP_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    redsnap_server::set_log_level_hook(Box::new(move |level: &str| {
        let directive = match level {
            "debug" | "verbose" => "debug",
            "notice" => "info",
            "warning" => "warn",
            "nothing" => "off",
            other => return Err(format!("unknown loglevel '{other}'")),
        };
        handle
            .reload(tracing_subscriber::EnvFilter::new(directive))
            .map_err(|e| e.to_string())
    }));
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve { args } => {
            let (file, directives) = match args.split_first() {
                Some((f, rest)) if !f.starts_with("--") => (Some(PathBuf::from(f)), rest.to_vec()),
                _ => (None, args.clone()),
            };
            let config = build_config(file, &directives)?;
            // `io-threads` runtime workers run connections (parsing, replies, socket
            // I/O); commands themselves run one at a time under the server lock.
            let workers = config.u64("io-threads").clamp(1, 128) as usize;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async {
                let server = Server::bind(config).await?;
                for a in server.local_addrs() {
                    tracing::info!("Ready to accept connections on {a}");
                }
                server.run().await?;
                Ok::<(), anyhow::Error>(())
            })?;
            // Connection tasks may still be running; leave without waiting for them.
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_split() {
        let args: Vec<String> = ["--port", "7000", "--save", "900", "1", "--requirepass", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let d = parse_directives(&args).unwrap();
        assert_eq!(
            d[1],
            ("save".to_string(), vec!["900".to_string(), "1".to_string()])
        );
        let c = build_config(None, &args).unwrap();
        assert_eq!(c.int("port"), 7000);
        assert_eq!(c.save_points(), vec![(900, 1)]);
        assert!(build_config(None, &["--nonsense".to_string(), "1".to_string()]).is_err());
        assert!(parse_directives(&["x".to_string()]).is_err());
    }
}

/// Counts allocated bytes for `used_memory` and `maxmemory`.
#[global_allocator]
static GLOBAL: redsnap_server::CountingAlloc = redsnap_server::CountingAlloc;
