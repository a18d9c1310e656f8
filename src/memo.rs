//! Values derived from strings that repeat request after request (a deployment's upstream URL,
//! its provider's name in a response header), kept per thread so that each is derived once.

/// The last `N` values derived from strings, the oldest replaced first. Worth it where deriving
/// a value (parsing a URL; validating and copying a header value, with an allocation) costs more
/// than a pass over a handful of short strings, most of which differ in length. Bounded, so
/// strings that never repeat cost that pass and no more memory. Failures are not kept.
pub struct Recent<V, const N: usize> {
    entries: Vec<(Box<str>, V)>,
}

impl<V: Clone, const N: usize> Recent<V, N> {
    pub const fn new() -> Self {
        Recent {
            entries: Vec::new(),
        }
    }

    /// The value kept for `key`, else `make(key)`, kept if it succeeds.
    pub fn get_or_try<E>(
        &mut self,
        key: &str,
        make: impl FnOnce(&str) -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some((_, hit)) = self.entries.iter().find(|(seen, _)| **seen == *key) {
            return Ok(hit.clone());
        }
        let fresh = make(key)?;
        if self.entries.len() == N {
            self.entries.remove(0);
        }
        self.entries.push((key.into(), fresh.clone()));
        Ok(fresh)
    }

    /// The value kept for `key`, else `make(key)`, kept.
    pub fn get_or(&mut self, key: &str, make: impl FnOnce(&str) -> V) -> V {
        match self.get_or_try(key, |k| Ok::<V, std::convert::Infallible>(make(k))) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<V: Clone, const N: usize> Default for Recent<V, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_once_replaces_the_oldest_and_keeps_no_failure() {
        let mut made = Vec::new();
        let mut memo: Recent<usize, 2> = Recent::new();
        let mut get = |memo: &mut Recent<usize, 2>, key: &str| {
            memo.get_or_try(key, |k| {
                made.push(k.to_string());
                if k.is_empty() {
                    Err("empty")
                } else {
                    Ok(k.len())
                }
            })
        };
        assert_eq!(get(&mut memo, "a"), Ok(1));
        assert_eq!(get(&mut memo, "a"), Ok(1));
        assert_eq!(get(&mut memo, "bb"), Ok(2));
        assert_eq!(get(&mut memo, "ccc"), Ok(3)); // replaces "a"
        assert_eq!(get(&mut memo, "bb"), Ok(2));
        assert_eq!(get(&mut memo, "a"), Ok(1)); // made again, replaces "bb"
        assert_eq!(get(&mut memo, ""), Err("empty"));
        assert_eq!(get(&mut memo, ""), Err("empty"));
        assert_eq!(memo.len(), 2);
        assert_eq!(made, ["a", "bb", "ccc", "a", "", ""]);
    }
}
