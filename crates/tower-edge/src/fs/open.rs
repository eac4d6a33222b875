//! The blocking part of serving a file: resolving the path under the root, checking it stays
//! there, choosing a representation, opening or loading it. Runs on tokio's blocking pool.

use std::{
    fs::{self, File, Metadata},
    io::{self, Read},
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use bytes::Bytes;
use http::HeaderValue;

use super::{
    cache::{CachedRep, Entry, HashCache, HotCache, Rep},
    meta::{self, Version},
    negotiate::{Accepted, Encoding},
    path::SafePath,
    serve_dir::{Config, ETagSource},
};

/// What a request path leads to.
pub(super) enum Loaded {
    /// A small file, now in the hot cache.
    Cached(Arc<Entry>),
    /// A file to stream.
    File {
        file: File,
        rep: Rep,
        name: String,
        content_type: HeaderValue,
    },
    /// A directory asked for without its trailing slash.
    Redirect(HeaderValue),
    /// Offload mode: the file exists; these are its path relative to the root and its absolute,
    /// canonical path.
    Offload {
        relative: String,
        absolute: PathBuf,
        name: String,
    },
    NotFound,
}

pub(super) struct Caches<'a> {
    pub(super) hot: &'a HotCache,
    pub(super) hashes: &'a HashCache,
}

/// Resolves and opens what `path` names under the root.
pub(super) fn load(
    config: &Config,
    caches: &Caches<'_>,
    path: &SafePath,
    accepted: Accepted,
    now: SystemTime,
) -> Loaded {
    match try_load(config, caches, path, accepted, now) {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::debug!(path = %path.key, %error, "file not served");
            Loaded::NotFound
        }
    }
}

fn try_load(
    config: &Config,
    caches: &Caches<'_>,
    path: &SafePath,
    accepted: Accepted,
    now: SystemTime,
) -> io::Result<Loaded> {
    let root = config.canonical_root()?;
    let mut full = config.root().to_path_buf();
    full.extend(path.segments());
    // stat before open: opening a FIFO or a device could block or have effects.
    let mut meta = fs::metadata(&full)?;
    let mut relative = path.relative().to_owned();
    if meta.is_dir() {
        if !path.trailing_slash {
            // A relative reference (RFC 3986 §4.2) resolves against the request's own URL,
            // so the redirect is right wherever the service is nested.
            let Some(last) = path.segments().next_back() else {
                return Ok(Loaded::NotFound);
            };
            let location = format!("{}/", super::path::percent_encode(last));
            return Ok(match HeaderValue::try_from(location) {
                Ok(v) if config.redirect_directories => Loaded::Redirect(v),
                _ => Loaded::NotFound,
            });
        }
        let Some((index, index_meta)) = config.index_files.iter().find_map(|name| {
            let candidate = full.join(name);
            let m = fs::metadata(&candidate).ok()?;
            m.is_file().then_some((name.clone(), m))
        }) else {
            return Ok(Loaded::NotFound);
        };
        full.push(&index);
        meta = index_meta;
        if !relative.is_empty() {
            relative.push('/');
        }
        relative.push_str(&index);
    } else if path.trailing_slash {
        return Ok(Loaded::NotFound);
    }
    if !meta.is_file() {
        return Ok(Loaded::NotFound);
    }
    let absolute = inside(&full, root, config.follow_symlinks)?;
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if config.offload.is_some() {
        return Ok(Loaded::Offload {
            relative,
            absolute,
            name,
        });
    }
    let content_type = meta::content_type(&name);

    // Small enough for the hot cache: load every representation into memory.
    if config.cache_capacity > 0
        && meta.len() <= config.cache_max_file_size
        && let Some(entry) = load_entry(config, root, &full, name.clone(), &content_type, now)?
    {
        let entry = Arc::new(entry);
        caches
            .hot
            .insert(&path.key, entry.clone(), config.cache_capacity);
        return Ok(Loaded::Cached(entry));
    }

    // Otherwise open the one representation this client is to get.
    let available: Vec<(Encoding, PathBuf)> = Encoding::ALL
        .into_iter()
        .filter(|&e| config.precompressed(e) && accepted.accepts(e))
        .filter_map(|e| {
            let sibling = sibling(&full, e);
            let m = fs::metadata(&sibling).ok()?;
            (m.is_file() && inside(&sibling, root, config.follow_symlinks).is_ok())
                .then_some((e, sibling))
        })
        .collect();
    let chosen = accepted.choose(available.iter().map(|(e, _)| *e));
    let chosen_path = chosen
        .and_then(|c| available.iter().find(|(e, _)| *e == c))
        .map_or(full.as_path(), |(_, p)| p.as_path());
    let file = File::open(chosen_path)?;
    // The metadata of the file actually opened, whatever happened to the path meanwhile.
    let opened = file.metadata()?;
    if !opened.is_file() {
        return Ok(Loaded::NotFound);
    }
    let rep = representation(config, caches.hashes, &file, &opened, chosen)?;
    Ok(Loaded::File {
        file,
        rep,
        name,
        content_type,
    })
}

/// Re-checks a cached entry against the disk; `Some` (marked checked) when nothing changed.
pub(super) fn revalidate(entry: &Arc<Entry>, now: SystemTime) -> Option<Arc<Entry>> {
    for cached in &entry.reps {
        let m = fs::metadata(&cached.path).ok()?;
        if !m.is_file() || Version::of(&m) != cached.rep.version {
            return None;
        }
    }
    entry.mark_checked(now);
    Some(entry.clone())
}

/// `full`'s canonical path, when it lies under `root` (or when symlinks may lead anywhere).
fn inside(full: &Path, root: &Path, follow_symlinks: bool) -> io::Result<PathBuf> {
    let canonical = fs::canonicalize(full)?;
    if follow_symlinks || canonical.starts_with(root) {
        Ok(canonical)
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "resolves outside the root",
        ))
    }
}

fn sibling(path: &Path, encoding: Encoding) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(encoding.suffix());
    PathBuf::from(s)
}

fn representation(
    config: &Config,
    hashes: &HashCache,
    file: &File,
    meta: &Metadata,
    encoding: Option<Encoding>,
) -> io::Result<Rep> {
    let version = Version::of(meta);
    let etag = match config.etag_source {
        ETagSource::Metadata => version.etag(),
        ETagSource::ContentHash => match hashes.get(&version) {
            Some(tag) => tag,
            None => {
                let tag = meta::content_etag(hash_file(file)?);
                hashes.insert(version, tag.clone());
                tag
            }
        },
    };
    Ok(Rep::new(version, etag, meta::modified(meta), encoding))
}

fn hash_file(mut file: &File) -> io::Result<u128> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.digest128())
}

/// Reads the identity file and its precompressed siblings; `None` when the file changed while
/// being read (it is then streamed instead).
fn load_entry(
    config: &Config,
    root: &Path,
    full: &Path,
    name: String,
    content_type: &HeaderValue,
    now: SystemTime,
) -> io::Result<Option<Entry>> {
    let mut reps = Vec::with_capacity(4);
    let Some(identity) = read_rep(config, full, None)? else {
        return Ok(None);
    };
    reps.push(identity);
    for encoding in Encoding::ALL {
        if !config.precompressed(encoding) {
            continue;
        }
        let path = sibling(full, encoding);
        let Ok(m) = fs::metadata(&path) else { continue };
        if !m.is_file()
            || m.len() > config.cache_max_file_size
            || inside(&path, root, config.follow_symlinks).is_err()
        {
            continue;
        }
        if let Some(rep) = read_rep(config, &path, Some(encoding))? {
            reps.push(rep);
        }
    }
    Ok(Some(Entry::new(name, content_type.clone(), reps, now)))
}

fn read_rep(
    config: &Config,
    path: &Path,
    encoding: Option<Encoding>,
) -> io::Result<Option<CachedRep>> {
    let mut file = File::open(path)?;
    let before = file.metadata()?;
    if !before.is_file() || before.len() > config.cache_max_file_size {
        return Ok(None);
    }
    let version = Version::of(&before);
    let mut buf = Vec::with_capacity(usize::try_from(before.len()).unwrap_or(0));
    // Bounded by the length just checked (plus one byte to notice growth).
    (&mut file).take(before.len() + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 != version.len || Version::of(&file.metadata()?) != version {
        return Ok(None);
    }
    let etag = match config.etag_source {
        ETagSource::Metadata => version.etag(),
        ETagSource::ContentHash => meta::content_etag(xxhash_rust::xxh3::xxh3_128(&buf)),
    };
    Ok(Some(CachedRep {
        rep: Rep::new(version, etag, meta::modified(&before), encoding),
        bytes: Bytes::from(buf),
        path: path.to_path_buf(),
        heads: Default::default(),
    }))
}
