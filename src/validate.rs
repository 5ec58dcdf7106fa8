//! `vestibule validate PATH...`: the offline check users run in CI before `kubectl apply`.

use crate::model::{Options, build};
use crate::source::files;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many problems of each kind `validate` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub errors: usize,
    pub warnings: usize,
}

/// Reads the manifests, builds the table, and writes one line per parse error or error
/// diagnostic to `out`, then one line per warning (`file: warning: …`): ignored annotations
/// and snippets, which make the output a migration report for exported Ingresses.
pub fn validate(
    paths: &[PathBuf],
    options: &Options,
    out: &mut impl Write,
) -> std::io::Result<Found> {
    let mut read: Vec<(PathBuf, Vec<crate::model::Object>)> = Vec::new();
    let mut problems = 0;
    for root in paths {
        let files = match files::manifest_files(root) {
            Ok(f) => f,
            Err(e) => {
                writeln!(out, "{}: {e}", root.display())?;
                problems += 1;
                continue;
            }
        };
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    writeln!(out, "{}: {e}", file.display())?;
                    problems += 1;
                    continue;
                }
            };
            let parsed = files::parse(&file, &text);
            for e in &parsed.errors {
                writeln!(out, "{e}")?;
                problems += 1;
            }
            read.push((file, parsed.objects));
        }
    }
    let merged = files::merge(read.iter().map(|(p, o)| (p.as_path(), o.as_slice())));
    for e in &merged.duplicates {
        writeln!(out, "{e}")?;
        problems += 1;
    }
    let built = build(&merged.snapshot, options);
    let file_of = |d: &crate::model::Diagnostic| {
        merged
            .origins
            .get(&d.object)
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("-"))
            .display()
            .to_string()
    };
    let (warnings, errors): (Vec<_>, Vec<_>) =
        built.diagnostics.iter().partition(|d| d.is_warning());
    for d in &errors {
        writeln!(out, "{}: {d}", file_of(d))?;
    }
    for d in &warnings {
        writeln!(out, "{}: warning: {d}", file_of(d))?;
    }
    Ok(Found {
        errors: problems + errors.len(),
        warnings: warnings.len(),
    })
}
