//! The ELF closure of a program, found the way glibc's dynamic loader finds it at run time.
//!
//! For every object, in breadth-first load order:
//!
//! - the program's interpreter (`PT_INTERP` of the first object; the loader ignores it in
//!   libraries) is loaded before anything else, under its path and its soname (`libc.so.6` of any distribution needs `ld-linux-x86-64.so.2` without saying
//!   where: it is the interpreter that is already there);
//! - each `DT_NEEDED` name first matches an object already loaded: by the name it was loaded
//!   as, by its `DT_SONAME`, or, for a name with a slash, by its path. Only an unmatched name
//!   is searched for;
//! - a name with a slash is a path; any other name is searched, as `ld.so` does, in
//!   1. when the needing object has no `DT_RUNPATH`: the `DT_RPATH` of the needing object, then
//!      of the object that loaded it, and so on up to the first object, then the first
//!      object's own `DT_RPATH` (an object with `DT_RUNPATH` has no `DT_RPATH` here);
//!   2. the needing object's own `DT_RUNPATH` (never its loaders');
//!   3. the host's default directories, unless the needing object is marked `DF_1_NODEFLIB`,
//!      and never in store mode.
//!
//!   A file of another ELF class or machine is passed over, as the loader passes it over.
//!   `$ORIGIN` is the directory of the object (canonical for the objects asked about, as the
//!   kernel reports the executable, and the directory it was found in for libraries).
//!   `LD_LIBRARY_PATH` and `/etc/ld.so.cache` are run-time inputs and not consulted.
//!
//! In store mode (`H_STORE_ONLY=1`, see [`Search::from_env`]) every object, interpreters
//! included, must lie inside the store; anything else is an error that names the object and
//! what needed it.

use std::collections::VecDeque;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::ResolveError;

/// `DF_1_NODEFLIB` in `DT_FLAGS_1`: the object's dependencies are never searched in the
/// default directories.
const DF_1_NODEFLIB: u64 = 0x800;

/// Where the closure may come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// Store mode: every object must lie beneath this directory, and the default directories
    /// are never searched.
    pub store: Option<PathBuf>,
    /// The directories searched last (outside store mode).
    pub default_dirs: Vec<PathBuf>,
}

/// `H_STORE_ONLY` is set (and neither empty nor `0`).
pub fn store_only_requested() -> bool {
    std::env::var_os("H_STORE_ONLY").is_some_and(|value| !value.is_empty() && value != "0")
}

/// The store directory: `NIX_STORE` (which Nix sets inside its builds), else `/nix/store`.
pub fn store_dir() -> PathBuf {
    std::env::var_os("NIX_STORE").filter(|value| !value.is_empty()).map_or_else(|| "/nix/store".into(), PathBuf::from)
}

impl Search {
    /// The host's loader: its default directories, no store.
    pub fn host() -> Search {
        Search { store: None, default_dirs: default_library_dirs() }
    }

    /// Store mode beneath `store`.
    pub fn store(store: impl Into<PathBuf>) -> Search {
        Search { store: Some(store.into()), default_dirs: Vec::new() }
    }

    /// Store mode beneath [`store_dir`] when `H_STORE_ONLY` is set, else the host's loader.
    pub fn from_env() -> Search {
        if store_only_requested() {
            Search::store(store_dir())
        } else {
            Search::host()
        }
    }

    fn allows(&self, path: &Path) -> bool {
        self.store.as_ref().is_none_or(|store| path.starts_with(store))
    }
}

/// The directories glibc's loader searches last on Debian-like systems (multiarch first).
pub fn default_library_dirs() -> Vec<PathBuf> {
    let triplet = match std::env::consts::ARCH {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    [
        format!("/lib/{triplet}"),
        format!("/usr/lib/{triplet}"),
        "/lib64".to_string(),
        "/usr/lib64".to_string(),
        "/lib".to_string(),
        "/usr/lib".to_string(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// One loaded object.
struct Object {
    /// The path it was opened by.
    path: PathBuf,
    canonical: PathBuf,
    /// Names a `DT_NEEDED` entry matches: the names it was asked for by, and its soname.
    names: Vec<String>,
    /// The object whose `DT_NEEDED` (or `PT_INTERP`) loaded it.
    loader: Option<usize>,
    /// `DT_RPATH`, expanded; empty when the object has `DT_RUNPATH`.
    rpath: Vec<PathBuf>,
    /// `DT_RUNPATH`, expanded.
    runpath: Option<Vec<PathBuf>>,
    nodeflib: bool,
    needed: Vec<String>,
    interpreter: Option<String>,
    kind: (bool, u16),
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ResolveError + '_ {
    move |source| ResolveError::Read { path: path.to_path_buf(), source }
}

fn parse_error(path: &Path, message: impl std::fmt::Display) -> ResolveError {
    ResolveError::Parse { path: path.to_path_buf(), message: message.to_string() }
}

/// Expands `$ORIGIN` in one search-path entry; other dynamic string tokens are refused.
fn expand(entry: &str, origin: &Path, object: &Path) -> Result<PathBuf, ResolveError> {
    let origin = origin.to_string_lossy();
    let expanded = entry.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin);
    if expanded.contains('$') {
        return Err(parse_error(object, format!("search path entry {entry:?} uses a token other than $ORIGIN")));
    }
    Ok(PathBuf::from(expanded))
}

fn expand_list(lists: &[&str], origin: &Path, object: &Path) -> Result<Vec<PathBuf>, ResolveError> {
    let mut dirs = Vec::new();
    for entry in lists.iter().flat_map(|list| list.split(':')).filter(|entry| !entry.is_empty()) {
        dirs.push(expand(entry, origin, object)?);
    }
    Ok(dirs)
}

/// The ELF class and machine of the file at `path`, if it is an ELF file.
fn elf_kind(path: &Path) -> Option<(bool, u16)> {
    let mut header = [0u8; 64];
    let mut file = std::fs::File::open(path).ok()?;
    file.read_exact(&mut header).ok()?;
    let parsed = goblin::elf::Elf::parse_header(&header).ok()?;
    Some((parsed.e_ident[goblin::elf::header::EI_CLASS] == goblin::elf::header::ELFCLASS64, parsed.e_machine))
}

/// Whether the file at `path` is an ELF file (of any class or machine).
pub fn is_elf(path: &Path) -> bool {
    elf_kind(path).is_some()
}

impl Object {
    fn load(path: PathBuf, names: Vec<String>, loader: Option<usize>, root: bool) -> Result<Object, ResolveError> {
        let canonical = std::fs::canonicalize(&path).map_err(read_error(&path))?;
        let bytes = std::fs::read(&canonical).map_err(read_error(&canonical))?;
        let elf = goblin::elf::Elf::parse(&bytes).map_err(|error| parse_error(&canonical, error))?;
        // The kernel reports the executable's canonical path; a library's origin is the
        // directory the loader found it in.
        let origin_of = if root { &canonical } else { &path };
        let origin = origin_of.parent().map(Path::to_path_buf).unwrap_or_default();
        let runpath = if elf.runpaths.is_empty() { None } else { Some(expand_list(&elf.runpaths, &origin, &path)?) };
        let rpath = if runpath.is_some() { Vec::new() } else { expand_list(&elf.rpaths, &origin, &path)? };
        let mut names = names;
        if let Some(soname) = elf.soname {
            names.push(soname.to_string());
        }
        Ok(Object {
            nodeflib: elf.dynamic.as_ref().is_some_and(|dynamic| dynamic.info.flags_1 & DF_1_NODEFLIB != 0),
            needed: elf.libraries.iter().map(|name| name.to_string()).collect(),
            interpreter: elf.interpreter.map(str::to_string),
            kind: (elf.is_64, elf.header.e_machine),
            path,
            canonical,
            names,
            loader,
            rpath,
            runpath,
        })
    }
}

struct Namespace<'a> {
    search: &'a Search,
    objects: Vec<Object>,
    queue: VecDeque<usize>,
    /// Every path an object was opened by, with the file it is.
    opened: Vec<LoadedObject>,
}

impl Namespace<'_> {
    /// The loaded object `name` (a `DT_NEEDED` entry or an interpreter path) refers to.
    fn matching(&self, name: &str) -> Option<usize> {
        self.objects.iter().position(|object| {
            object.names.iter().any(|known| known == name)
                || (name.contains('/') && (object.path == Path::new(name) || object.canonical == Path::new(name)))
        })
    }

    /// Adds `path` (asked for as `name` by `loader`) unless the same file is loaded already.
    fn add(&mut self, path: PathBuf, name: &str, loader: Option<usize>, root: bool) -> Result<usize, ResolveError> {
        let canonical = std::fs::canonicalize(&path).map_err(read_error(&path))?;
        let loaded = LoadedObject { path: path.clone(), canonical: canonical.clone() };
        if !self.opened.contains(&loaded) {
            self.opened.push(loaded);
        }
        if let Some(index) = self.objects.iter().position(|object| object.canonical == canonical) {
            self.objects[index].names.push(name.to_string());
            return Ok(index);
        }
        if !self.search.allows(&canonical) {
            let store = self.search.store.clone().unwrap_or_default();
            let needed_by = loader.map(|index| self.objects[index].canonical.clone());
            return Err(ResolveError::OutsideStore { path: canonical, needed_by, store });
        }
        let object = Object::load(path, vec![name.to_string()], loader, root)?;
        self.objects.push(object);
        let index = self.objects.len() - 1;
        self.queue.push_back(index);
        Ok(index)
    }

    /// The directories searched for a name `loader` needs, in the loader's order.
    fn search_dirs(&self, loader: usize) -> Vec<PathBuf> {
        let object = &self.objects[loader];
        let mut dirs = Vec::new();
        if object.runpath.is_none() {
            let mut chain = Some(loader);
            let mut first_seen = false;
            while let Some(index) = chain {
                dirs.extend(self.objects[index].rpath.iter().cloned());
                first_seen |= index == 0;
                chain = self.objects[index].loader;
            }
            if !first_seen && self.objects[0].runpath.is_none() {
                dirs.extend(self.objects[0].rpath.iter().cloned());
            }
        }
        dirs.extend(object.runpath.iter().flatten().cloned());
        if self.search.store.is_none() && !object.nodeflib {
            dirs.extend(self.search.default_dirs.iter().cloned());
        }
        dirs
    }

    fn resolve_needed(&mut self, loader: usize) -> Result<(), ResolveError> {
        let needed = self.objects[loader].needed.clone();
        for name in needed {
            if self.matching(&name).is_some() {
                continue;
            }
            if name.contains('/') {
                self.add(PathBuf::from(&name), &name, Some(loader), false)?;
                continue;
            }
            let dirs = self.search_dirs(loader);
            let kind = self.objects[loader].kind;
            let found = dirs.iter().map(|dir| dir.join(&name)).find(|candidate| elf_kind(candidate) == Some(kind));
            match found {
                Some(path) => {
                    self.add(path, &name, Some(loader), false)?;
                }
                None => {
                    return Err(ResolveError::Missing {
                        library: name,
                        needed_by: self.objects[loader].canonical.clone(),
                        searched: dirs,
                        store_only: self.search.store.is_some(),
                    })
                }
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), ResolveError> {
        while let Some(index) = self.queue.pop_front() {
            // Only the program's interpreter is loaded: the kernel maps it for the executable, and
            // the loader ignores PT_INTERP of libraries and dlopen'ed objects (Debian's libc.so.6
            // names /lib64/ld-linux-x86-64.so.2 too).
            if let Some(interpreter) = self.objects[index].interpreter.clone().filter(|_| index == 0) {
                if self.matching(&interpreter).is_none() {
                    self.add(PathBuf::from(&interpreter), &interpreter, Some(index), false)?;
                }
            }
            self.resolve_needed(index)?;
        }
        Ok(())
    }
}

/// An object the loader maps: the path it opens it by (the program interpreter's `PT_INTERP`,
/// a search directory joined with a `DT_NEEDED` name, or a path asked for), and the file that is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadedObject {
    pub path: PathBuf,
    pub canonical: PathBuf,
}

/// The objects of [`elf_closure_with`] by every path the loader opens them by: what a copy of
/// the programs on another root filesystem must hold at those paths (symlinks included) for the
/// loader to find them there. Sorted, without duplicates.
pub fn loaded_objects_with(search: &Search, objects: &[PathBuf]) -> Result<Vec<LoadedObject>, ResolveError> {
    let mut namespace = Namespace { search, objects: Vec::new(), queue: VecDeque::new(), opened: Vec::new() };
    for object in objects {
        let name = object.to_string_lossy().into_owned();
        namespace.add(object.clone(), &name, None, true)?;
        // Interpreter first, then the breadth-first walk of everything this object brings.
        namespace.run()?;
    }
    let mut opened = namespace.opened;
    opened.sort();
    opened.dedup();
    Ok(opened)
}

/// The ELF closure of `objects` under `search`: the objects, their program interpreters and
/// every `DT_NEEDED` library, recursively, as the loader finds them (see the module's
/// documentation). The first object is the program; the others are loaded into its namespace
/// in order, as `dlopen` would. Returned canonical, sorted, without duplicates.
pub fn elf_closure_with(search: &Search, objects: &[PathBuf]) -> Result<Vec<PathBuf>, ResolveError> {
    let mut paths: Vec<PathBuf> =
        loaded_objects_with(search, objects)?.into_iter().map(|object| object.canonical).collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The program interpreter (`PT_INTERP`) an ELF file asks the kernel for: `None` for a static
/// executable.
pub fn program_interpreter(path: &Path) -> Result<Option<String>, ResolveError> {
    let bytes = std::fs::read(path).map_err(read_error(path))?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|error| parse_error(path, error))?;
    Ok(elf.interpreter.map(str::to_string))
}

/// [`elf_closure_with`] under [`Search::from_env`]: store mode when `H_STORE_ONLY` is set.
pub fn elf_closure(objects: &[PathBuf]) -> Result<Vec<PathBuf>, ResolveError> {
    elf_closure_with(&Search::from_env(), objects)
}
