//! `dht decode`: one raw KRPC datagram, printed readably or as JSON.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use crate::{Fail, Global};

/// Largest input read: a datagram never exceeds 64 KiB.
const MAX_INPUT: u64 = 65_536;

pub fn run(g: &Global, file: Option<&Path>) -> Result<ExitCode, Fail> {
    let bytes = read_input(file)?;
    let _ = (g, bytes);
    Err(Fail::failed("decode: not available yet"))
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, Fail> {
    let mut bytes = Vec::new();
    let result = match file {
        None => std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut bytes),
        Some(p) if p == Path::new("-") => {
            std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut bytes)
        }
        Some(p) => std::fs::File::open(p)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot read {}: {e}", p.display()))
            }),
    };
    result.map_err(|e| Fail::input(e.to_string()))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Fail::failed(
            "the input is larger than any datagram (64 KiB)",
        ));
    }
    Ok(bytes)
}
