//! Structure-aware mutations of a [`Tree`], every choice taken from the fuzzer's bytes
//! (`arbitrary::Unstructured`): change a value, duplicate a key (with another value, the
//! green one included), remove, retype, reorder, rename, insert, nest. No mutation is told
//! what the colour field is: whether the result may be green is judged afterwards by the
//! contract's oracle ([`crate::oracle`]), so a mutation that does make a genuine green is no
//! finding, and every other route to green is.

use arbitrary::{Result, Unstructured};

use crate::tree::Tree;

/// Most mutations applied to one document.
pub const MAX_OPS: u32 = 6;

/// Values and keys to draw from: those of the region's own answers plus awkward ones.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    /// Scalar and small values.
    pub values: Vec<Tree>,
    /// Object keys.
    pub keys: Vec<String>,
}

impl Pool {
    /// The pool of a set of seed documents.
    pub fn of(seeds: &[Tree]) -> Pool {
        let mut pool = Pool {
            values: awkward_values(),
            keys: Vec::new(),
        };
        for s in seeds {
            collect(s, &mut pool);
        }
        pool.values.dedup();
        pool.keys.sort();
        pool.keys.dedup();
        pool
    }
}

fn awkward_values() -> Vec<Tree> {
    let num = |v: serde_json::Value| match v {
        serde_json::Value::Number(n) => Tree::Num(n),
        _ => Tree::Null,
    };
    vec![
        Tree::Null,
        Tree::Bool(true),
        Tree::Bool(false),
        num(0.into()),
        num(1.into()),
        num(2.into()),
        num((-1).into()),
        num(serde_json::json!(0.0)),
        num(serde_json::json!(1.5)),
        num(u64::MAX.into()),
        num(i64::MIN.into()),
        num(serde_json::json!(1e300)),
        num(9_223_372_036_854_775_807u64.into()),
        Tree::Str(String::new()),
        Tree::Str(" ".into()),
        Tree::Str("0".into()),
        Tree::Str("1".into()),
        Tree::Str("null".into()),
        Tree::Str("true".into()),
        Tree::Str("99999999999999999999".into()),
        Tree::Str("2020-02-30 25:61:61".into()),
        Tree::Arr(Vec::new()),
        Tree::Obj(Vec::new()),
    ]
}

fn collect(t: &Tree, pool: &mut Pool) {
    match t {
        Tree::Arr(items) => items.iter().for_each(|v| collect(v, pool)),
        Tree::Obj(pairs) => {
            for (k, v) in pairs {
                pool.keys.push(k.clone());
                collect(v, pool);
            }
        }
        scalar => {
            if !pool.values.contains(scalar) {
                pool.values.push(scalar.clone());
            }
        }
    }
}

/// Every node's path (indices into arrays and objects), root first.
fn paths(t: &Tree, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(here.clone());
    let children: Vec<&Tree> = match t {
        Tree::Arr(items) => items.iter().collect(),
        Tree::Obj(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        _ => return,
    };
    for (i, c) in children.into_iter().enumerate() {
        here.push(i);
        paths(c, here, out);
        here.pop();
    }
}

fn node_mut<'a>(t: &'a mut Tree, path: &[usize]) -> Option<&'a mut Tree> {
    let mut node = t;
    for &i in path {
        node = match node {
            Tree::Arr(items) => items.get_mut(i)?,
            Tree::Obj(pairs) => &mut pairs.get_mut(i)?.1,
            _ => return None,
        };
    }
    Some(node)
}

/// A value from the pool or, sometimes, an arbitrary string of the fuzzer's.
fn value(pool: &Pool, u: &mut Unstructured) -> Result<Tree> {
    if u.ratio(1, 8)? {
        return Ok(Tree::Str(
            u.arbitrary::<String>()?.chars().take(64).collect(),
        ));
    }
    Ok(u.choose(&pool.values)?.clone())
}

fn key(pool: &Pool, u: &mut Unstructured) -> Result<String> {
    if pool.keys.is_empty() || u.ratio(1, 8)? {
        return Ok(u.arbitrary::<String>()?.chars().take(32).collect());
    }
    Ok(u.choose(&pool.keys)?.clone())
}

fn retype(v: &Tree, u: &mut Unstructured) -> Result<Tree> {
    Ok(match v {
        Tree::Str(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Number(n)) => Tree::Num(n),
            Ok(serde_json::Value::Bool(b)) => Tree::Bool(b),
            _ if u.arbitrary()? => Tree::Arr(vec![v.clone()]),
            _ => Tree::Obj(vec![("value".into(), v.clone())]),
        },
        Tree::Num(n) => Tree::Str(n.to_string()),
        Tree::Bool(b) => Tree::Str(b.to_string()),
        Tree::Null => Tree::Str("null".into()),
        Tree::Arr(items) if items.len() == 1 && u.arbitrary()? => items[0].clone(),
        Tree::Arr(items) => Tree::Obj(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
        ),
        Tree::Obj(pairs) => Tree::Arr(pairs.iter().map(|(_, v)| v.clone()).collect()),
    })
}

/// Applies 1 to [`MAX_OPS`] mutations to `tree`.
pub fn mutate(tree: &mut Tree, pool: &Pool, u: &mut Unstructured) -> Result<()> {
    let ops = u.int_in_range(1..=MAX_OPS)?;
    for _ in 0..ops {
        let mut all = Vec::new();
        paths(tree, &mut Vec::new(), &mut all);
        let path = u.choose(&all)?.clone();
        let (parent_path, index) = match path.split_last() {
            Some((i, p)) => (p.to_vec(), Some(*i)),
            None => (Vec::new(), None),
        };
        match u.int_in_range(0..=8u8)? {
            // Change the value.
            0 => {
                if let Some(n) = node_mut(tree, &path) {
                    *n = value(pool, u)?;
                }
            }
            // Duplicate a key: the same key again, with another value, before or after.
            1 => {
                let v = value(pool, u)?;
                let before = u.arbitrary::<bool>()?;
                if let (Some(i), Some(Tree::Obj(pairs))) = (index, node_mut(tree, &parent_path)) {
                    let k = pairs[i].0.clone();
                    pairs.insert(if before { i } else { i + 1 }, (k, v));
                }
            }
            // Remove.
            2 => match (index, node_mut(tree, &parent_path)) {
                (Some(i), Some(Tree::Obj(pairs))) => {
                    pairs.remove(i);
                }
                (Some(i), Some(Tree::Arr(items))) => {
                    items.remove(i);
                }
                _ => {}
            },
            // Retype: "0" ↔ 0, true ↔ "true", scalar → [scalar] or {"value": scalar}, …
            3 => {
                if let Some(n) = node_mut(tree, &path) {
                    *n = retype(n, u)?;
                }
            }
            // Reorder the enclosing object or array.
            4 => {
                let to = u.arbitrary::<usize>()?;
                match (index, node_mut(tree, &parent_path)) {
                    (Some(i), Some(Tree::Obj(pairs))) => {
                        let p = pairs.remove(i);
                        pairs.insert(to % (pairs.len() + 1), p);
                    }
                    (Some(i), Some(Tree::Arr(items))) => {
                        let p = items.remove(i);
                        items.insert(to % (items.len() + 1), p);
                    }
                    _ => {}
                }
            }
            // Rename the key.
            5 => {
                let k = key(pool, u)?;
                if let (Some(i), Some(Tree::Obj(pairs))) = (index, node_mut(tree, &parent_path)) {
                    pairs[i].0 = k;
                }
            }
            // Insert a key into an object (or an item into an array).
            6 => {
                let (k, v) = (key(pool, u)?, value(pool, u)?);
                let at = u.arbitrary::<usize>()?;
                match node_mut(tree, &path) {
                    Some(Tree::Obj(pairs)) => pairs.insert(at % (pairs.len() + 1), (k, v)),
                    Some(Tree::Arr(items)) => items.insert(at % (items.len() + 1), v),
                    _ => {}
                }
            }
            // Copy a subtree over another node (moves whole objects around).
            7 => {
                let from = u.choose(&all)?.clone();
                let copied = node_mut(tree, &from).map(|n| n.clone());
                if let (Some(c), Some(n)) = (copied, node_mut(tree, &path))
                    && depth(&c) < 8
                {
                    *n = c;
                }
            }
            // Nest: the value wrapped one level deeper.
            _ => {
                if let Some(n) = node_mut(tree, &path)
                    && depth(n) < 8
                {
                    let k = key(pool, u)?;
                    *n = Tree::Obj(vec![(k, n.clone())]);
                }
            }
        }
    }
    Ok(())
}

fn depth(t: &Tree) -> usize {
    match t {
        Tree::Arr(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Tree::Obj(pairs) => 1 + pairs.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_driven_by_the_bytes_and_change_the_document() {
        let seed = Tree::from_json(br#"{"retCode":"0000","data":{"codeStatus":"R"}}"#).unwrap();
        let pool = Pool::of(std::slice::from_ref(&seed));
        assert!(pool.keys.contains(&"codeStatus".to_owned()));
        let run = |bytes: &[u8]| {
            let mut t = seed.clone();
            mutate(&mut t, &pool, &mut Unstructured::new(bytes)).ok();
            t
        };
        let a = run(&[7, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(a, run(&[7, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "deterministic");
        let changed = (0u8..64)
            .filter(|b| run(&[*b, b.wrapping_mul(37), 3, b ^ 5, 200, 9, 1]) != seed)
            .count();
        assert!(
            changed > 32,
            "only {changed} of 64 inputs changed the document"
        );
    }
}
