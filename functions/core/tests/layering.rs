//! The core reads top-down: no import cycles between its modules.
//!
//! Every source file of `batchops-core` is a module. A module uses another when it names an
//! item of it (`use crate::…`, a path `crate::…` or `super::…` anywhere outside tests); an
//! item re-exported by a `pub use` counts as the module that defines it. A module and its own
//! submodules may use each other (a `mod.rs` re-exporting what its files define); any other
//! cycle is refused, and the test prints it with the lines that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::spanned::Spanned;
use syn::visit::Visit;

type Module = Vec<String>;

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Every `.rs` file under `src`, by its module path (`lib.rs` is the crate root, `[]`).
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The paths a file names, each with its line and whether it is a `pub use` (a re-export).
#[derive(Default)]
struct Names {
    paths: Vec<(Vec<String>, usize, bool)>,
}

impl Names {
    fn use_tree(
        &mut self,
        prefix: &mut Vec<String>,
        tree: &syn::UseTree,
        line: usize,
        public: bool,
    ) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, line, public);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                self.paths.push((path, line, public));
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                self.paths.push((path, line, public));
            }
            syn::UseTree::Glob(_) => self.paths.push((prefix.clone(), line, public)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t, line, public);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let public = matches!(u.vis, syn::Visibility::Public(_));
        let line = u.span().start().line;
        self.use_tree(&mut Vec::new(), &u.tree, line, public);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            self.paths.push((segs, p.span().start().line, false));
        }
        syn::visit::visit_path(self, p);
    }
}

/// `path` as named in module `at` (a `mod.rs` or not: `dir`), made absolute; `None` when it
/// is not the crate's (a dependency, `std`, a local name).
fn absolute(
    at: &Module,
    dir: bool,
    path: &[String],
    modules: &BTreeMap<Module, PathBuf>,
) -> Option<Module> {
    let first = path.first()?;
    let mut base: Module = match first.as_str() {
        "crate" => Vec::new(),
        "super" => {
            let mut b = at.clone();
            b.pop();
            b
        }
        "self" => at.clone(),
        // A submodule named relative to this one (`mod x; use x::Y;`).
        _ => {
            let mut b = at.clone();
            b.push(first.clone());
            if dir && modules.contains_key(&b) {
                return Some(b.into_iter().chain(path[1..].iter().cloned()).collect());
            }
            return None;
        }
    };
    let mut rest = &path[1..];
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

#[test]
fn the_core_has_no_import_cycles_between_its_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut named: BTreeMap<Module, Vec<(Module, usize, bool)>> = BTreeMap::new();
    for (m, path) in &modules {
        let text = std::fs::read_to_string(path).unwrap();
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut names = Names::default();
        names.visit_file(&file);
        let dir = path.ends_with("mod.rs") || path.ends_with("lib.rs");
        let abs = names
            .paths
            .into_iter()
            .filter_map(|(p, line, public)| Some((absolute(m, dir, &p, &modules)?, line, public)))
            .collect();
        named.insert(m.clone(), abs);
    }
    // Re-exports: (module, item) → the path it names.
    let mut reexports: BTreeMap<(Module, String), Module> = BTreeMap::new();
    for (m, paths) in &named {
        for (p, _, public) in paths {
            if *public && let Some(last) = p.last() {
                reexports.insert((m.clone(), last.clone()), p.clone());
            }
        }
    }
    // The module defining what `path` names: the longest module prefix, through re-exports.
    let resolve = |path: &Module| -> Module {
        let mut path = path.clone();
        for _ in 0..8 {
            let mut at: Module = Vec::new();
            let mut i = 0;
            while i < path.len() {
                let mut next = at.clone();
                next.push(path[i].clone());
                if !modules.contains_key(&next) {
                    break;
                }
                at = next;
                i += 1;
            }
            match path
                .get(i)
                .and_then(|item| reexports.get(&(at.clone(), item.clone())))
            {
                Some(target) if *target != path => path = target.clone(),
                _ => return at,
            }
        }
        path
    };
    let related = |a: &Module, b: &Module| {
        !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
    };
    let mut edges: BTreeMap<Module, BTreeMap<Module, usize>> = BTreeMap::new();
    for (m, paths) in &named {
        for (p, line, _) in paths {
            let target = resolve(p);
            if target != *m && !related(m, &target) {
                edges
                    .entry(m.clone())
                    .or_default()
                    .entry(target)
                    .or_insert(*line);
            }
        }
    }
    let cycles = strongly_connected(&modules.keys().cloned().collect(), &edges);
    let mut report = String::new();
    for scc in &cycles {
        report += &format!(
            "\ncycle: {}\n",
            scc.iter().map(name).collect::<Vec<_>>().join(", ")
        );
        for a in scc {
            for (b, line) in edges.get(a).into_iter().flatten() {
                if scc.contains(b) {
                    let file = modules[a].strip_prefix(&src).unwrap().display();
                    report += &format!("  {} -> {}  ({file}:{line})\n", name(a), name(b));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between the core's modules:{report}"
    );
    // The graph is not empty: the test sees the imports it judges.
    assert!(
        edges
            .get(&vec!["planner".to_string()])
            .is_some_and(|e| e.len() > 5)
    );
}

/// Tarjan's strongly connected components of more than one module.
fn strongly_connected(
    nodes: &Vec<Module>,
    edges: &BTreeMap<Module, BTreeMap<Module, usize>>,
) -> Vec<BTreeSet<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeMap<Module, usize>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        out: Vec<BTreeSet<Module>>,
    }
    fn visit(s: &mut State, v: &Module) {
        let i = s.index.len();
        s.index.insert(v.clone(), i);
        s.low.insert(v.clone(), i);
        s.stack.push(v.clone());
        s.on.insert(v.clone());
        let next: Vec<Module> = s
            .edges
            .get(v)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default();
        for w in next {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let l = s.low[&w].min(s.low[v]);
                s.low.insert(v.clone(), l);
            } else if s.on.contains(&w) {
                let l = s.index[&w].min(s.low[v]);
                s.low.insert(v.clone(), l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = BTreeSet::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(&w);
                scc.insert(w.clone());
                if w == *v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in nodes {
        if !s.index.contains_key(n) {
            visit(&mut s, n);
        }
    }
    s.out
}
