//! File mode (`--manifests DIR`) and `vestibule validate`: Kubernetes YAML or JSON read from
//! files, watched for changes. A file that stops parsing keeps serving its last good objects.

use crate::model::{Diagnostic, Object, ObjectRef, Snapshot};
use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest manifest file read; Kubernetes itself stores no object over 1.5 MiB.
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// The largest document (one object, or one `kind: List`) within a file.
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;
/// The deepest nesting accepted. The YAML parser's time grows with the square of the depth,
/// and no Kubernetes object nests beyond a few dozen levels.
pub const MAX_DEPTH: usize = 100;

/// A document that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub reason: String,
}

impl ParseError {
    /// The error as a diagnostic of the file (kind `File`), for `/debug/routes` and metrics.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic {
            object: ObjectRef {
                kind: "File",
                namespace: String::new(),
                name: self.file.display().to_string(),
            },
            field: self
                .line
                .map_or_else(|| "-".to_owned(), |l| format!("line {l}")),
            reason: self.reason.clone(),
            severity: crate::model::Severity::Error,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// The objects of one file, or why some of its documents could not be read.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub objects: Vec<Object>,
    pub errors: Vec<ParseError>,
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// What each kind may be written as (the Gateway API's v1beta1 has the same schema as v1).
const KINDS: &[(&str, &[&str])] = &[
    ("Ingress", &["networking.k8s.io/v1"]),
    ("IngressClass", &["networking.k8s.io/v1"]),
    ("Service", &["v1"]),
    ("EndpointSlice", &["discovery.k8s.io/v1"]),
    ("Secret", &["v1"]),
    ("ConfigMap", &["v1"]),
    ("Namespace", &["v1"]),
    ("GatewayClass", GATEWAY_API),
    ("Gateway", GATEWAY_API),
    ("HTTPRoute", GATEWAY_API),
    ("ReferenceGrant", GATEWAY_API),
];

const GATEWAY_API: &[&str] = &[
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];

/// Parses the text of one manifest file: multi-document YAML (JSON is YAML too), including
/// `kind: List`. Documents of other kinds are skipped; namespaced objects without a namespace
/// land in `default`, as `kubectl apply` would put them. Objects come out trimmed
/// ([`super::trim`]).
pub fn parse(file: &Path, text: &str) -> ParsedFile {
    let mut parsed = ParsedFile::default();
    if text.len() > MAX_FILE_BYTES {
        parsed.errors.push(ParseError {
            file: file.to_owned(),
            line: None,
            reason: format!("larger than {} MiB; not read", MAX_FILE_BYTES >> 20),
        });
        return parsed;
    }
    for (first_line, doc) in documents(text) {
        let error = |line: Option<usize>, reason: String| ParseError {
            file: file.to_owned(),
            line: line.map(|l| l + first_line + 1),
            reason,
        };
        if doc.trim().is_empty()
            || doc
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        if doc.len() > MAX_DOCUMENT_BYTES {
            let reason = format!(
                "document larger than {} MiB; not read",
                MAX_DOCUMENT_BYTES >> 20
            );
            parsed.errors.push(error(Some(0), reason));
            continue;
        }
        // JSON (what generators write) is read by a JSON parser, several times faster. It
        // needs no look at the nesting first: it stops at 128 levels in what it reads and
        // skips what it ignores without recursing, and a document it cannot read as one
        // object goes on to the YAML reader (and that look) below.
        if let Some(read) = json_document(doc) {
            match read {
                Ok(Some(o)) => parsed.objects.push(o),
                Ok(None) => {}
                Err((line, reason)) => parsed.errors.push(error(line.or(Some(0)), reason)),
            }
            continue;
        }
        if let Some(line) = too_deep(doc, MAX_DEPTH) {
            let reason = format!("nesting deeper than {MAX_DEPTH}; not read");
            parsed.errors.push(error(Some(line), reason));
            continue;
        }
        let meta: TypeMeta = match serde_yaml_ng::from_str(doc) {
            Ok(m) => m,
            Err(e) => {
                let line = e.location().map(|l| l.line() - 1);
                parsed.errors.push(error(line, e.to_string()));
                continue;
            }
        };
        if meta.kind == "List" {
            match serde_yaml_ng::from_str::<ListDoc>(doc) {
                Ok(list) => {
                    for item in list.items {
                        match from_value(item) {
                            Ok(Some(o)) => parsed.objects.push(o),
                            Ok(None) => {}
                            Err(reason) => parsed.errors.push(error(Some(0), reason)),
                        }
                    }
                }
                Err(e) => parsed
                    .errors
                    .push(error(e.location().map(|l| l.line() - 1), e.to_string())),
            }
            continue;
        }
        match typed(&meta, doc) {
            Ok(Some(o)) => parsed.objects.push(o),
            Ok(None) => {
                tracing::debug!(file = %file.display(), kind = %meta.kind, "skipping a kind Vestibule does not read")
            }
            Err((line, reason)) => parsed.errors.push(error(line.or(Some(0)), reason)),
        }
    }
    for object in &mut parsed.objects {
        let namespaced = object.is_namespaced();
        let meta = object.metadata_mut();
        if namespaced && meta.namespace.as_deref().unwrap_or("").is_empty() {
            meta.namespace = Some("default".to_owned());
        }
        super::trim::object(object);
    }
    parsed
}

/// `$read::<T>($doc)` for the type `T` of kind `$kind` (`Ok(None)` for a kind not read).
macro_rules! by_kind {
    ($kind:expr, $read:ident, $doc:expr) => {
        match $kind {
            "Ingress" => $read::<Ingress>($doc),
            "IngressClass" => $read::<IngressClass>($doc),
            "Service" => $read::<Service>($doc),
            "EndpointSlice" => $read::<EndpointSlice>($doc),
            "Secret" => $read::<Secret>($doc),
            "ConfigMap" => $read::<ConfigMap>($doc),
            "Namespace" => $read::<Namespace>($doc),
            "GatewayClass" => $read::<GatewayClass>($doc),
            "Gateway" => $read::<Gateway>($doc),
            "HTTPRoute" => $read::<HttpRoute>($doc),
            "ReferenceGrant" => $read::<ReferenceGrant>($doc),
            _ => Ok(None),
        }
    };
}

/// A document's object (`None`: a kind not read), or the line and reason it failed.
type Typed = Result<Option<Object>, (Option<usize>, String)>;

/// A document that is one JSON object (not a `List`), read as JSON; `None` for anything else.
fn json_document(doc: &str) -> Option<Typed> {
    if !doc.trim_start().starts_with('{') {
        return None;
    }
    let meta: TypeMeta = serde_json::from_str(doc).ok()?;
    if meta.kind == "List" {
        return None;
    }
    if let Err(e) = check_api_version(&meta) {
        return Some(Err((None, e)));
    }
    fn read<T: DeserializeOwned + Into<Object>>(
        doc: &str,
    ) -> Result<Option<Object>, (Option<usize>, String)> {
        serde_json::from_str::<T>(doc)
            .map(|o| Some(o.into()))
            .map_err(|e| (Some(e.line().saturating_sub(1)), e.to_string()))
    }
    Some(by_kind!(meta.kind.as_str(), read, doc))
}

#[derive(Deserialize)]
struct ListDoc {
    #[serde(default)]
    items: Vec<serde_yaml_ng::Value>,
}

fn check_api_version(meta: &TypeMeta) -> Result<bool, String> {
    match KINDS.iter().find(|(kind, _)| *kind == meta.kind) {
        None => Ok(false),
        Some((_, apis)) if apis.contains(&meta.api_version.as_str()) => Ok(true),
        Some((kind, apis)) => Err(format!(
            "{kind} {} is not supported; write it as apiVersion: {}",
            if meta.api_version.is_empty() {
                "without apiVersion"
            } else {
                &meta.api_version
            },
            apis.join(" or ")
        )),
    }
}

fn typed(meta: &TypeMeta, doc: &str) -> Result<Option<Object>, (Option<usize>, String)> {
    if !check_api_version(meta).map_err(|e| (None, e))? {
        return Ok(None);
    }
    fn read<T: DeserializeOwned + Into<Object>>(
        doc: &str,
    ) -> Result<Option<Object>, (Option<usize>, String)> {
        serde_yaml_ng::from_str::<T>(doc)
            .map(|o| Some(o.into()))
            .map_err(|e| (e.location().map(|l| l.line() - 1), e.to_string()))
    }
    by_kind!(meta.kind.as_str(), read, doc)
}

/// An item of a `kind: List`, read like a document of its own.
fn from_value(value: serde_yaml_ng::Value) -> Result<Option<Object>, String> {
    let text = serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())?;
    let meta: TypeMeta = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    typed(&meta, &text).map_err(|(_, reason)| reason)
}

/// The 0-based line of `doc` where its nesting first exceeds `limit`, if it does. An estimate
/// that never undercounts: block levels by indentation, `- ` entries that open a sequence on
/// the same line, and flow brackets, skipping comments, quoted strings and block scalars.
fn too_deep(doc: &str, limit: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // Inside a block scalar (`|`, `>`), lines indented deeper than this are text.
    let mut scalar_parent: Option<usize> = None;
    for (n, line) in doc.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(parent) = scalar_parent {
            if content.is_empty() || indent > parent {
                continue;
            }
            scalar_parent = None;
        }
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if flow == 0 {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut rest = content;
        let mut dashes = 0;
        while flow == 0 && (rest.starts_with("- ") || rest == "-") {
            dashes += 1;
            rest = rest[1..].trim_start_matches(' ');
        }
        let mut deepest = flow;
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in rest.chars() {
            match (quote, c) {
                (Some('"'), '\\') if prev != '\\' => {}
                (Some(q), c) if c == q && !(q == '"' && prev == '\\') => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev == ' ' => break,
                (None, '"' | '\'') if matches!(prev, ' ' | '[' | '{' | ',' | ':') => {
                    quote = Some(c)
                }
                (None, '[' | '{') => {
                    flow += 1;
                    deepest = deepest.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
        }
        if indents.len() + dashes + deepest > limit {
            return Some(n);
        }
        let trimmed = rest.trim_end();
        let opens_scalar = trimmed.rsplit([' ', ':']).next().is_some_and(|t| {
            t.starts_with(['|', '>']) && t[1..].chars().all(|c| matches!(c, '-' | '+' | '0'..='9'))
        });
        if flow == 0
            && opens_scalar
            && (trimmed.contains(": ") || trimmed.starts_with(['|', '>']) || dashes > 0)
        {
            scalar_parent = Some(indent + 2 * dashes);
        }
    }
    None
}

/// Splits YAML text at `---` document markers, with the 0-based line each document starts at.
/// Only a marker at column 0 counts, so PEM blocks (`-----BEGIN`) and indented text are safe.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = n + 1;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs
}

/// Whether a path names a manifest file by its extension.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every manifest file under `root` (or `root` itself if it is a file), sorted. Names starting
/// with `.` are skipped: Kubernetes ConfigMap mounts keep their real files in `..data` and
/// timestamped directories, and link them from the top level.
pub fn manifest_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root)?;
    if meta.is_file() {
        return Ok(vec![root.to_owned()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // The directory entry's own type costs no system call; only links are followed
            // (ConfigMap files are symlinks into `..data`).
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => std::fs::metadata(&path).map(|m| m.file_type()),
                other => other,
            };
            match kind {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && is_manifest(&path) => out.push(path),
                _ => {}
            }
        }
    }
    // "Path order" is byte order here, in `merged` and in the owners of an object (which
    // copy of a duplicate wins): comparing 100k paths component by component is slow.
    out.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(out)
}

/// The manifest directory as last read: per file, the objects it contributes. A file that
/// stops parsing keeps contributing its last good objects, and so does one that turned empty
/// a moment ago (an editor that truncates before it writes).
#[derive(Debug, Default)]
pub struct ManifestDir {
    // Hashed, not ordered: a 100k-file tree compares paths component by component, slowly;
    // where order matters ([`ManifestDir::merged`], owners) it is sorted there. Each path is
    // allocated once and shared by the maps below.
    files: FxHashMap<Arc<Path>, Vec<Object>>,
    /// The files that define each object, in path order: the first one's copy is used, the
    /// others are duplicates.
    owners: rustc_hash::FxHashMap<ObjectRef, Vec<Arc<Path>>>,
    /// The objects more than one file defines.
    defined_again: BTreeSet<ObjectRef>,
    /// What each file looked like when read (length, modification time, inode): a file that
    /// looks the same is not read again.
    stamps: FxHashMap<Arc<Path>, Stamp>,
    /// Files that hold EndpointSlices and nothing else: a change to them alone can be
    /// published without a rebuild, so the reload loop need not wait for quiet.
    slice_only: Arc<std::sync::Mutex<FxHashSet<Arc<Path>>>>,
    /// How long a file must have been seen empty before its objects go.
    settle: Duration,
    /// Files that had objects and were last read empty: since when, and their modification
    /// time then (a write in between, even one that empties it again, starts the wait anew).
    empty_since: BTreeMap<PathBuf, (Instant, Option<std::time::SystemTime>)>,
}

/// A file's length, modification time and inode.
type Stamp = (u64, Option<std::time::SystemTime>, u64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    (meta.len(), meta.modified().ok(), meta.ino())
}

/// What the watcher saw since the last reload: files to read again, or everything.
#[derive(Debug, Default)]
pub struct Changed {
    pub paths: BTreeSet<PathBuf>,
    /// Something the paths do not name (a directory, a symlink swap, a lost event): list
    /// the whole tree again (files that look unchanged are still not read).
    pub rescan: bool,
    /// When the first of these changes was seen.
    pub since: Option<Instant>,
}

/// The watcher's findings, shared with its callback.
pub type ChangeLog = std::sync::Arc<std::sync::Mutex<Changed>>;

/// The outcome of one [`ManifestDir::reload`].
#[derive(Debug, Default)]
pub struct Reload {
    /// Objects whose kind changed in this reload (added, changed or removed), and the
    /// EndpointSlices among them by (namespace, name) with their Services.
    pub kinds: BTreeSet<&'static str>,
    pub slices: Vec<(String, String)>,
    pub services: Vec<(String, String)>,
    /// Every object added, changed or removed in some file (the copy in use may be the same:
    /// see [`ManifestDir::current`]), sorted, once each.
    pub changed: Vec<ObjectRef>,
    pub errors: Vec<ParseError>,
    /// Files whose last good objects are kept because the current text does not parse.
    pub kept_last_good: Vec<PathBuf>,
    /// Read again after this long, even without a change: a file turned empty too recently
    /// to tell a deliberate emptying from a write in progress.
    pub look_again: Option<Duration>,
}

/// Objects of several files as one snapshot.
#[derive(Debug, Default)]
pub struct Merged {
    pub snapshot: Snapshot,
    /// Which file each object came from, for messages that point at the file.
    pub origins: BTreeMap<ObjectRef, PathBuf>,
    /// An object that a later file (in path order) defines again; that copy is ignored.
    pub duplicates: Vec<ParseError>,
}

/// Merges files' objects; the first file (in the order given) that defines an object wins.
pub fn merge<'a>(files: impl IntoIterator<Item = (&'a Path, &'a [Object])>) -> Merged {
    let mut merged = Merged::default();
    for (path, objects) in files {
        for o in objects {
            let key = o.object_ref();
            if let Some(first) = merged.origins.get(&key) {
                merged.duplicates.push(ParseError {
                    file: path.to_owned(),
                    line: None,
                    reason: format!(
                        "{key} is already defined in {}; this copy is ignored",
                        first.display()
                    ),
                });
                continue;
            }
            merged.origins.insert(key, path.to_owned());
            merged.snapshot.push(o.clone());
        }
    }
    merged.snapshot = std::mem::take(&mut merged.snapshot).sorted();
    merged
}

impl ManifestDir {
    /// A directory whose files count as emptied only after `settle` without a change.
    pub fn settling_for(settle: Duration) -> Self {
        ManifestDir {
            files: FxHashMap::default(),
            owners: Default::default(),
            defined_again: BTreeSet::new(),
            stamps: FxHashMap::default(),
            slice_only: Default::default(),
            settle,
            empty_since: BTreeMap::new(),
        }
    }

    /// Reads every manifest under `root` again (files that look unchanged are kept as read).
    /// A file with errors keeps its previous objects if it had any; at first sight it
    /// contributes the documents that did parse.
    pub fn reload(&mut self, root: &Path) -> std::io::Result<Reload> {
        self.reload_changed(
            root,
            Changed {
                rescan: true,
                ..Changed::default()
            },
        )
    }

    /// Reads again the files `changed` names (and those waiting to settle), or with
    /// `rescan` every file under `root` that does not look as it did.
    pub fn reload_changed(&mut self, root: &Path, changed: Changed) -> std::io::Result<Reload> {
        let mut outcome = Reload::default();
        let mut next = std::mem::take(&mut self.files);
        let candidates: Vec<PathBuf> = match changed.rescan {
            true => {
                let listed = manifest_files(root)?;
                let keep: FxHashSet<&Path> = listed.iter().map(PathBuf::as_path).collect();
                let gone: Vec<Arc<Path>> = next
                    .keys()
                    .filter(|p| !keep.contains(p.as_ref()))
                    .cloned()
                    .collect();
                for path in gone {
                    self.forget(&path, &mut next, &mut outcome);
                }
                // The first read fills these maps: make room once, not by doubling.
                let more = listed.len().saturating_sub(next.len());
                next.reserve(more);
                self.stamps.reserve(more);
                self.owners.reserve(more);
                listed
            }
            false => changed
                .paths
                .into_iter()
                .chain(self.empty_since.keys().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        // What each file looked like when last read, taken now: the files are looked at on
        // other threads while this one takes in what they found.
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .map(|path| Candidate {
                known: self.stamps.get(path.as_path()).copied(),
                settling: self.empty_since.contains_key(&path),
                path,
            })
            .collect();
        prepare(candidates, |path, prepared| {
            self.take_in(path, prepared, &mut next, &mut outcome)
        });
        // In path order, as if the files had been read one after the other.
        outcome
            .errors
            .sort_by(|a, b| a.file.as_os_str().cmp(b.file.as_os_str()));
        outcome.kept_last_good.sort();
        self.empty_since
            .retain(|p, _| next.contains_key(p.as_path()));
        self.files = next;
        for list in [&mut outcome.slices, &mut outcome.services] {
            list.sort();
            list.dedup();
        }
        // Sorted once here rather than kept in order by each of 300k insertions.
        outcome.changed.sort_unstable();
        outcome.changed.dedup();
        Ok(outcome)
    }

    /// Whether every file of `changed` holds EndpointSlices alone (as last read).
    pub fn slice_files_only(
        slice_only: &std::sync::Mutex<FxHashSet<Arc<Path>>>,
        changed: &Changed,
    ) -> bool {
        let Ok(only) = slice_only.lock() else {
            return false;
        };
        !changed.rescan
            && !changed.paths.is_empty()
            && changed.paths.iter().all(|p| only.contains(p.as_path()))
    }

    /// The set [`ManifestDir::slice_files_only`] reads, kept up to date by each reload.
    pub fn slice_only_files(&self) -> Arc<std::sync::Mutex<FxHashSet<Arc<Path>>>> {
        self.slice_only.clone()
    }

    /// A file that is gone: its objects go with it.
    fn forget(
        &mut self,
        path: &Path,
        files: &mut FxHashMap<Arc<Path>, Vec<Object>>,
        outcome: &mut Reload,
    ) {
        if let Some((path, old)) = files.remove_entry(path) {
            note_changes(&old, &[], outcome);
            self.own(&path, &old, &[]);
        }
        if let Ok(mut set) = self.slice_only.lock() {
            set.remove(path);
        }
        self.stamps.remove(path);
        self.empty_since.remove(path);
    }

    /// Reads one file: its new objects, or keep the old ones (it does not parse, or it
    /// turned empty too recently), or it vanished.
    fn read_one(
        &mut self,
        path: &Path,
        old: Option<&[Object]>,
        text: std::io::Result<(String, Option<ParsedFile>)>,
        outcome: &mut Reload,
    ) -> Read {
        let (text, parsed) = match text {
            Ok(t) => t,
            // Vanished between listing and reading (an atomic replace in progress): the
            // next event brings it back.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Vanished,
            Err(e) => {
                outcome.errors.push(ParseError {
                    file: path.to_owned(),
                    line: None,
                    reason: e.to_string(),
                });
                return Read::Keep;
            }
        };
        if text.trim().is_empty()
            && old.is_some_and(|old| !old.is_empty())
            && let Some(wait) = self.unsettled(path)
        {
            outcome.look_again = Some(outcome.look_again.map_or(wait, |w| w.min(wait)));
            return Read::Keep;
        }
        self.empty_since.remove(path);
        let parsed = parsed.unwrap_or_else(|| parse(path, &text));
        if parsed.errors.is_empty() {
            return Read::New(parsed.objects);
        }
        outcome.errors.extend(parsed.errors);
        match old {
            Some(_) => {
                outcome.kept_last_good.push(path.to_owned());
                Read::Keep
            }
            None => Read::New(parsed.objects),
        }
    }

    /// Takes in what looking at one candidate found: its objects, or that it is gone or
    /// unchanged.
    fn take_in(
        &mut self,
        path: PathBuf,
        prepared: Prepared,
        next: &mut FxHashMap<Arc<Path>, Vec<Object>>,
        outcome: &mut Reload,
    ) {
        let (stamp, text) = match prepared {
            Prepared::Gone => return self.forget(&path, next, outcome),
            Prepared::Unchanged => return,
            Prepared::Read(stamp, text) => (stamp, text),
        };
        let (path, old) = match next.remove_entry(path.as_path()) {
            Some((known, old)) => (known, Some(old)),
            None => (Arc::from(path), None),
        };
        let kept = match self.read_one(&path, old.as_deref(), text, outcome) {
            Read::New(mut objects) => {
                objects.shrink_to_fit();
                self.stamps.insert(path.clone(), stamp);
                let only = !objects.is_empty()
                    && objects
                        .iter()
                        .all(|o| matches!(o, Object::EndpointSlice(_)));
                if let Ok(mut set) = self.slice_only.lock() {
                    match only {
                        true => set.insert(path.clone()),
                        false => set.remove(path.as_ref()),
                    };
                }
                note_changes(old.as_deref().unwrap_or_default(), &objects, outcome);
                self.own(&path, old.as_deref().unwrap_or_default(), &objects);
                objects
            }
            Read::Keep => old.unwrap_or_default(),
            Read::Vanished => {
                if let Some(old) = old {
                    note_changes(&old, &[], outcome);
                    self.own(&path, &old, &[]);
                }
                self.stamps.remove(path.as_ref());
                return;
            }
        };
        next.insert(path, kept);
    }

    /// How much longer `path`, read empty now, must stay empty before that counts, if at all.
    /// Judged by when this reader first saw it empty, not by its mtime: a writer descheduled
    /// between its truncate and its write leaves an old mtime on an empty file. But a file
    /// rewritten in place again and again can be caught empty twice a while apart: a changed
    /// mtime between the two says it did not stay empty, and the wait starts again.
    fn unsettled(&mut self, path: &Path) -> Option<Duration> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let entry = self
            .empty_since
            .entry(path.to_owned())
            .or_insert((Instant::now(), modified));
        if entry.1 != modified {
            *entry = (Instant::now(), modified);
        }
        let waited = entry.0.elapsed();
        // A little more than what is left, so the next look finds it settled.
        (waited < self.settle).then(|| self.settle - waited + Duration::from_millis(10))
    }

    /// Notes which objects `path` defines now that it defined `before` and defines `after`.
    fn own(&mut self, path: &Arc<Path>, before: &[Object], after: &[Object]) {
        let refs = |list: &[Object]| -> BTreeSet<ObjectRef> {
            list.iter().map(Object::object_ref).collect()
        };
        // A file read for the first time (every file of the first read) owns all it holds.
        if before.is_empty() {
            for o in after {
                self.add_owner(o.object_ref(), path);
            }
            return;
        }
        let (was, is) = (refs(before), refs(after));
        for r in was.difference(&is) {
            if let Some(list) = self.owners.get_mut(r) {
                list.retain(|p| p != path);
                if list.len() < 2 {
                    self.defined_again.remove(r);
                }
                if list.is_empty() {
                    self.owners.remove(r);
                }
            }
        }
        for r in is.difference(&was) {
            self.add_owner(r.clone(), path);
        }
    }

    /// Notes that `path` defines `r`.
    fn add_owner(&mut self, r: ObjectRef, path: &Arc<Path>) {
        // Most objects have one file: room for one.
        let list = self
            .owners
            .entry(r.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        if let Err(i) = list.binary_search_by(|p| p.as_os_str().cmp(path.as_os_str())) {
            list.insert(i, path.clone());
        }
        if list.len() > 1 {
            self.defined_again.insert(r);
        }
    }

    /// The copy of an object in use: the first file's (in path order) that defines it.
    pub fn current(&self, r: &ObjectRef) -> Option<Object> {
        let path = self.owners.get(r)?.first()?;
        let objects = self.files.get(path.as_ref())?;
        objects.iter().find(|o| o.is(r)).cloned()
    }

    /// The file whose copy of an object is in use.
    pub fn origin(&self, r: &ObjectRef) -> Option<&Path> {
        self.owners.get(r)?.first().map(|p| p.as_ref())
    }

    /// Every copy of an object after the first, as [`merge`] reports it.
    pub fn duplicates(&self) -> Vec<ParseError> {
        let mut out = Vec::new();
        for r in &self.defined_again {
            let Some(list) = self.owners.get(r) else {
                continue;
            };
            for path in list.iter().skip(1) {
                out.push(ParseError {
                    file: path.to_path_buf(),
                    line: None,
                    reason: format!(
                        "{r} is already defined in {}; this copy is ignored",
                        list[0].display()
                    ),
                });
            }
        }
        out
    }

    /// Everything read, as one snapshot, first file first where two define the same object.
    pub fn merged(&self) -> Merged {
        let mut files: Vec<(&Arc<Path>, &Vec<Object>)> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
        merge(files.into_iter().map(|(p, o)| (p.as_ref(), o.as_slice())))
    }
}

/// A file to look at, with what it looked like when last read.
struct Candidate {
    path: PathBuf,
    known: Option<Stamp>,
    /// It was read empty a moment ago: read it again even if it looks the same.
    settling: bool,
}

/// Each candidate's fate, handed to `take_in` in no particular order: gone (or no
/// manifest), unchanged (it looks as it did when read), or read and, unless empty, parsed.
/// Many files (the first read of a large tree) are looked at on several threads while this
/// one takes in what they found; a few on this one.
fn prepare(candidates: Vec<Candidate>, mut take_in: impl FnMut(PathBuf, Prepared)) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if candidates.len() < 64 || threads < 2 {
        for c in candidates {
            let found = look_at(&c);
            take_in(c.path, found);
        }
        return;
    }
    // Handed out a batch at a time, so that no thread idles while another has many left.
    const BATCH: usize = 64;
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let candidates = &candidates;
    let taken = &taken;
    // Bounded: a slow taker holds the lookers back rather than texts piling up.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(PathBuf, Prepared)>>(threads * 4);
    std::thread::scope(|scope| {
        let lookers: Vec<_> = (0..threads)
            .map(|_| {
                let tx = tx.clone();
                scope.spawn(move || {
                    loop {
                        let from = taken.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        let Some(rest) = candidates.get(from..).filter(|r| !r.is_empty()) else {
                            return;
                        };
                        let batch = &rest[..rest.len().min(BATCH)];
                        let found = batch.iter().map(|c| (c.path.clone(), look_at(c))).collect();
                        if tx.send(found).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for batch in rx {
            for (path, found) in batch {
                take_in(path, found);
            }
        }
        for looker in lookers {
            // A looker that panicked leaves its batch unread; the next rescan reads it.
            let _ = looker.join();
        }
    });
}

/// What one candidate looks like now, and its text and objects if it changed.
fn look_at(c: &Candidate) -> Prepared {
    let path = &c.path;
    // A file not read before is opened at once and looked at through its handle: one path
    // lookup, not two (a third of reading 300k small files). One read before is looked at
    // first, as most are unchanged when the tree is listed again.
    let (meta, file) = match c.known {
        Some(_) => (std::fs::metadata(path), None),
        None => match open_nonblocking(path) {
            Ok(f) => (f.metadata(), Some(f)),
            // Looked at by path, so that a file it cannot open is reported by the read.
            Err(_) => (std::fs::metadata(path), None),
        },
    };
    let meta = match meta {
        Ok(m) if m.is_file() && is_manifest(path) => m,
        _ => return Prepared::Gone,
    };
    let stamp = stamp(&meta);
    if c.known == Some(stamp) && !c.settling {
        return Prepared::Unchanged;
    }
    let text = read_text(file, path, meta.len()).map(|t| {
        let parsed = (!t.trim().is_empty()).then(|| parse(path, &t));
        (t, parsed)
    });
    Prepared::Read(stamp, text)
}

/// The text of `path`, read through `file` if it is open already; `len` is what its
/// metadata said (a guess at the room needed: the file may be growing).
fn read_text(file: Option<std::fs::File>, path: &Path, len: u64) -> std::io::Result<String> {
    use std::io::Read;
    let Some(mut file) = file else {
        return std::fs::read_to_string(path);
    };
    let room = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .min(MAX_FILE_BYTES);
    let mut text = String::new();
    text.try_reserve_exact(room + 1)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Opens `path` for reading without waiting: a FIFO swapped in for a manifest does not
/// block the open (and is then no file, so it is not read).
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// A candidate file, looked at (on any thread) before its objects are taken in.
enum Prepared {
    Gone,
    Unchanged,
    /// Its stamp, and its text with the parse (none for an empty text).
    Read(Stamp, std::io::Result<(String, Option<ParsedFile>)>),
}

/// What reading one file gave.
enum Read {
    New(Vec<Object>),
    Keep,
    Vanished,
}

/// Notes in `outcome` what differs between a file's objects before and after.
fn note_changes(before: &[Object], after: &[Object], outcome: &mut Reload) {
    // A file read for the first time (every file of the first read) adds all it holds.
    if before.is_empty() {
        for o in after {
            note_change(o, outcome);
        }
        return;
    }
    let index = |list: &[Object]| -> BTreeMap<ObjectRef, usize> {
        list.iter()
            .enumerate()
            .map(|(i, o)| (o.object_ref(), i))
            .collect()
    };
    let (was, is) = (index(before), index(after));
    let same = |o: &Object, other: &[Object], keys: &BTreeMap<ObjectRef, usize>| {
        keys.get(&o.object_ref())
            .is_some_and(|&i| objects_equal(o, &other[i]))
    };
    let removed = before.iter().filter(|o| !same(o, after, &is));
    let added = after.iter().filter(|o| !same(o, before, &was));
    for o in removed.chain(added) {
        note_change(o, outcome);
    }
}

/// Notes that `o` was added, changed or removed.
fn note_change(o: &Object, outcome: &mut Reload) {
    let r = o.object_ref();
    outcome.kinds.insert(r.kind);
    outcome.changed.push(r);
    if let Object::EndpointSlice(s) = o {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let key = (ns.clone(), s.metadata.name.clone().unwrap_or_default());
        // Duplicates go at the end of the reload (a first read notes 100k slices).
        outcome.slices.push(key);
        if let Some(service) = &s.service {
            let key = (ns, service.clone());
            outcome.services.push(key);
        }
    }
}

fn objects_equal(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Ingress(x), Object::Ingress(y)) => x == y,
        (Object::IngressClass(x), Object::IngressClass(y)) => x == y,
        (Object::Service(x), Object::Service(y)) => x == y,
        (Object::EndpointSlice(x), Object::EndpointSlice(y)) => x == y,
        (Object::Secret(x), Object::Secret(y)) => x == y,
        (Object::ConfigMap(x), Object::ConfigMap(y)) => x == y,
        (Object::Namespace(x), Object::Namespace(y)) => x == y,
        (Object::GatewayClass(x), Object::GatewayClass(y)) => x == y,
        (Object::Gateway(x), Object::Gateway(y)) => x == y,
        (Object::HttpRoute(x), Object::HttpRoute(y)) => x == y,
        (Object::ReferenceGrant(x), Object::ReferenceGrant(y)) => x == y,
        _ => false,
    }
}

/// What a path in a file event means for the tree.
enum Seen {
    /// A manifest file: read it (alone).
    Manifest,
    /// A file that is no manifest, or a hidden one (an editor's or `write_atomic`'s
    /// temporary): nothing.
    Nothing,
    /// A directory or a link (a ConfigMap's `..data` swap), or something gone that may have
    /// been one: what the tree holds may have changed.
    Tree,
}

fn event_path(root: &Path, path: &Path) -> Seen {
    let hidden = path
        .strip_prefix(root)
        .unwrap_or(path)
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    let kind = std::fs::symlink_metadata(path).map(|m| m.file_type());
    match kind {
        Ok(t) if t.is_file() && !hidden && is_manifest(path) => Seen::Manifest,
        Ok(t) if t.is_file() => Seen::Nothing,
        // Gone: a manifest's removal is read as such; a hidden file's is nothing.
        Err(_) if !hidden && is_manifest(path) => Seen::Manifest,
        Err(_) if hidden => Seen::Nothing,
        _ => Seen::Tree,
    }
}

/// Watches `root` for changes. The receiver yields once per burst of file events; call
/// [`ManifestDir::reload_changed`] after it with what the log collected. The directory is watched (not each file), so atomic
/// renames and ConfigMap `..data` symlink swaps are seen. Keep the watcher alive.
///
/// Start it after the first read of the tree: inotify reports every open, so a watch over
/// the first read of 300k files queues 300k events (and overflows the queue) on the cores
/// doing the reading. What changed while the tree was read is found by the rescan the
/// receiver yields first.
#[allow(clippy::type_complexity)]
pub fn watch(
    root: &Path,
) -> notify::Result<(
    notify::RecommendedWatcher,
    tokio::sync::mpsc::Receiver<()>,
    ChangeLog,
)> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let log = ChangeLog::default();
    let noted = log.clone();
    let base = root.to_owned();
    let first_wake = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let note = |e: Option<&notify::Event>| {
            let Ok(mut c) = noted.lock() else { return };
            c.since.get_or_insert_with(Instant::now);
            match e {
                Some(e) if !e.need_rescan() => {
                    for p in &e.paths {
                        match event_path(&base, p) {
                            Seen::Manifest => {
                                c.paths.insert(p.clone());
                            }
                            Seen::Nothing => {}
                            Seen::Tree => c.rescan = true,
                        }
                    }
                }
                _ => c.rescan = true,
            }
        };
        match event {
            // Reading a file (ours included) changes nothing.
            Ok(e) if e.kind.is_access() => {}
            // A full channel already holds a wake-up: this change will be seen by that reload.
            Ok(e) => {
                note(Some(&e));
                let _ = tx.try_send(());
            }
            Err(e) => {
                note(None);
                let _ = tx.try_send(());
                tracing::warn!(error = %e, "file watch error; the tree is listed again")
            }
        }
    })?;
    let (target, mode) = if root.is_dir() {
        (root.to_owned(), notify::RecursiveMode::Recursive)
    } else {
        let parent = root
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (parent.to_owned(), notify::RecursiveMode::NonRecursive)
    };
    watcher.watch(&target, mode)?;
    if let Ok(mut c) = log.lock() {
        c.since.get_or_insert_with(Instant::now);
        c.rescan = true;
    }
    let _ = first_wake.try_send(());
    Ok((watcher, rx, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watch starts after the first read, so its first wake must be a rescan: else a
    /// change made while the tree was read would wait for the next event to be seen.
    #[test]
    fn a_new_watch_wakes_once_at_once_to_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let (_watcher, mut rx, log) = watch(dir.path()).unwrap();
        assert_eq!(rx.try_recv(), Ok(()));
        let changed = std::mem::take(&mut *log.lock().unwrap());
        assert!(changed.rescan && changed.since.is_some());
        assert!(rx.try_recv().is_err(), "one wake, not more");
    }

    #[test]
    fn multi_document_yaml_with_lines_and_defaults() {
        let text = "\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80}]
---
# a comment-only document is skipped
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: skipped}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {proxy-body-size: 8m}
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: prod}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    --- not a marker
    -----END CERTIFICATE-----
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: broken
spec:
  rules: 12
";
        let parsed = parse(Path::new("m.yaml"), text);
        let refs: Vec<String> = parsed
            .objects
            .iter()
            .map(|o| o.object_ref().to_string())
            .collect();
        assert_eq!(
            refs,
            [
                "Service default/web",
                "ConfigMap default/settings",
                "Secret prod/cert"
            ]
        );
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert_eq!(parsed.errors[0].line, Some(33), "{}", parsed.errors[0]);
        assert!(parsed.errors[0].to_string().starts_with("m.yaml:33: "));
    }

    #[test]
    fn wrong_api_version_is_an_error_naming_the_right_one() {
        let parsed = parse(
            Path::new("old.yaml"),
            "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: x}\n",
        );
        assert!(parsed.objects.is_empty());
        assert!(
            parsed.errors[0].reason.contains("networking.k8s.io/v1"),
            "{}",
            parsed.errors[0]
        );
    }

    #[test]
    fn json_and_lists() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"x"}},
            {"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"c"},"spec":{"controller":"vestibule.dev/ingress-controller"}}
        ]}"#;
        let parsed = parse(Path::new("l.json"), json);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let refs: Vec<String> = parsed
            .objects
            .iter()
            .map(|o| o.object_ref().to_string())
            .collect();
        assert_eq!(refs, ["Service x/a", "IngressClass c"]);
    }

    #[test]
    fn a_json_document_is_read_as_json_with_the_line_of_its_error() {
        let good = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":80}]}}"#;
        let parsed = parse(Path::new("s.json"), good);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(
            parsed.objects[0].object_ref().to_string(),
            "Service default/a"
        );
        let bad = "{\"apiVersion\": \"v1\", \"kind\": \"Service\",\n \"metadata\": {\"name\": \"a\"},\n \"spec\": {\"ports\": \"eighty\"}}";
        let parsed = parse(Path::new("s.json"), bad);
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert_eq!(parsed.errors[0].line, Some(3), "{:?}", parsed.errors);
        // A wrong apiVersion is named as in YAML.
        let old = r#"{"apiVersion":"extensions/v1beta1","kind":"Ingress","metadata":{"name":"a"}}"#;
        let parsed = parse(Path::new("i.json"), old);
        assert!(
            parsed.errors[0].reason.contains("networking.k8s.io/v1"),
            "{:?}",
            parsed.errors
        );
        // YAML's flow style looks like JSON at first sight and is still read.
        let flow = "{apiVersion: v1, kind: Service, metadata: {name: b}}";
        let parsed = parse(Path::new("s.yaml"), flow);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects.len(), 1);
    }

    #[test]
    fn a_file_emptied_a_moment_ago_keeps_its_objects_until_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
        )
        .unwrap();
        let mut manifests = ManifestDir::settling_for(Duration::from_millis(300));
        manifests.reload(dir.path()).unwrap();
        // Truncated, as an editor saving in place does before it writes.
        std::fs::write(&file, "").unwrap();
        let outcome = manifests.reload(dir.path()).unwrap();
        assert_eq!(
            manifests.merged().snapshot.services.len(),
            1,
            "kept while unsettled"
        );
        let again = outcome.look_again.expect("asks to look again");
        assert!(
            again > Duration::from_millis(250) && again <= Duration::from_millis(320),
            "{again:?}"
        );
        // Written again in time: nothing was lost, and the clock starts afresh next time.
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n",
        )
        .unwrap();
        manifests.reload(dir.path()).unwrap();
        assert_eq!(
            manifests.merged().snapshot.services[0]
                .metadata
                .name
                .as_deref(),
            Some("b")
        );
        std::fs::write(&file, "  \n").unwrap();
        assert!(manifests.reload(dir.path()).unwrap().look_again.is_some());
        std::thread::sleep(Duration::from_millis(150));
        manifests.reload(dir.path()).unwrap();
        assert_eq!(
            manifests.merged().snapshot.services.len(),
            1,
            "150 ms is not 300"
        );
        // Still empty once it has been seen empty for the settle time: it is meant.
        std::thread::sleep(Duration::from_millis(200));
        let outcome = manifests.reload(dir.path()).unwrap();
        assert!(outcome.look_again.is_none());
        assert_eq!(manifests.merged().snapshot.services.len(), 0);
    }

    #[test]
    fn a_file_rewritten_in_place_between_two_empty_reads_keeps_its_objects() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.yaml");
        let service = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n";
        std::fs::write(&file, service).unwrap();
        let mut manifests = ManifestDir::settling_for(Duration::from_millis(100));
        manifests.reload(dir.path()).unwrap();
        std::fs::write(&file, "").unwrap();
        manifests.reload(dir.path()).unwrap();
        // Written and truncated again while no reload looked: empty at both reads, yet not
        // empty all along (its mtime moved), so the wait starts again.
        std::thread::sleep(Duration::from_millis(120));
        std::fs::write(&file, service).unwrap();
        std::fs::write(&file, "").unwrap();
        let outcome = manifests.reload(dir.path()).unwrap();
        assert_eq!(manifests.merged().snapshot.services.len(), 1, "kept");
        assert!(outcome.look_again.is_some());
    }

    #[test]
    fn deeply_nested_json_is_refused_with_an_error() {
        let deep = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"d\"}},\"spec\":{}{}}}",
            "[".repeat(40_000),
            "]".repeat(40_000)
        );
        let parsed = parse(Path::new("deep.json"), &deep);
        assert!(parsed.objects.is_empty());
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        // In a field Vestibule does not read, the nesting is skipped, not recursed into.
        let ignored = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"d\"}},\"x\":{}{}}}",
            "[".repeat(40_000),
            "]".repeat(40_000)
        );
        let parsed = parse(Path::new("ignored.json"), &ignored);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects.len(), 1);
    }

    /// Past 64 files the tree is read on several threads: every file is still taken in,
    /// and problems come out in path order as if read one by one.
    #[test]
    fn a_large_tree_read_on_several_threads_misses_nothing_and_keeps_path_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..300 {
            let text = match n % 3 {
                0 => format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{n}}}\n"),
                1 => format!(
                    "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"j{n}\"}}}}"
                ),
                _ => "apiVersion: v1\nkind: Service\nmetadata: [oops\n".to_owned(),
            };
            let ext = if n % 3 == 1 { "json" } else { "yaml" };
            std::fs::write(dir.path().join(format!("f{n:03}.{ext}")), text).unwrap();
        }
        let mut manifests = ManifestDir::default();
        let outcome = manifests.reload(dir.path()).unwrap();
        assert_eq!(manifests.merged().snapshot.services.len(), 200);
        assert_eq!(outcome.changed.len(), 200);
        assert_eq!(outcome.errors.len(), 100);
        let files: Vec<&PathBuf> = outcome.errors.iter().map(|e| &e.file).collect();
        let mut sorted = files.clone();
        sorted.sort();
        assert_eq!(files, sorted);
    }

    /// A FIFO given a manifest's name is not waited on (no writer would ever come).
    #[test]
    fn a_fifo_named_like_a_manifest_does_not_block_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let root = dir.path().to_owned();
        std::thread::spawn(move || {
            let mut manifests = ManifestDir::default();
            let changed = Changed {
                paths: BTreeSet::from([fifo]),
                ..Changed::default()
            };
            let outcome = manifests.reload_changed(&root, changed).unwrap();
            let _ = tx.send(manifests.merged().snapshot.services.len() + outcome.errors.len());
        });
        let found = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(found, Ok(0), "the read waited on the FIFO");
    }

    #[test]
    fn broken_file_keeps_last_good_objects() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let mut manifests = ManifestDir::default();
        assert!(manifests.reload(dir.path()).unwrap().errors.is_empty());
        assert_eq!(manifests.merged().snapshot.services.len(), 1);
        std::fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: [oops\n").unwrap();
        let outcome = manifests.reload(dir.path()).unwrap();
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.kept_last_good, std::slice::from_ref(&file));
        assert_eq!(manifests.merged().snapshot.services.len(), 1);
        std::fs::remove_file(&file).unwrap();
        manifests.reload(dir.path()).unwrap();
        assert_eq!(manifests.merged().snapshot.services.len(), 0);
    }
}
