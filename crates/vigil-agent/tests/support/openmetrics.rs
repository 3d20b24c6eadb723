//! A reader of the OpenMetrics text format strict enough to stand in for
//! `promtool check metrics` (not installed here): it checks what a scraper
//! relies on and returns the families, or says which line is wrong.

use std::collections::{BTreeMap, BTreeSet};

/// A sample's labels, in order.
pub(crate) type Labels = Vec<(String, String)>;

/// One metric family: its type and its samples (name, labels, value).
#[derive(Debug, Default)]
pub(crate) struct Family {
    pub(crate) kind: String,
    pub(crate) samples: Vec<(String, Labels, f64)>,
}

const TYPES: [&str; 8] =
    ["counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"];

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// `{k="v",...}` at the start of `s`: the labels and the rest after `}`.
fn labels(s: &str) -> Result<(Labels, &str), String> {
    let mut out = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("no `{`")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let key = &rest[..eq];
        if !valid_name(key) {
            return Err(format!("bad label name `{key}`"));
        }
        let mut chars = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?.char_indices();
        let mut val = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => val.push('\n'),
                    c @ ('\\' | '"') => val.push(c),
                    c => return Err(format!("bad escape `\\{c}`")),
                },
                (_, c) => val.push(c),
            }
        };
        out.push((key.to_string(), val));
        rest = &rest[eq + 1 + 1 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The suffixes a sample of a family of type `kind` may add to its name.
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created", "_gcount", "_gsum"],
        "summary" => &["", "_sum", "_count", "_created"],
        "info" => &["_info"],
        _ => &[""],
    }
}

/// Checks `text` as OpenMetrics; returns its families by name.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("does not end with `# EOF`")?;
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut seen = BTreeSet::new();
    for (n, line) in body.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: `{line}`", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (what, name, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
            if !valid_name(name) {
                return Err(err(format!("bad family name `{name}`")));
            }
            if current.as_deref() != Some(name) {
                if families.contains_key(name) {
                    return Err(err("family declared twice, or its lines are apart".into()));
                }
                families.insert(name.to_string(), Family { kind: "unknown".into(), ..Family::default() });
                current = Some(name.to_string());
            }
            match (what, rest) {
                ("TYPE", Some(t)) if TYPES.contains(&t) => {
                    families.get_mut(name).unwrap().kind = t.to_string()
                }
                ("HELP", Some(_)) => {}
                ("UNIT", Some(u)) if name.ends_with(&format!("_{u}")) => {}
                _ => return Err(err("bad metadata line".into())),
            }
            continue;
        }
        let family = current.clone().ok_or_else(|| err("sample before any family".into()))?;
        let f = families.get_mut(&family).unwrap();
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        let suffix =
            name.strip_prefix(family.as_str()).ok_or_else(|| err(format!("not of family {family}")))?;
        if !suffixes(&f.kind).contains(&suffix) {
            return Err(err(format!("`{suffix}` is no sample of a {}", f.kind)));
        }
        let (labels, rest) = match line[name_end..].starts_with('{') {
            true => labels(&line[name_end..]).map_err(err)?,
            false => (Vec::new(), &line[name_end..]),
        };
        let mut fields =
            rest.strip_prefix(' ').ok_or_else(|| err("no space before the value".into()))?.split(' ');
        let v = fields.next().and_then(value).ok_or_else(|| err("bad value".into()))?;
        if fields.next().is_some_and(|t| value(t).is_none()) {
            return Err(err("bad timestamp".into()));
        }
        if f.kind == "counter" && suffix == "_total" && (v.is_nan() || v < 0.0) {
            return Err(err("negative counter".into()));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(err("sample repeated".into()));
        }
        f.samples.push((name.to_string(), labels, v));
    }
    for (name, f) in &families {
        if f.kind == "histogram" {
            histogram(name, f)?;
        }
    }
    Ok(families)
}

/// Buckets ascending by `le`, counts cumulative, `+Inf` equal to `_count`,
/// for each label set.
fn histogram(name: &str, f: &Family) -> Result<(), String> {
    type Buckets = (Vec<(f64, f64)>, Option<f64>);
    let mut sets: BTreeMap<Labels, Buckets> = BTreeMap::new();
    for (sample, labels, v) in &f.samples {
        let (le, rest): (Vec<_>, Vec<_>) = labels.iter().cloned().partition(|(k, _)| k == "le");
        let entry = sets.entry(rest).or_default();
        if sample.ends_with("_bucket") {
            let le =
                le.first().and_then(|(_, l)| value(l)).ok_or(format!("{name}: a bucket without `le`"))?;
            entry.0.push((le, *v));
        } else if sample.ends_with("_count") {
            entry.1 = Some(*v);
        }
    }
    for (set, (buckets, count)) in sets {
        let ordered = buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let inf = buckets.last().filter(|b| b.0 == f64::INFINITY).map(|b| b.1);
        if !ordered || inf.is_none() || inf != count {
            return Err(format!("{name}{set:?}: buckets {buckets:?} and count {count:?} do not agree"));
        }
    }
    Ok(())
}
