//! Logging for every subcommand: to stderr, or appended to `logfile`; as text or as
//! one JSON object per line (`log-format json`, for log shippers). Colours only on
//! a terminal: a file or a pipe gets plain text, never escape codes.
//!
//! The level: `REDSNAP_LOG` (an `EnvFilter` such as `debug` or
//! `redsnap=debug,fjall=info`) when set; otherwise `loglevel` (serve: at startup and
//! after CONFIG SET) or the tool's default. The storage engine's own chatter (fjall,
//! lsm_tree) is kept at warnings unless the level is debug: the server logs one line
//! per snapshot and per load itself.

use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Where and how to log.
pub struct LogSetup {
    /// A tracing level directive (`info`, `warn`, ...; see [`level_directive`]).
    pub level: String,
    /// `logfile`: empty for stderr.
    pub file: String,
    pub json: bool,
}

impl LogSetup {
    /// A tool's logging: warnings and errors on stderr, as text.
    pub fn tool() -> LogSetup {
        LogSetup {
            level: "warn".into(),
            file: String::new(),
            json: false,
        }
    }
}

/// Redis's `loglevel` names as tracing's levels.
pub fn level_directive(loglevel: &str) -> Result<&'static str, String> {
    Ok(match loglevel {
        "debug" | "verbose" => "debug",
        "notice" => "info",
        "warning" => "warn",
        "nothing" => "off",
        other => return Err(format!("unknown loglevel '{other}'")),
    })
}

/// The filter for a level directive.
fn filter(level: &str) -> EnvFilter {
    if level == "debug" || level == "trace" || level == "off" {
        EnvFilter::new(level)
    } else {
        EnvFilter::new(format!("{level},fjall=warn,lsm_tree=warn"))
    }
}

/// Appends each line to the log file, opening it for every event as Redis does (so
/// that a rotated file is followed: logrotate moves it, the next line creates it).
/// When the file cannot be opened, the line goes to stderr.
#[derive(Clone)]
struct AppendFile(PathBuf);

enum FileOrStderr {
    File(std::fs::File),
    Stderr(std::io::Stderr),
}

impl std::io::Write for FileOrStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            FileOrStderr::File(f) => f.write(buf),
            FileOrStderr::Stderr(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            FileOrStderr::File(f) => f.flush(),
            FileOrStderr::Stderr(s) => s.flush(),
        }
    }
}

fn open_append(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl<'a> MakeWriter<'a> for AppendFile {
    type Writer = FileOrStderr;
    fn make_writer(&'a self) -> FileOrStderr {
        match open_append(&self.0) {
            Ok(f) => FileOrStderr::File(f),
            Err(_) => FileOrStderr::Stderr(std::io::stderr()),
        }
    }
}

type Boxed<S> = Box<dyn Layer<S> + Send + Sync>;

/// The formatting layer: text or JSON, to stderr or the file.
fn fmt_layer<S>(setup: &LogSetup) -> Result<Boxed<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer();
    Ok(match (setup.file.is_empty(), setup.json) {
        (true, false) => layer
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        (true, true) => layer
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        (false, json) => {
            let path = PathBuf::from(&setup.file);
            // As Redis, refuse to start when the log file cannot be opened.
            open_append(&path)
                .with_context(|| format!("can't open the log file {}", path.display()))?;
            let layer = layer.with_ansi(false).with_writer(AppendFile(path));
            if json {
                layer.json().flatten_event(true).boxed()
            } else {
                layer.boxed()
            }
        }
    })
}

/// Installs the subscriber; for `serve`, also the `loglevel` hook (CONFIG SET).
pub fn init(setup: &LogSetup, serve: bool) -> Result<()> {
    if let Ok(env) = EnvFilter::try_from_env("REDSNAP_LOG") {
        let layer = fmt_layer::<Registry>(setup)?.with_filter(env);
        tracing_subscriber::registry().with(layer).init();
        return Ok(());
    }
    let (filter_layer, handle) = reload::Layer::new(filter(&setup.level));
    let layer = fmt_layer(setup)?;
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(layer)
        .init();
    if serve {
        redsnap_server::set_log_level_hook(Box::new(move |level: &str| {
            handle
                .reload(filter(level_directive(level)?))
                .map_err(|e| e.to_string())
        }));
    }
    Ok(())
}
