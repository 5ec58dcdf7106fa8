//! `vestibule validate PATH...`: the offline check users run in CI before `kubectl apply`.

use crate::model::{Options, build};
use crate::source::files;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads the manifests, builds the table, and writes one line per parse error or diagnostic
/// to `out`. Returns how many problems were found.
pub fn validate(
    paths: &[PathBuf],
    options: &Options,
    out: &mut impl Write,
) -> std::io::Result<usize> {
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
    for d in &built.diagnostics {
        let file = merged
            .origins
            .get(&d.object)
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("-"));
        writeln!(out, "{}: {d}", file.display())?;
        problems += 1;
    }
    Ok(problems)
}
