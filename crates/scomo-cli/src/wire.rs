//! `scomo wire`: convert between XML and WBXML, and inspect messages.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use omadm_wire::model::{Command, Item, SyncMl};
use omadm_wire::{Encoding, Limits};

#[derive(Debug, Subcommand)]
pub(crate) enum WireCommand {
    /// Convert an XML message to WBXML (written to stdout).
    Xml2wbxml {
        /// Input file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Convert a WBXML message to XML (written to stdout).
    Wbxml2xml {
        /// Input file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Print a message (XML or WBXML, detected) as indented XML followed by
    /// one line per command.
    Inspect {
        /// Input file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
}

pub(crate) fn run(cmd: WireCommand) -> Result<()> {
    let limits = Limits::default();
    match cmd {
        WireCommand::Xml2wbxml { file } => {
            let (name, input) = read_input(file.as_ref())?;
            let msg = omadm_wire::decode_xml(&input, &limits)
                .with_context(|| format!("cannot decode {name} as SyncML XML"))?;
            write_stdout(&omadm_wire::encode_wbxml(&msg))
        }
        WireCommand::Wbxml2xml { file } => {
            let (name, input) = read_input(file.as_ref())?;
            let msg = omadm_wire::decode_wbxml(&input, &limits)
                .with_context(|| format!("cannot decode {name} as SyncML WBXML"))?;
            let mut out = omadm_wire::encode_xml(&msg);
            out.push(b'\n');
            write_stdout(&out)
        }
        WireCommand::Inspect { file } => {
            let (name, input) = read_input(file.as_ref())?;
            let encoding = Encoding::sniff(&input).with_context(|| {
                let first = input.first().copied().unwrap_or_default();
                format!("{name} is neither XML nor WBXML (first byte {first:#04x})")
            })?;
            let msg = omadm_wire::decode(&input, encoding, &limits).with_context(|| {
                format!("cannot decode {name} as SyncML {}", encoding_name(encoding))
            })?;
            let mut out = omadm_wire::encode_xml_pretty(&msg);
            out.push_str("\n\n");
            out.push_str(&summary(&msg, encoding, input.len()));
            write_stdout(out.as_bytes())
        }
    }
}

fn read_input(file: Option<&PathBuf>) -> Result<(String, Vec<u8>)> {
    let (name, bytes) = match file {
        Some(p) if p.as_os_str() != "-" => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            (p.display().to_string(), bytes)
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            ("standard input".to_owned(), bytes)
        }
    };
    anyhow::ensure!(!bytes.is_empty(), "{name} is empty");
    Ok((name, bytes))
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write standard output")
}

/// One line for the header, one per command (nested commands indented).
pub(crate) fn summary(msg: &SyncMl, encoding: Encoding, size: usize) -> String {
    let h = &msg.header;
    let mut out = format!(
        "{} message, {size} bytes: session {} msg {} from {} to {}{}\n",
        encoding_name(encoding),
        h.session_id,
        h.msg_id,
        h.source.loc_uri,
        h.target.loc_uri,
        if msg.body.is_final { ", final" } else { "" }
    );
    for c in &msg.body.commands {
        command_line(&mut out, c, 1);
    }
    out
}

fn command_line(out: &mut String, c: &Command, depth: usize) {
    out.push_str(&"  ".repeat(depth));
    out.push_str(&format!("{:>3} {}", c.cmd_id(), c.name()));
    match c {
        Command::Alert(a) => {
            if let Some(code) = a.data {
                out.push_str(&format!(" {code}"));
                if let Some(n) = code.name() {
                    out.push_str(&format!(" ({n})"));
                }
            }
            if let Some(c) = &a.correlator {
                out.push_str(&format!(" correlator={c}"));
            }
            items_line(out, &a.items);
        }
        Command::Status(s) => {
            out.push_str(&format!(
                " {} for {} {}/{}",
                s.data,
                s.cmd,
                s.msg_ref
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.cmd_ref
            ));
            if let Some(n) = s.data.name() {
                out.push_str(&format!(" ({n})"));
            }
            if s.chal.is_some() {
                out.push_str(" +challenge");
            }
        }
        Command::Results(r) => {
            out.push_str(&format!(" for cmd {}", r.cmd_ref));
            items_line(out, &r.items);
        }
        Command::Exec(e) => {
            if let Some(c) = &e.correlator {
                out.push_str(&format!(" correlator={c}"));
            }
            items_line(out, &e.items);
        }
        Command::Add(c)
        | Command::Copy(c)
        | Command::Delete(c)
        | Command::Get(c)
        | Command::Replace(c) => items_line(out, &c.items),
        Command::Atomic(c) | Command::Sequence(c) => {
            out.push('\n');
            for n in &c.commands {
                command_line(out, n, depth + 1);
            }
            return;
        }
    }
    out.push('\n');
}

fn items_line(out: &mut String, items: &[Item]) {
    for i in items {
        let uri = i
            .target
            .as_ref()
            .or(i.source.as_ref())
            .map(|l| l.loc_uri.as_str())
            .unwrap_or("(no uri)");
        out.push_str(&format!(" {uri}"));
        if let Some(d) = &i.data {
            out.push_str(&format!(" [{} bytes]", d.len()));
        }
        if i.more_data {
            out.push_str(" +more");
        }
    }
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Xml => "XML",
        Encoding::Wbxml => "WBXML",
    }
}
